import type { WindowStore } from "../adapters/window-store.ts";
import { parseDuration, type StatsQuery } from "../contract/api.ts";
import { GRANULARITY_MS, type Granularity, MINUTE_MS, TTL_SECONDS } from "../stream/fold.ts";
import { type GroupPartial, type Groups, mergePartial } from "../stream/partial.ts";
import { mergeRecords } from "../stream/partial-items.ts";
import { type Figures, figures, isOtherGroup, mergeWindows } from "../stream/read.ts";
import { type AggregationRule, LATE_EVENTS_RULE, splitGroupKey, storageKey } from "../stream/rules.ts";
import { DEFAULT_SESSION_GAP_MS, sessionize, summarize } from "../stream/sessions.ts";

export class StatsQueryError extends Error {
  override name = "StatsQueryError";
  constructor(
    message: string,
    readonly status: 400 | 404,
  ) {
    super(message);
  }
}

const TOP_GROUPS = 20;
/** Minute windows are read for ranges up to this long; longer ranges read hourly roll-ups. */
const MAX_MINUTE_RANGE_MS = 6 * GRANULARITY_MS.h;
/** Minute windows younger than this are certainly still stored (TTL 2 days, minus a margin). */
const MINUTE_RETENTION_MS = TTL_SECONDS.m * 1000 - GRANULARITY_MS.h;

/** The rule's own field, or a property of a detailed rule. */
function propertyOf(rule: AggregationRule, field: string | undefined): string | undefined {
  if (field === undefined || !rule.detailed) return undefined;
  return field.startsWith("properties.") ? field.slice("properties.".length) : undefined;
}

function groupsOf(rule: AggregationRule, merged: Groups, property?: string) {
  return [...merged]
    .sort(([, a], [, b]) => b.c - a.c)
    .slice(0, TOP_GROUPS)
    .map(([key, p]) => {
      const { unique_users, values: _values, ...rest } = figures(p, property);
      return {
        group: isOtherGroup(key) ? { other: "true" } : splitGroupKey(rule, key),
        ...rest,
        ...(unique_users !== undefined ? { unique: unique_users } : {}),
      };
    });
}

/** Window starts of `[from, to)` at a granularity: every window that overlaps the range. */
export function windowStartsIn(from: number, to: number, granularity: Granularity): number[] {
  const size = GRANULARITY_MS[granularity];
  const out: number[] = [];
  for (let t = Math.floor(from / size) * size; t < to; t += size) out.push(t);
  return out;
}

async function readMerged(
  store: WindowStore,
  ruleKey: string,
  granularity: Granularity,
  starts: readonly number[],
): Promise<Map<number, Groups>> {
  return mergeRecords(await store.read(ruleKey, granularity, starts));
}

const totalOf = (groups: Groups | undefined) => [...(groups?.values() ?? [])].reduce((n, p) => n + p.c, 0);
const withoutValues = ({ values: _v, ...f }: Figures) => f;

/**
 * GET /stats. By event type: the built-in `events_by_type` windows of the last interval (count,
 * unique users, sum/avg/min/max of a numeric property, rate, per-minute series), grouped through
 * an active rule of that event type with that group_by. By rule: the rule's windows over a
 * half-open range `[from, to)` (minutes up to 6 h, hourly roll-ups beyond or when the minutes
 * have expired; the answer's from/to say what the windows cover).
 */
export async function readStats(
  store: WindowStore,
  rules: readonly AggregationRule[],
  query: StatsQuery,
  now: number,
) {
  if (query.kind === "rule") return readRule(store, rules, query, now);

  // The last `interval`: whole minutes and the current, partial minute, `[first, now)`.
  // Minute resolution: the rate divides by the time those windows actually cover.
  const windows = Math.max(1, Math.round(query.intervalMs / MINUTE_MS));
  const last = Math.floor(now / MINUTE_MS) * MINUTE_MS;
  const starts = Array.from({ length: windows }, (_, i) => last - (windows - 1 - i) * MINUTE_MS);
  const from = starts[0] ?? last;
  const base = rules.find((r) => r.rule_id === "events_by_type");
  if (!base) throw new Error("built-in rule events_by_type is missing");
  const property = propertyOf(base, query.field);
  let groupRule: AggregationRule | undefined;
  if (query.group_by.length > 0) {
    groupRule = rules.find(
      (r) =>
        r.active &&
        r.window.type !== "session" &&
        r.event_type === query.event_type &&
        r.group_by.length === query.group_by.length &&
        r.group_by.every((g, i) => g === query.group_by[i]) &&
        (query.field === undefined || r.field === query.field),
    );
    if (!groupRule) {
      throw new StatsQueryError(
        `no active rule counts ${query.event_type} by ${query.group_by.join(",")}${
          query.field ? ` with field ${query.field}` : ""
        }; create one with POST /rules`,
        400,
      );
    }
  }
  const [perWindow, late, grouped] = await Promise.all([
    readMerged(store, storageKey(base), "m", starts),
    readMerged(store, LATE_EVENTS_RULE.rule_id, "m", starts),
    groupRule ? readMerged(store, storageKey(groupRule), "m", starts) : undefined,
  ]);
  const pick = (groups: Groups | undefined): GroupPartial | undefined => groups?.get(query.event_type);
  const total: GroupPartial = { c: 0 };
  for (const s of starts) {
    const p = pick(perWindow.get(s));
    if (p) mergePartial(total, p);
  }
  const f = figures(total, property);
  const coveredSeconds = Math.max(1, (now - from) / 1000);
  return {
    event_type: query.event_type,
    interval: query.interval,
    from: new Date(from).toISOString(),
    to: new Date(now).toISOString(),
    ...withoutValues(f),
    unique_users: f.unique_users ?? 0,
    rate_per_second: f.count / coveredSeconds,
    series: starts.map((s) => ({
      minute: new Date(s).toISOString(),
      ...withoutValues(figures(pick(perWindow.get(s)), property)),
    })),
    late_events: starts.reduce((n, s) => n + (pick(late.get(s))?.c ?? 0), 0),
    ...(groupRule && grouped ? { groups: groupsOf(groupRule, mergeWindows(grouped.values())) } : {}),
  };
}

async function readRule(
  store: WindowStore,
  rules: readonly AggregationRule[],
  query: Extract<StatsQuery, { kind: "rule" }>,
  now: number,
) {
  const rule =
    rules.find((r) => r.rule_id === query.rule_id) ??
    (query.rule_id === LATE_EVENTS_RULE.rule_id ? LATE_EVENTS_RULE : undefined);
  if (!rule) throw new StatsQueryError(`no rule ${query.rule_id}`, 404);
  if (rule.window.type === "session") return readSessions(store, rule, query.from, query.to, now);
  // Minutes for short, recent ranges; hourly roll-ups otherwise (minute items expire after two
  // days: an old range widened to whole hours beats silent zeros).
  const granularity: Granularity =
    query.to - query.from > MAX_MINUTE_RANGE_MS || query.from < now - MINUTE_RETENTION_MS ? "h" : "m";
  const starts = windowStartsIn(query.from, query.to, granularity);
  const perWindow = await readMerged(store, storageKey(rule), granularity, starts);
  const all = mergeWindows(perWindow.values());
  const total = totalOf(all);
  const coveredFrom = starts[0] ?? query.from;
  const coveredTo = Math.min(
    now,
    (starts.at(-1) ?? query.from) + GRANULARITY_MS[granularity],
    Math.max(query.to, coveredFrom),
  );
  return {
    rule_id: rule.rule_id,
    from: new Date(coveredFrom).toISOString(),
    to: new Date(Math.max(coveredTo, coveredFrom + 1)).toISOString(),
    granularity,
    count: total,
    rate_per_second: total / Math.max(1, (Math.max(coveredTo, coveredFrom + 1) - coveredFrom) / 1000),
    series: starts.map((s) => ({ minute: new Date(s).toISOString(), count: totalOf(perWindow.get(s)) })),
    groups: groupsOf(rule, all),
  };
}

const MAX_SESSION_RANGE_MS = 6 * GRANULARITY_MS.h;

/** Session windows of a rule over a range, computed from its one-minute windows (lib/stream/sessions.ts). */
async function readSessions(
  store: WindowStore,
  rule: AggregationRule,
  from: number,
  to: number,
  now: number,
) {
  if (to - from > MAX_SESSION_RANGE_MS)
    throw new StatsQueryError("session rules are read over at most 6 hours", 400);
  const gap = parseDuration(rule.window.gap ?? "30m") ?? DEFAULT_SESSION_GAP_MS;
  // Look back one gap so a session that began before `from` is seen whole.
  const starts = windowStartsIn(from - gap, to, "m");
  const perWindow = await readMerged(store, storageKey(rule), "m", starts);
  const activity = new Map<string, Map<number, number>>();
  for (const [windowStart, groups] of perWindow) {
    for (const [group, p] of groups) {
      if (isOtherGroup(group)) continue;
      let minutes = activity.get(group);
      if (!minutes) {
        minutes = new Map();
        activity.set(group, minutes);
      }
      minutes.set(windowStart, p.c);
    }
  }
  const sessions = sessionize(activity, gap, Math.min(now, to)).filter((s) => s.end > from && s.start < to);
  const perKey = new Map<string, number>();
  for (const s of sessions) perKey.set(s.key, (perKey.get(s.key) ?? 0) + 1);
  const events = sessions.reduce((n, s) => n + s.events, 0);
  return {
    rule_id: rule.rule_id,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    gap_seconds: gap / 1000,
    count: events,
    rate_per_second: events / ((to - from) / 1000),
    ...summarize(sessions),
    series: windowStartsIn(from, to, "m").map((m) => ({
      minute: new Date(m).toISOString(),
      count: sessions.filter((s) => s.start === m).length,
    })),
    groups: [...perKey]
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP_GROUPS)
      .map(([key, count]) => ({ group: splitGroupKey(rule, key), count })),
  };
}

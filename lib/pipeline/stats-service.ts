import type { WindowStore } from "../adapters/window-store.ts";
import { parseDuration, type StatsQuery } from "../contract/api.ts";
import { lazy } from "../lazy.ts";
import { GRANULARITY_MS, type Granularity, MINUTE_MS, windowStartOf } from "../stream/fold.ts";
import { type GroupPartial, type Groups, mergePartial } from "../stream/partial.ts";
import { mergeRecords, unrolledDeltas } from "../stream/partial-items.ts";
import { type Figures, figures, isOtherGroup, mergeWindows } from "../stream/read.ts";
import {
  planInterval,
  planRange,
  planRuleWindow,
  planSessionRange,
  type ReadPlan,
  ReadPlanError,
  type SessionReadPlan,
} from "../stream/read-plan.ts";
import { type AggregationRule, LATE_EVENTS_RULE, splitGroupKey, storageKey } from "../stream/rules.ts";
import { DEFAULT_SESSION_GAP_MS, sessionize, summarize } from "../stream/sessions.ts";
import { topics } from "../topology.ts";
import type { ClosedWindowCache } from "./closed-windows.ts";

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

/** A property of a detailed rule (`properties.<name>`), or undefined for the rule's own field. */
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

interface PlannedRead {
  /** per planned window, ascending: its start, size and merged groups */
  readonly windows: { start: number; granularity: Granularity; groups: Groups | undefined }[];
}

/** Closed windows a read may take from, and keep in, the environment's cache. */
interface ClosedWindows {
  readonly cache: ClosedWindowCache;
  /** Every window ending at or before this is closed for good. */
  readonly before: number;
}

/**
 * Hours of a rule whose minutes may hold deltas not yet rolled up (the fences' dirty windows),
 * asked for only when a read has hours (it may cost a Query of the fences).
 */
type UnrolledHours = () => Promise<ReadonlySet<number>>;
const NO_HOURS: ReadonlySet<number> = new Set();

/** Reads the minute and hour windows of a plan (one Query per bucket each, of what is not cached). */
async function readPlanned(
  store: WindowStore,
  ruleKey: string,
  plan: ReadPlan,
  unrolled: UnrolledHours,
  only?: ReadonlySet<string>,
  closed?: ClosedWindows,
): Promise<PlannedRead> {
  const [m, h] = await Promise.all([
    readWindows(store, ruleKey, "m", plan.minutes, only, closed),
    readWindows(store, ruleKey, "h", plan.hours, only, closed, unrolled),
  ]);
  const windows = [
    ...plan.minutes.map((start) => ({ start, granularity: "m" as const, groups: m.get(start) })),
    ...plan.hours.map((start) => ({ start, granularity: "h" as const, groups: h.get(start) })),
  ].sort((a, b) => a.start - b.start);
  return { windows };
}

/**
 * Merged groups per window start. Closed windows come from the cache, or are read, merged whole
 * and kept; the others are read and merged (`only` those groups, when given). An hour is its
 * roll-up plus the deltas of its minutes not rolled up yet (`unrolled` says which hours may have
 * some); it is closed only once rolled up.
 */
async function readWindows(
  store: WindowStore,
  ruleKey: string,
  granularity: Granularity,
  starts: readonly number[],
  only: ReadonlySet<string> | undefined,
  closed: ClosedWindows | undefined,
  unrolled?: UnrolledHours,
): Promise<Map<number, Groups>> {
  const out = new Map<number, Groups>();
  if (starts.length === 0) return out;
  const unrolledHours = granularity === "h" && unrolled ? await unrolled() : NO_HOURS;
  const mayBeUnrolled = (ws: number) => unrolledHours.has(ws);
  const isClosed = (ws: number) =>
    closed !== undefined && ws + GRANULARITY_MS[granularity] <= closed.before && !mayBeUnrolled(ws);
  const missing: number[] = [];
  for (const ws of starts) {
    const hit = isClosed(ws) ? closed?.cache.get(ruleKey, granularity, ws) : undefined;
    if (hit) out.set(ws, hit);
    else missing.push(ws);
  }
  if (missing.length === 0) return out;
  const records = await store.read(ruleKey, granularity, missing);
  // After the hours' own items: a compaction between the two reads then hides what it rolled
  // up for a moment (as any compaction a read races may), rather than counting it twice.
  const hours = missing.filter(mayBeUnrolled);
  if (hours.length > 0) {
    const minutes = hours.flatMap((h) => Array.from({ length: 60 }, (_, i) => h + i * MINUTE_MS));
    for (const r of unrolledDeltas(await store.read(ruleKey, "m", minutes)))
      records.push({ ...r, g: "h", ws: windowStartOf(r.ws, "h") });
  }
  for (const [ws, groups] of mergeRecords(
    records.filter((r) => !isClosed(r.ws)),
    only,
  ))
    out.set(ws, groups);
  const whole = mergeRecords(records.filter((r) => isClosed(r.ws)));
  for (const ws of missing.filter(isClosed)) {
    const groups = whole.get(ws) ?? new Map();
    closed?.cache.set(ruleKey, granularity, ws, groups);
    out.set(ws, groups);
  }
  return out;
}

const totalOf = (groups: Groups | undefined) => [...(groups?.values() ?? [])].reduce((n, p) => n + p.c, 0);
const withoutValues = ({ values: _v, ...f }: Figures) => f;
const granularityOf = (plan: ReadPlan): "m" | "h" | "mixed" =>
  plan.hours.length === 0 ? "m" : plan.minutes.length === 0 ? "h" : "mixed";
const seconds = (g: Granularity) => GRANULARITY_MS[g] / 1000;
const rate = (count: number, plan: ReadPlan) => (plan.elapsedMs > 0 ? count / (plan.elapsedMs / 1000) : 0);

function planned<T>(make: () => T): T {
  try {
    return make();
  } catch (error) {
    if (error instanceof ReadPlanError) throw new StatsQueryError(error.message, 400);
    throw error;
  }
}

/**
 * Whether a query's answer depends on rules other than the built-ins: a rule read by id, or a
 * group_by (an active rule of the type groups it). By event type alone, GET /stats reads the
 * built-in `events_by_type` and `late_events` windows, whatever rules the table holds.
 */
export const usesStoredRules = (query: StatsQuery): boolean =>
  query.kind === "rule" || query.group_by.length > 0;

/**
 * GET /stats. By event type: the built-in `events_by_type` windows of the last interval, or of a
 * range `[from, to)` when one is given (count, unique users, sum/avg/min/max of a numeric
 * property, rate, series), grouped through an active rule of that event type with that group_by. By rule: the rule's windows over a half-open range
 * `[from, to)`, or — without a range — the rule's own current window (its size and slide). Reads
 * are planned by lib/stream/read-plan.ts: whole hours from hourly roll-ups, minutes at the edges,
 * and the answer's from/to say what the windows cover.
 */
export async function readStats(
  store: WindowStore,
  rules: readonly AggregationRule[],
  query: StatsQuery,
  now: number,
  cache?: ClosedWindowCache,
) {
  const settled = cache ? await cache.snapshot() : undefined;
  const before = settled?.closedBefore ?? Number.NEGATIVE_INFINITY;
  // Reads of hours need the fences' dirty minutes: the settled answer, or one read now.
  const fences = lazy(
    async () =>
      settled ??
      (await (cache?.read() ?? store.fenceSnapshot(topics.eventsRaw.name, topics.eventsRaw.partitions))),
  );
  /** Closed windows of `rule`, when it places events by event time (arrival-time windows follow processing). */
  const closedOf = (rule: AggregationRule): ClosedWindows | undefined =>
    cache && rule.time_basis !== "arrival" ? { cache, before } : undefined;
  const unrolledOf =
    (ruleKey: string): UnrolledHours =>
    async () =>
      (await fences()).unrolledHours.get(ruleKey) ?? NO_HOURS;
  if (query.kind === "rule") return readRule(store, rules, query, now, closedOf, unrolledOf);

  const ranged = query.from !== undefined && query.to !== undefined;
  const plan = planned(() =>
    query.from !== undefined && query.to !== undefined
      ? planRange({ from: query.from, to: query.to, now })
      : planInterval({ intervalMs: query.intervalMs, now }),
  );
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
  // Both rules group by event type: only this type's group is merged.
  const onlyType = new Set([query.event_type]);
  const [types, late, grouped] = await Promise.all([
    readPlanned(store, storageKey(base), plan, unrolledOf(storageKey(base)), onlyType, closedOf(base)),
    readPlanned(store, LATE_EVENTS_RULE.rule_id, plan, unrolledOf(LATE_EVENTS_RULE.rule_id), onlyType),
    groupRule
      ? readPlanned(
          store,
          storageKey(groupRule),
          plan,
          unrolledOf(storageKey(groupRule)),
          undefined,
          closedOf(groupRule),
        )
      : undefined,
  ]);
  const total: GroupPartial = { c: 0 };
  for (const w of types.windows) {
    const p = w.groups?.get(query.event_type);
    if (p) mergePartial(total, p);
  }
  const f = figures(total, property);
  return {
    event_type: query.event_type,
    ...(ranged ? {} : { interval: query.interval }),
    from: new Date(plan.coveredFrom).toISOString(),
    to: new Date(ranged ? Math.min(plan.coveredTo, Math.max(now, plan.coveredFrom)) : now).toISOString(),
    granularity: granularityOf(plan),
    ...withoutValues(f),
    unique_users: f.unique_users ?? 0,
    rate_per_second: rate(f.count, plan),
    series: types.windows.map((w) => ({
      minute: new Date(w.start).toISOString(),
      seconds: seconds(w.granularity),
      ...withoutValues(figures(w.groups?.get(query.event_type), property)),
    })),
    late_events: late.windows.reduce((n, w) => n + (w.groups?.get(query.event_type)?.c ?? 0), 0),
    ...(groupRule && grouped
      ? {
          groups: groupsOf(
            groupRule,
            mergeWindows(grouped.windows.flatMap((w) => (w.groups ? [w.groups] : []))),
          ),
        }
      : {}),
  };
}

async function readRule(
  store: WindowStore,
  rules: readonly AggregationRule[],
  query: Extract<StatsQuery, { kind: "rule" }>,
  now: number,
  closedOf: (rule: AggregationRule) => ClosedWindows | undefined,
  unrolledOf: (ruleKey: string) => UnrolledHours,
) {
  const rule =
    rules.find((r) => r.rule_id === query.rule_id) ??
    (query.rule_id === LATE_EVENTS_RULE.rule_id ? LATE_EVENTS_RULE : undefined);
  if (!rule) throw new StatsQueryError(`no rule ${query.rule_id}`, 404);
  const ranged = query.from !== undefined || query.to !== undefined;
  const to = query.to ?? now;
  const from = query.from ?? to - GRANULARITY_MS.h;
  if (rule.window.type === "session") {
    const gapMs = parseDuration(rule.window.gap ?? "30m") ?? DEFAULT_SESSION_GAP_MS;
    const plan = planned(() =>
      ranged ? planSessionRange({ from, to, now, gapMs }) : planRuleWindow(rule.window, now),
    );
    return readSessions(store, rule, plan as SessionReadPlan, now, closedOf(storedRule(rules, rule)));
  }
  // Without a range, the rule's own window: active_users (sliding 5m) reads the last 5 minutes.
  const plan = planned(() => {
    const p = ranged ? planRange({ from, to, now }) : planRuleWindow(rule.window, now);
    return rule.rollup === false || storedRule(rules, rule).rollup === false ? minutesOnly(p, now) : p;
  });
  const read = await readPlanned(
    store,
    storageKey(rule),
    plan,
    unrolledOf(storageKey(rule)),
    undefined,
    closedOf(storedRule(rules, rule)),
  );
  const all = mergeWindows(read.windows.flatMap((w) => (w.groups ? [w.groups] : [])));
  const total = totalOf(all);
  const f = rule.group_by.length === 0 ? withoutValues(figures(all.get(""))) : undefined;
  return {
    rule_id: rule.rule_id,
    from: new Date(plan.coveredFrom).toISOString(),
    to: new Date(Math.min(plan.coveredTo, Math.max(now, plan.coveredFrom))).toISOString(),
    ...(plan.notice ? { notice: plan.notice } : {}),
    window: rule.window,
    granularity: granularityOf(plan),
    ...(f ?? {}),
    count: total,
    rate_per_second: rate(total, plan),
    series: read.windows.map((w) => ({
      minute: new Date(w.start).toISOString(),
      seconds: seconds(w.granularity),
      count: totalOf(w.groups),
    })),
    groups: groupsOf(rule, all),
  };
}

/** The rule whose windows a view reads (itself when it stores its own). */
const storedRule = (rules: readonly AggregationRule[], rule: AggregationRule) =>
  (rule.reads ? rules.find((r) => r.rule_id === rule.reads) : undefined) ?? rule;

/** A plan in minute windows only, for rules without hourly roll-ups (at most 24 hours: ≤ 25 Queries a partition). */
function minutesOnly(plan: ReadPlan, now: number): ReadPlan {
  if (plan.hours.length === 0) return plan;
  const from = plan.coveredFrom;
  const to = plan.coveredTo;
  if (to - from > MAX_MINUTES_ONLY_MS)
    throw new ReadPlanError(
      "range_too_long",
      "this rule keeps one-minute windows only: read at most 6 hours",
    );
  const minutes: number[] = [];
  for (let m = from; m < to; m += MINUTE_MS) minutes.push(m);
  return { ...plan, minutes, hours: [], elapsedMs: Math.max(0, Math.min(to, now) - from) };
}
const MAX_MINUTES_ONLY_MS = 24 * GRANULARITY_MS.h;

/** Session windows of a rule, computed from its one-minute windows (lib/stream/sessions.ts). */
async function readSessions(
  store: WindowStore,
  rule: AggregationRule,
  plan: SessionReadPlan,
  now: number,
  closed: ClosedWindows | undefined,
) {
  // Minutes only: sessions never read an hour.
  const read = await readPlanned(store, storageKey(rule), plan, async () => NO_HOURS, undefined, closed);
  const activity = new Map<string, Map<number, number>>();
  for (const w of read.windows) {
    for (const [group, p] of w.groups ?? []) {
      if (isOtherGroup(group)) continue;
      let minutes = activity.get(group);
      if (!minutes) {
        minutes = new Map();
        activity.set(group, minutes);
      }
      minutes.set(w.start, p.c);
    }
  }
  const { from, to } = plan;
  const sessions = sessionize(activity, plan.gapMs, Math.min(now, to)).filter(
    (s) => s.end > from && s.start < to,
  );
  const perKey = new Map<string, number>();
  for (const s of sessions) perKey.set(s.key, (perKey.get(s.key) ?? 0) + 1);
  const events = sessions.reduce((n, s) => n + s.events, 0);
  const minutes: number[] = [];
  for (let m = Math.floor(from / MINUTE_MS) * MINUTE_MS; m < to; m += MINUTE_MS) minutes.push(m);
  // Sessions started per minute, counted once (a day of minutes times 100,000 sessions was 144
  // million comparisons when each minute filtered the whole list).
  const startedIn = new Map<number, number>();
  for (const s of sessions) startedIn.set(s.start, (startedIn.get(s.start) ?? 0) + 1);
  return {
    rule_id: rule.rule_id,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    window: rule.window,
    gap_seconds: plan.gapMs / 1000,
    count: events,
    rate_per_second: events / Math.max(1, (Math.min(to, now) - from) / 1000),
    ...summarize(sessions),
    series: minutes.map((m) => ({
      minute: new Date(m).toISOString(),
      seconds: 60,
      count: startedIn.get(m) ?? 0,
    })),
    groups: [...perKey]
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP_GROUPS)
      .map(([key, count]) => ({ group: splitGroupKey(rule, key), count })),
  };
}

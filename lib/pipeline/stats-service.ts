import type { WindowStore } from "../adapters/window-store.ts";
import { parseDuration, type StatsQuery } from "../contract/api.ts";
import { GRANULARITY_MS, type Granularity } from "../stream/fold.ts";
import {
  figures,
  isOtherGroup,
  type Merged,
  mergeByGroup,
  mergeByWindowAndGroup,
  windowKeys,
  windowStarts,
} from "../stream/read.ts";
import { type AggregationRule, LATE_EVENTS_RULE, splitGroupKey } from "../stream/rules.ts";
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

function groupsOf(rule: AggregationRule, merged: Map<string, Merged>, field?: string) {
  return [...merged]
    .sort(([, a], [, b]) => b.count - a.count)
    .slice(0, TOP_GROUPS)
    .map(([key, m]) => {
      const f = figures(m, field);
      const { unique_users, ...rest } = f;
      return {
        group: isOtherGroup(key) ? { other: "true" } : splitGroupKey(rule, key),
        ...rest,
        ...(unique_users !== undefined ? { unique: unique_users } : {}),
      };
    });
}

/**
 * GET /stats. By event type: the built-in `events_by_type` windows of the last interval (count,
 * unique users, sum/avg/min/max of a numeric property, rate, per-minute series), grouped through
 * an active rule with that group_by. By rule: the rule's windows over a range (per-minute up to
 * 6 h, hourly roll-ups beyond).
 */
export async function readStats(
  store: WindowStore,
  rules: readonly AggregationRule[],
  query: StatsQuery,
  now: number,
) {
  if (query.kind === "rule") {
    const rule =
      rules.find((r) => r.rule_id === query.rule_id) ??
      (query.rule_id === LATE_EVENTS_RULE.rule_id ? LATE_EVENTS_RULE : undefined);
    if (!rule) throw new StatsQueryError(`no rule ${query.rule_id}`, 404);
    if (rule.window.type === "session") return readSessions(store, rule, query.from, query.to, now);
    const granularity: Granularity = query.to - query.from > 6 * GRANULARITY_MS.h ? "h" : "m";
    const starts = windowStarts(query.from, query.to, granularity);
    const items = await store.readWindows(windowKeys(rule.reads ?? rule.rule_id, granularity, starts));
    const perWindow = mergeByWindowAndGroup(items);
    const all = mergeByGroup(items);
    const total = [...all.values()].reduce((n, m) => n + m.count, 0);
    return {
      rule_id: rule.rule_id,
      from: new Date(query.from).toISOString(),
      to: new Date(query.to).toISOString(),
      granularity,
      count: total,
      rate_per_second: total / ((query.to - query.from) / 1000),
      series: starts.map((s) => {
        const groups = perWindow.get(s);
        const count = [...(groups?.values() ?? [])].reduce((n, m) => n + m.count, 0);
        return { minute: new Date(s).toISOString(), count };
      }),
      groups: groupsOf(rule, all, rule.field),
    };
  }

  const windows = Math.max(1, Math.ceil(query.intervalMs / GRANULARITY_MS.m));
  const last = Math.floor(now / GRANULARITY_MS.m) * GRANULARITY_MS.m;
  const starts = Array.from({ length: windows }, (_, i) => last - (windows - 1 - i) * GRANULARITY_MS.m);
  const base = rules.find((r) => r.rule_id === "events_by_type");
  if (!base) throw new Error("built-in rule events_by_type is missing");
  const [items, lateItems] = await Promise.all([
    store.readWindows(windowKeys(base.rule_id, "m", starts)),
    store.readWindows(windowKeys(LATE_EVENTS_RULE.rule_id, "m", starts)),
  ]);
  const perWindow = mergeByWindowAndGroup(items, query.event_type);
  const total = mergeByGroup(items.map((i) => ({ ...i, groups: pick(i.groups, query.event_type) })));
  const merged = total.get(query.event_type);
  const f = figures(merged, query.field);
  const late = mergeByGroup(lateItems).get(query.event_type)?.count ?? 0;
  let groups: ReturnType<typeof groupsOf> | undefined;
  if (query.group_by.length > 0) {
    const rule = rules.find(
      (r) =>
        (r.event_type === query.event_type || r.event_type === "*") &&
        r.group_by.length === query.group_by.length &&
        r.group_by.every((g, i) => g === query.group_by[i]),
    );
    if (!rule) {
      throw new StatsQueryError(
        `no active rule groups ${query.event_type} by ${query.group_by.join(",")}; create one with POST /rules`,
        400,
      );
    }
    const ruleItems = await store.readWindows(windowKeys(rule.rule_id, "m", starts));
    groups = groupsOf(rule, mergeByGroup(ruleItems), query.field ?? rule.field);
  }
  return {
    event_type: query.event_type,
    interval: query.interval,
    from: new Date(now - query.intervalMs).toISOString(),
    to: new Date(now).toISOString(),
    ...f,
    unique_users: f.unique_users ?? 0,
    rate_per_second: f.count / (query.intervalMs / 1000),
    series: starts.map((s) => {
      const m = perWindow.get(s)?.get(query.event_type);
      return { minute: new Date(s).toISOString(), ...figures(m, query.field) };
    }),
    late_events: late,
    ...(groups ? { groups } : {}),
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
  const starts = windowStarts(from - gap, to, "m");
  const items = await store.readWindows(windowKeys(rule.reads ?? rule.rule_id, "m", starts));
  const activity = new Map<string, Map<number, number>>();
  for (const [windowStart, groups] of mergeByWindowAndGroup(items)) {
    for (const [group, m] of groups) {
      if (isOtherGroup(group)) continue;
      const minutes = activity.get(group) ?? new Map<number, number>();
      minutes.set(windowStart, m.count);
      activity.set(group, minutes);
    }
  }
  const sessions = sessionize(activity, gap, Math.min(now, to)).filter((s) => s.end > from && s.start <= to);
  const perKey = new Map<string, number>();
  for (const s of sessions) perKey.set(s.key, (perKey.get(s.key) ?? 0) + 1);
  return {
    rule_id: rule.rule_id,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    gap_seconds: gap / 1000,
    count: sessions.reduce((n, s) => n + s.events, 0),
    rate_per_second: sessions.reduce((n, s) => n + s.events, 0) / ((to - from) / 1000),
    ...summarize(sessions),
    series: windowStarts(from, to, "m").map((m) => ({
      minute: new Date(m).toISOString(),
      count: sessions.filter((s) => s.start === m).length,
    })),
    groups: [...perKey]
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP_GROUPS)
      .map(([key, count]) => ({ group: splitGroupKey(rule, key), count })),
  };
}

function pick<T>(groups: Record<string, T>, key: string): Record<string, T> {
  const v = groups[key];
  return v === undefined ? {} : { [key]: v };
}

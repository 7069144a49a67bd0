import type { WindowStore } from "../adapters/window-store.ts";
import type { StatsQuery } from "../contract/api.ts";
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

function pick<T>(groups: Record<string, T>, key: string): Record<string, T> {
  const v = groups[key];
  return v === undefined ? {} : { [key]: v };
}

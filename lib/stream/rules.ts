import type { AcceptedEvent } from "../contract/event.ts";
import { OTHER_GROUP } from "./partial.ts";

/**
 * Aggregation rules: which events (event_type filter), what to compute (metric over a field),
 * per which groups (group_by paths), over which window. Every rule is folded into one-minute
 * base windows (and hourly roll-ups); larger tumbling and sliding windows are merges of those at
 * read time, so a rule's window changes how it is read, never what is stored.
 */
export type Metric = "count" | "sum" | "avg" | "min" | "max" | "unique";

export interface AggregationRule {
  readonly rule_id: string;
  readonly name?: string;
  /** An event type, or `*` for all. */
  readonly event_type: string;
  readonly metric: Metric;
  /** Dotted path of the numeric field (sum/avg/min/max) or of the value counted (unique; default user_id). */
  readonly field?: string;
  readonly group_by: readonly string[];
  readonly window: {
    readonly type: "tumbling" | "sliding" | "session";
    readonly size?: string;
    readonly slide?: string;
    readonly gap?: string;
  };
  readonly active: boolean;
  /** Built-in rules also keep unique users and per-numeric-property stats per group. */
  readonly detailed?: boolean;
  /** A view: read the windows of this other rule (same data, another window), store nothing. */
  readonly reads?: string;
  /**
   * Bumped when an update changes what is stored (event type, metric, field, group_by): the new
   * definition writes under a new storage key, so old windows are never read under it (issue 8.13).
   */
  readonly version?: number;
  /**
   * Whether hourly roll-ups are kept (default true). The per-user built-in keeps minutes only: it
   * is read over the last minutes and for sessions (minute resolution), and an hourly copy of
   * every user would double its write cost for reads nobody makes. Such a rule reads ranges of
   * up to 24 hours within the minute retention.
   */
  readonly rollup?: boolean;
  /** Where events are placed in time: event time (default), or arrival time (`late_events`). */
  readonly time_basis?: "event" | "arrival";
}

/** The key a rule's windows are stored under: `rule_id`, plus `@v<n>` from version 2 on. */
export function storageKey(rule: Pick<AggregationRule, "rule_id" | "version" | "reads">): string {
  if (rule.reads !== undefined) return rule.reads;
  return rule.version !== undefined && rule.version > 1 ? `${rule.rule_id}@v${rule.version}` : rule.rule_id;
}

/** The built-in metrics of brief section 4, as rules. */
export const BUILT_IN_RULES: readonly AggregationRule[] = [
  {
    rule_id: "events_by_type",
    name: "Events by type (with unique users and numeric properties)",
    event_type: "*",
    metric: "count",
    group_by: ["event_type"],
    window: { type: "tumbling", size: "1m" },
    active: true,
    detailed: true,
  },
  {
    rule_id: "unique_users",
    name: "Unique users",
    event_type: "*",
    metric: "unique",
    field: "user_id",
    group_by: [],
    window: { type: "tumbling", size: "1m" },
    active: true,
  },
  {
    rule_id: "active_users",
    name: "Active users, last 5 minutes (a 5-minute sliding view of unique_users)",
    reads: "unique_users",
    event_type: "*",
    metric: "unique",
    field: "user_id",
    group_by: [],
    window: { type: "sliding", size: "5m", slide: "1m" },
    active: true,
  },
  {
    rule_id: "page_views_by_url",
    name: "Page views by URL, last 15 minutes (top N)",
    event_type: "page_view",
    metric: "count",
    group_by: ["page_url"],
    window: { type: "sliding", size: "15m", slide: "1m" },
    active: true,
  },
  {
    rule_id: "active_sessions_per_user",
    name: "Active sessions per user, last 5 minutes",
    event_type: "*",
    metric: "unique",
    field: "session_id",
    group_by: ["user_id"],
    window: { type: "sliding", size: "5m", slide: "1m" },
    active: true,
    rollup: false,
  },
  {
    rule_id: "user_sessions",
    name: "User sessions (closed after 30 minutes of inactivity)",
    reads: "active_sessions_per_user",
    event_type: "*",
    metric: "count",
    group_by: ["user_id"],
    window: { type: "session", gap: "30m" },
    active: true,
  },
  {
    rule_id: "revenue_by_currency",
    name: "Revenue per minute by currency",
    event_type: "purchase_completed",
    metric: "sum",
    field: "properties.amount",
    group_by: ["properties.currency"],
    window: { type: "tumbling", size: "1m" },
    active: true,
  },
];

/** Late events per type, placed by arrival time: `interval=1m` shows the late events of the last minute (issue 8.10). */
export const LATE_EVENTS_RULE: AggregationRule = {
  rule_id: "late_events",
  name: "Events later than the watermark (by type, by arrival minute)",
  time_basis: "arrival",
  event_type: "*",
  metric: "count",
  group_by: ["event_type"],
  window: { type: "tumbling", size: "1m" },
  active: true,
};

export function matches(rule: AggregationRule, event: AcceptedEvent): boolean {
  return (
    rule.active &&
    rule.reads === undefined &&
    (rule.event_type === "*" || rule.event_type === event.event_type)
  );
}

/** Reads a dotted path (`properties.amount`, `user_id`) from an event: own properties only. */
export function valueAt(event: AcceptedEvent, path: string): unknown {
  let value: unknown = event;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object" || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

const groupValue = (v: unknown): string =>
  v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);

/**
 * NULs then "other": OTHER_GROUP (where a full window counts further groups), and the values that
 * would spell it or an escaped value once a NUL is added or taken off.
 */
const OTHER_SPELLING = /^\0+other$/;

/**
 * A one-path group key is the value itself, so a value spelled like OTHER_GROUP would be that
 * group (merged into the overflow, shown as `{other: "true"}`). Such values, and every value of
 * NULs then "other", get one more leading NUL: distinct from OTHER_GROUP and from each other,
 * while every other value is stored as it always was. `groupText` takes the NUL off again.
 */
const escapeGroupValue = (v: string): string =>
  v.charCodeAt(0) === 0 && OTHER_SPELLING.test(v) ? `\0${v}` : v;

/** A one-path group key back to its value (`escapeGroupValue` undone); other keys as they are. */
export const groupText = (key: string): string =>
  key.length > OTHER_GROUP.length && key.charCodeAt(0) === 0 && OTHER_SPELLING.test(key) ? key.slice(1) : key;

/**
 * The group of an event under a rule: the value itself for one group-by path (escaped where it
 * would spell OTHER_GROUP), a JSON array of the values for several (absent values are empty
 * strings; a JSON array never spells OTHER_GROUP). Any character, NUL included, is safe.
 */
export function groupKey(rule: AggregationRule, event: AcceptedEvent): string {
  const paths = rule.group_by;
  if (paths.length === 0) return "";
  if (paths.length === 1) return escapeGroupValue(groupValue(valueAt(event, paths[0] as string)));
  return JSON.stringify(paths.map((path) => groupValue(valueAt(event, path))));
}

export function splitGroupKey(rule: Pick<AggregationRule, "group_by">, key: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  if (rule.group_by.length === 1) out[rule.group_by[0] as string] = groupText(key);
  else if (rule.group_by.length > 1) {
    const values = JSON.parse(key) as string[];
    rule.group_by.forEach((path, i) => {
      out[path] = values[i] ?? "";
    });
  }
  return { ...out };
}

export function numericValue(event: AcceptedEvent, path: string | undefined): number | undefined {
  if (!path) return undefined;
  const v = valueAt(event, path);
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

import type { AcceptedEvent } from "../contract/event.ts";
import { HyperLogLog } from "./hll.ts";
import { addValue, type GroupPartial, type Groups, MAX_FIELDS, newStats, tracksProperty } from "./partial.ts";
import { type AggregationRule, groupKey, matches, numericValue, storageKey, valueAt } from "./rules.ts";

/**
 * Folding a partition's records into per-window deltas.
 *
 * A batch (or a slice of one) of a single source partition becomes one delta per
 * (rule, minute window): the groups it touched, nothing else. The window store writes those
 * deltas behind a claim in the partition's offset fence (lib/pipeline/aggregate-batch.ts), so
 * what a write costs is proportional to what the slice changed, never to how big the window has
 * grown, and a replay (records at or below the fence) changes nothing. Readers merge the deltas
 * and compacted partials of a window (lib/stream/read.ts).
 */
export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export type Granularity = "m" | "h";
export const GRANULARITY_MS: Record<Granularity, number> = { m: MINUTE_MS, h: HOUR_MS };
/** Per-minute partials live two days; hourly roll-ups (the downsampled series) live 90 days. */
export const TTL_SECONDS: Record<Granularity, number> = { m: 2 * 86_400, h: 90 * 86_400 };

export interface SourcedEvent {
  readonly partition: number;
  readonly offset: number;
  readonly event: AcceptedEvent;
}

/** One window of one rule (its storage key: a new rule version is a new key). */
export interface WindowRef {
  readonly ruleKey: string;
  readonly granularity: Granularity;
  readonly windowStart: number;
}

export interface WindowDelta {
  readonly ref: WindowRef;
  readonly groups: Groups;
  /**
   * The rule keeps hourly roll-ups: this minute's groups reach its hour when a compaction absorbs
   * the delta (lib/pipeline/aggregate-batch.ts), not through a delta of the hour in every batch.
   */
  readonly rollsUp: boolean;
}

export const windowKey = (ref: WindowRef) => `${ref.ruleKey}#${ref.granularity}#${ref.windowStart}`;

/** The window a `windowKey` names (rule keys may hold `#`: the last two separate the rest). */
export function parseWindowKey(key: string): WindowRef {
  const cut = key.lastIndexOf("#");
  const gCut = key.lastIndexOf("#", cut - 1);
  return {
    ruleKey: key.slice(0, gCut),
    granularity: key.slice(gCut + 1, cut) as Granularity,
    windowStart: Number(key.slice(cut + 1)),
  };
}

export function windowStartOf(ts: number, granularity: Granularity): number {
  const size = GRANULARITY_MS[granularity];
  return Math.floor(ts / size) * size;
}

/** The instant a rule places an event at: event time, or arrival time for `late_events`. */
export const placedAt = (rule: AggregationRule, event: AcceptedEvent) =>
  rule.time_basis === "arrival" ? event.received_at : event.timestamp;

/**
 * Folds one partition's records into minute deltas (keyed by `windowKey`), adding to `into` if
 * given. Hours are not folded here: compactions roll the minutes up (`WindowDelta.rollsUp`).
 */
export function foldRecords(
  records: readonly SourcedEvent[],
  rules: readonly AggregationRule[],
  into: Map<string, WindowDelta> = new Map(),
): Map<string, WindowDelta> {
  // Hot loop: deltas of this fold are found by a numeric key (window × rule × granularity)
  // instead of building their string keys for every event.
  const byNumber = new Map<number, WindowDelta>();
  const ruleCount = rules.length;
  const keys = rules.map(storageKey);
  for (const { event } of records) {
    for (let ri = 0; ri < ruleCount; ri++) {
      const rule = rules[ri] as AggregationRule;
      if (!matches(rule, event)) continue;
      const windowStart = Math.floor(placedAt(rule, event) / MINUTE_MS) * MINUTE_MS;
      const numberKey = (windowStart / MINUTE_MS) * ruleCount + ri;
      let delta = byNumber.get(numberKey);
      if (!delta) {
        const ref: WindowRef = { ruleKey: keys[ri] as string, granularity: "m", windowStart };
        const key = windowKey(ref);
        delta = into.get(key);
        if (!delta) {
          delta = { ref, groups: new Map(), rollsUp: rule.rollup !== false };
          into.set(key, delta);
        }
        byNumber.set(numberKey, delta);
      }
      foldEvent(delta.groups, rule, event);
    }
  }
  return into;
}

function foldEvent(groups: Groups, rule: AggregationRule, event: AcceptedEvent): void {
  const group = groupKey(rule, event);
  let partial = groups.get(group);
  if (!partial) {
    partial = { c: 0 };
    groups.set(group, partial);
  }
  partial.c++;
  if (rule.metric !== "unique" && rule.metric !== "count") {
    const value = numericValue(event, rule.field);
    if (value !== undefined) {
      if (partial.v) addValue(partial.v, value);
      else partial.v = newStats(value);
    }
  }
  if (rule.metric === "unique" || rule.detailed) {
    const counted = rule.metric === "unique" ? valueAt(event, rule.field ?? "user_id") : event.user_id;
    if (counted !== undefined && counted !== null && counted !== "") {
      partial.h ??= new HyperLogLog();
      partial.h.add(typeof counted === "object" ? JSON.stringify(counted) : String(counted));
    }
  }
  if (rule.detailed && event.properties) foldProperties(partial, event.properties);
}

function foldProperties(partial: GroupPartial, properties: Readonly<Record<string, unknown>>): void {
  partial.f ??= new Map();
  for (const name of Object.keys(properties)) {
    const v = properties[name];
    if (typeof v !== "number" || !Number.isFinite(v)) continue;
    const stats = partial.f.get(name);
    if (stats) addValue(stats, v);
    // Checked for new names only: every name kept passed it.
    else if (!tracksProperty(name)) continue;
    else if (partial.f.size < MAX_FIELDS) partial.f.set(name, newStats(v));
    else partial.ft = true;
  }
}

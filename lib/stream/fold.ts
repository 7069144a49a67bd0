import type { AcceptedEvent } from "../contract/event.ts";
import { HyperLogLog } from "./hll.ts";
import { type AggregationRule, groupKey, matches, numericValue, valueAt } from "./rules.ts";

/**
 * Folding events into partial aggregates with an exactly-once effect.
 *
 * One item per (rule, granularity, window, source partition): exactly one consumer writes it
 * (the one reading that partition), and it records the highest offset folded in. A record at or
 * below that offset is already in, so replays, retries after a crash mid-batch and redeliveries
 * change no number. Readers merge the partials of every partition.
 */
export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export type Granularity = "m" | "h";
export const GRANULARITY_MS: Record<Granularity, number> = { m: MINUTE_MS, h: HOUR_MS };
/** Per-minute partials live two days; hourly roll-ups (the downsampled series) live 90 days. */
export const TTL_SECONDS: Record<Granularity, number> = { m: 2 * 86_400, h: 90 * 86_400 };
/** Groups per item beyond which new groups fold into OTHER_GROUP (a DynamoDB item is ≤ 400 KB). */
export const MAX_GROUPS_PER_ITEM = 2_000;
export const OTHER_GROUP = "\u0000other";
/** Numeric properties tracked per group by detailed rules. */
const MAX_FIELDS = 32;

export interface FieldStats {
  c: number;
  s: number;
  mn: number;
  mx: number;
}

export interface GroupPartial {
  /** events */
  c: number;
  /** sum, min, max of the rule's field */
  s?: number;
  mn?: number;
  mx?: number;
  /** serialized HyperLogLog (unique metric; unique users for detailed rules) */
  h?: Uint8Array;
  /** detailed rules: stats of every numeric property */
  f?: Record<string, FieldStats>;
}

export interface WindowItem {
  readonly pk: string;
  readonly sk: string;
  readonly ruleId: string;
  readonly granularity: Granularity;
  readonly windowStart: number;
  readonly partition: number;
  lastOffset: number;
  groups: Record<string, GroupPartial>;
  expiresAt: number;
}

export interface SourcedEvent {
  readonly partition: number;
  readonly offset: number;
  readonly event: AcceptedEvent;
}

export const windowPk = (ruleId: string, granularity: Granularity, windowStart: number) =>
  `${ruleId}#${granularity}#${windowStart}`;
export const partitionSk = (partition: number) => `p${partition}`;
export const itemId = (pk: string, sk: string) => `${pk}|${sk}`;

export function windowStartOf(ts: number, granularity: Granularity): number {
  const size = GRANULARITY_MS[granularity];
  return Math.floor(ts / size) * size;
}

function emptyItem(
  ruleId: string,
  granularity: Granularity,
  windowStart: number,
  partition: number,
): WindowItem {
  return {
    pk: windowPk(ruleId, granularity, windowStart),
    sk: partitionSk(partition),
    ruleId,
    granularity,
    windowStart,
    partition,
    lastOffset: -1,
    groups: {},
    expiresAt: Math.floor((windowStart + GRANULARITY_MS[granularity]) / 1000) + TTL_SECONDS[granularity],
  };
}

/** The item keys a batch touches (to load them before folding). */
export function touchedKeys(
  records: readonly SourcedEvent[],
  rules: readonly AggregationRule[],
): { pk: string; sk: string }[] {
  const keys = new Map<string, { pk: string; sk: string }>();
  for (const { partition, event } of records) {
    for (const rule of rules) {
      if (!matches(rule, event)) continue;
      for (const g of ["m", "h"] as const) {
        const pk = windowPk(rule.rule_id, g, windowStartOf(event.timestamp, g));
        const sk = partitionSk(partition);
        keys.set(itemId(pk, sk), { pk, sk });
      }
    }
  }
  return [...keys.values()];
}

/**
 * Folds records (in offset order) into their items. `existing` holds the stored items (by
 * itemId); only records above an item's `lastOffset` are folded into it. Returns the items that
 * changed, ready to be written back under the condition that `lastOffset` did not move.
 */
export function foldBatch(
  records: readonly SourcedEvent[],
  rules: readonly AggregationRule[],
  existing: ReadonlyMap<string, WindowItem>,
): Map<string, WindowItem> {
  const changed = new Map<string, WindowItem>();
  const sketches = new Map<string, HyperLogLog>();
  const sketchOf = (id: string, group: string, partial: GroupPartial) => {
    const key = `${id}\u0000${group}`;
    let hll = sketches.get(key);
    if (!hll) {
      hll = partial.h ? HyperLogLog.deserialize(partial.h) : new HyperLogLog();
      sketches.set(key, hll);
    }
    return hll;
  };
  // Hot loop: items of this batch are found by a numeric key (window × rule × granularity ×
  // partition) instead of building their string keys for every event.
  const byNumber = new Map<number, { item: WindowItem; id: string; changed: boolean; groups: number }>();
  const ruleCount = rules.length;
  for (const { partition, offset, event } of records) {
    const minute = Math.floor(event.timestamp / MINUTE_MS);
    for (let ri = 0; ri < ruleCount; ri++) {
      const rule = rules[ri] as AggregationRule;
      if (!matches(rule, event)) continue;
      for (let gi = 0; gi < 2; gi++) {
        const windowStart = gi === 0 ? minute * MINUTE_MS : Math.floor(event.timestamp / HOUR_MS) * HOUR_MS;
        const numberKey = ((windowStart / MINUTE_MS) * ruleCount + ri) * 2048 + gi * 1024 + partition;
        let entry = byNumber.get(numberKey);
        if (!entry) {
          const g: Granularity = gi === 0 ? "m" : "h";
          const id = itemId(windowPk(rule.rule_id, g, windowStart), partitionSk(partition));
          const stored = changed.get(id) ?? existing.get(id);
          const item = stored
            ? changed.has(id)
              ? stored
              : structuredClone(stored)
            : emptyItem(rule.rule_id, g, windowStart, partition);
          entry = { item, id, changed: changed.has(id), groups: Object.keys(item.groups).length };
          byNumber.set(numberKey, entry);
        }
        const item = entry.item;
        if (offset <= item.lastOffset) continue; // already folded in: a replay or a retry
        if (!entry.changed) {
          changed.set(entry.id, item);
          entry.changed = true;
        }
        const id = entry.id;
        item.lastOffset = offset;
        let group = groupKey(rule, event);
        let partial = item.groups[group];
        if (!partial) {
          if (entry.groups >= MAX_GROUPS_PER_ITEM) group = OTHER_GROUP;
          partial = item.groups[group];
          if (!partial) {
            partial = { c: 0 };
            item.groups[group] = partial;
            entry.groups++;
          }
        }
        partial.c++;
        const value = numericValue(event, rule.field);
        if (value !== undefined && rule.metric !== "unique" && rule.metric !== "count") {
          partial.s = (partial.s ?? 0) + value;
          partial.mn = partial.mn === undefined ? value : Math.min(partial.mn, value);
          partial.mx = partial.mx === undefined ? value : Math.max(partial.mx, value);
        }
        if ((rule.metric === "unique" || rule.detailed) && group !== OTHER_GROUP) {
          const counted = rule.metric === "unique" ? valueAt(event, rule.field ?? "user_id") : event.user_id;
          if (counted !== undefined && counted !== null && counted !== "")
            sketchOf(id, group, partial).add(String(counted));
        }
        if (rule.detailed && event.properties) {
          partial.f ??= {};
          for (const [name, v] of Object.entries(event.properties)) {
            if (typeof v !== "number" || !Number.isFinite(v)) continue;
            const stats = partial.f[name];
            if (stats) {
              stats.c++;
              stats.s += v;
              if (v < stats.mn) stats.mn = v;
              if (v > stats.mx) stats.mx = v;
            } else if (Object.keys(partial.f).length < MAX_FIELDS) {
              partial.f[name] = { c: 1, s: v, mn: v, mx: v };
            }
          }
        }
      }
    }
  }
  for (const [key, hll] of sketches) {
    const [id, group] = key.split("\u0000") as [string, string];
    const partial = changed.get(id)?.groups[group];
    if (partial) partial.h = hll.serialize();
  }
  return changed;
}

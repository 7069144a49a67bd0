import type { WindowStore } from "../adapters/window-store.ts";
import { foldBatch, itemId, type SourcedEvent, touchedKeys, type WindowItem } from "../stream/fold.ts";
import { type AggregationRule, LATE_EVENTS_RULE } from "../stream/rules.ts";
import { advance, DEFAULT_ALLOWED_LATENESS_MS, isLate } from "../stream/watermark.ts";

/**
 * Remembers which offset first carried each recent event_id of a partition, so that a client's
 * resend of an accepted event (same event_id, later offset) counts once. Bounded: ids older than
 * the last `capacity` events of the partition are forgotten (documented in docs/stream-processing.md).
 */
export class RecentEventIds {
  readonly #byPartition = new Map<number, Map<string, number>>();
  constructor(private readonly capacity = 200_000) {}

  /** True when `eventId` was first seen at a lower offset of this partition. */
  isDuplicate(partition: number, eventId: string, offset: number): boolean {
    let ids = this.#byPartition.get(partition);
    if (!ids) {
      ids = new Map();
      this.#byPartition.set(partition, ids);
    }
    const first = ids.get(eventId);
    if (first !== undefined) return first < offset;
    ids.set(eventId, offset);
    if (ids.size > this.capacity) {
      const oldest = ids.keys().next().value;
      if (oldest !== undefined) ids.delete(oldest);
    }
    return false;
  }
}

export interface AggregateDeps {
  readonly store: WindowStore;
  readonly rules: readonly AggregationRule[];
  /** Publishes late events (to `events.late`). */
  readonly publishLate: (late: readonly SourcedEvent[]) => Promise<void>;
  readonly recent: RecentEventIds;
  readonly allowedLatenessMs?: number;
}

export interface AggregateOutcome {
  itemsWritten: number;
  onTime: number;
  late: number;
  duplicates: number;
}

/**
 * One batch of `events.raw` into the aggregates, per source partition: classify each record
 * against the partition's watermark (in offset order), fold on-time records into every matching
 * rule and late ones into `late_events`, publish late events, then commit the changed items
 * (fenced by offset) with the watermark last — so a retry classifies exactly as before.
 */
export async function aggregateBatch(
  topic: string,
  records: readonly SourcedEvent[],
  deps: AggregateDeps,
): Promise<AggregateOutcome> {
  const byPartition = new Map<number, SourcedEvent[]>();
  for (const r of records) {
    const list = byPartition.get(r.partition) ?? [];
    list.push(r);
    byPartition.set(r.partition, list);
  }
  const outcome: AggregateOutcome = { itemsWritten: 0, onTime: 0, late: 0, duplicates: 0 };
  await Promise.all(
    [...byPartition].map(async ([partition, list]) => {
      list.sort((a, b) => a.offset - b.offset);
      const stored = await deps.store.getWatermark(topic, partition);
      let state = stored;
      const onTime: SourcedEvent[] = [];
      const late: SourcedEvent[] = [];
      const inBatch = new Set<string>();
      for (const r of list) {
        // At or below the saved watermark's offset: this record was fully processed before
        // (the watermark is saved last), so a replay must not classify or count it again.
        if (r.offset <= stored.lastOffset) continue;
        const duplicate =
          inBatch.has(r.event.event_id) || deps.recent.isDuplicate(partition, r.event.event_id, r.offset);
        inBatch.add(r.event.event_id);
        if (duplicate) {
          outcome.duplicates++;
          continue;
        }
        if (isLate(r.event.timestamp, state, deps.allowedLatenessMs ?? DEFAULT_ALLOWED_LATENESS_MS))
          late.push(r);
        else onTime.push(r);
        state = advance(state, r.event.timestamp, r.offset);
      }
      const keys = [...touchedKeys(onTime, deps.rules), ...touchedKeys(late, [LATE_EVENTS_RULE])];
      const existing = await deps.store.getMany(keys);
      const changed = new Map<string, WindowItem>([
        ...foldBatch(onTime, deps.rules, existing),
        ...foldBatch(late, [LATE_EVENTS_RULE], existing),
      ]);
      if (late.length > 0) await deps.publishLate(late);
      await deps.store.commit(
        [...changed.values()].map((item) => ({
          item,
          expected: existing.get(itemId(item.pk, item.sk))?.lastOffset,
        })),
        { topic, partition, state },
      );
      outcome.itemsWritten += changed.size;
      outcome.onTime += onTime.length;
      outcome.late += late.length;
    }),
  );
  return outcome;
}

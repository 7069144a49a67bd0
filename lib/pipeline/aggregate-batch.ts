import {
  type AggregateStore,
  itemKey,
  type PartialValue,
  type StoredPartial,
} from "../adapters/aggregate-store.ts";

/** An event as the aggregator sees it, with where it came from in Kafka. */
export interface SourcedEvent {
  readonly partition: number;
  readonly offset: number;
  readonly event: {
    readonly event_id: string;
    readonly user_id: string;
    readonly event_type: string;
    readonly timestamp: number;
  };
}

const MINUTE = 60_000;
/** Per-minute partials live two days; hourly roll-ups (issue 4) live longer. */
export const MINUTE_TTL_SECONDS = 2 * 86_400;

export function eventsByTypeKey(eventType: string, windowStart: number): string {
  return `events_by_type#${eventType}#m#${windowStart}`;
}

interface Contribution {
  readonly pk: string;
  readonly sk: string;
  readonly attributes: Record<string, string | number>;
  readonly offsets: number[];
}

/**
 * Folds a batch into per-minute, per-type, per-partition partial counts with an exactly-once
 * effect: each item only takes records above its stored `last_offset`.
 */
export async function aggregateBatch(
  records: readonly SourcedEvent[],
  store: AggregateStore,
): Promise<number> {
  const seen = new Set<string>();
  const contributions = new Map<string, Contribution>();
  for (const { partition, offset, event } of records) {
    if (seen.has(event.event_id)) continue; // a duplicated event_id inside the batch counts once
    seen.add(event.event_id);
    const windowStart = Math.floor(event.timestamp / MINUTE) * MINUTE;
    const pk = eventsByTypeKey(event.event_type, windowStart);
    const sk = `p${partition}`;
    const key = itemKey(pk, sk);
    let c = contributions.get(key);
    if (!c) {
      c = {
        pk,
        sk,
        attributes: {
          rule_id: "events_by_type",
          group: event.event_type,
          window_start: windowStart,
          granularity: "m",
        },
        offsets: [],
      };
      contributions.set(key, c);
    }
    c.offsets.push(offset);
  }
  if (contributions.size === 0) return 0;
  const existing = await store.getMany([...contributions.values()]);
  let written = 0;
  await Promise.all(
    [...contributions.entries()].map(async ([key, c]) => {
      const previous = existing.get(key);
      const fresh = c.offsets.filter((o) => previous === undefined || o > previous.lastOffset);
      if (fresh.length === 0) return;
      const value: PartialValue = { count: (previous?.value.count ?? 0) + fresh.length };
      const item: StoredPartial = {
        pk: c.pk,
        sk: c.sk,
        lastOffset: Math.max(...fresh),
        value,
        expiresAt: Math.floor(Number(c.attributes.window_start) / 1000) + MINUTE_TTL_SECONDS,
        attributes: c.attributes,
      };
      await store.putFenced(item, previous?.lastOffset);
      written++;
    }),
  );
  return written;
}

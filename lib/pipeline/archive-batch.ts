import type { ArchiveStore } from "../adapters/archive-store.ts";
import { archiveObjectKey, partitionOf } from "../archive/layout.ts";
import { parseStoredEvent } from "../contract/event.ts";

export interface SourcedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly value: string;
}

export interface ArchiveOutcome {
  readonly written: number;
  readonly skipped: number;
  readonly rejected: { record: SourcedRecord; reason: string }[];
}

interface Pending {
  lines: string[];
  offsets: number[];
}

/**
 * Appends a batch to the archive with an exactly-once effect: records are grouped by object
 * (Hive partition × source partition × offset block), and each object only takes records above
 * the highest offset it already holds. Records that are not valid events are returned, not
 * dropped, for the dead-letter path.
 */
export async function archiveBatch(
  records: readonly SourcedRecord[],
  store: ArchiveStore,
  prefix: string,
): Promise<ArchiveOutcome> {
  const objects = new Map<string, Pending>();
  const rejected: { record: SourcedRecord; reason: string }[] = [];
  const ordered = [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  for (const r of ordered) {
    const parsed = parseStoredEvent(r.value);
    if (!parsed.ok) {
      rejected.push({ record: r, reason: parsed.reason });
      continue;
    }
    const key = archiveObjectKey(prefix, partitionOf(parsed.event.event_type, parsed.event.timestamp), r);
    let pending = objects.get(key);
    if (!pending) {
      pending = { lines: [], offsets: [] };
      objects.set(key, pending);
    }
    pending.lines.push(r.value);
    pending.offsets.push(r.offset);
  }
  let written = 0;
  let skipped = 0;
  await Promise.all(
    [...objects].map(async ([key, pending]) => {
      const existing = await store.get(key);
      const floor = existing?.maxOffset ?? -1;
      const fresh: string[] = [];
      let maxOffset = floor;
      pending.offsets.forEach((offset, i) => {
        if (offset > floor) {
          fresh.push(pending.lines[i] ?? "");
          maxOffset = Math.max(maxOffset, offset);
        }
      });
      skipped += pending.lines.length - fresh.length;
      if (fresh.length === 0) return;
      await store.put(key, { lines: [...(existing?.lines ?? []), ...fresh], maxOffset });
      written += fresh.length;
    }),
  );
  return { written, skipped, rejected };
}

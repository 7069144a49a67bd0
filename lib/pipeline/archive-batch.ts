import type { ArchiveStore, StoredArchiveObject } from "../adapters/archive-store.ts";
import {
  archiveObjectKey,
  blockStart,
  hourIndexOf,
  isAheadOfReceipt,
  partitionOf,
} from "../archive/layout.ts";
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
  /** Objects read before being rewritten (the others were known from this environment's cache). */
  readonly reads: number;
  /** Writes refused because another writer had changed the object since (then read and redone). */
  readonly conflicts: number;
  readonly rejected: { record: SourcedRecord; reason: string }[];
}

interface Pending {
  readonly source: string;
  readonly block: number;
  readonly lines: string[];
  readonly offsets: number[];
}

/**
 * The archive objects one execution environment wrote, with their entity tags, so that the next
 * batch rewrites them without reading them back. Correctness never rests on the cache: every write
 * is conditional (S3 `If-Match` on the version the cache holds, `If-None-Match: *` for an object it
 * believes new), so an object another environment changed meanwhile — MSK hands a partition's next
 * batch to any environment; retries and replays arrive anywhere — refuses the write, and the batch
 * reads that object and builds on it. Objects of blocks a partition has moved past are dropped (no
 * later record maps to them), and the cache holds at most `maxLines` lines.
 */
export class ArchiveObjectCache {
  readonly #objects = new Map<
    string,
    { readonly source: string; readonly block: number; stored: StoredArchiveObject }
  >();
  #lines = 0;

  constructor(private readonly maxLines = 100_000) {}

  get(key: string): StoredArchiveObject | undefined {
    return this.#objects.get(key)?.stored;
  }

  set(key: string, source: string, block: number, stored: StoredArchiveObject): void {
    this.delete(key);
    this.#objects.set(key, { source, block, stored });
    this.#lines += stored.object.lines.length;
    for (const [oldest, entry] of this.#objects) {
      if (this.#lines <= this.maxLines || oldest === key) break;
      this.#objects.delete(oldest);
      this.#lines -= entry.stored.object.lines.length;
    }
  }

  delete(key: string): void {
    const entry = this.#objects.get(key);
    if (!entry) return;
    this.#objects.delete(key);
    this.#lines -= entry.stored.object.lines.length;
  }

  /** A partition's records now start at `nextOffset`: objects of earlier blocks are done. */
  advance(source: string, nextOffset: number): void {
    const open = blockStart(nextOffset);
    for (const [key, entry] of this.#objects)
      if (entry.source === source && entry.block < open) this.delete(key);
  }

  get size(): number {
    return this.#objects.size;
  }
}

/** Attempts at one object before the batch fails (each lost race means another writer progressed). */
const MAX_ATTEMPTS = 5;

/**
 * Appends a batch to the archive with an exactly-once effect: records are grouped by object
 * (Hive partition × source partition × offset block), and each object only takes records above
 * the highest offset it already holds. Writes are conditional on the version they build on, so
 * concurrent or interleaved writers never overwrite each other's records. Records that are not
 * valid events are returned, not dropped, for the dead-letter path. With a cache (one per
 * execution environment), objects it wrote are not read back before being rewritten.
 */
export async function archiveBatch(
  records: readonly SourcedRecord[],
  store: ArchiveStore,
  prefix: string,
  cache?: ArchiveObjectCache,
): Promise<ArchiveOutcome> {
  const objects = new Map<string, Pending>();
  const rejected: { record: SourcedRecord; reason: string }[] = [];
  const ordered = [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  const nextOffset = new Map<string, number>();
  // The objects of the current source block, by event type, hour and aheadness: consecutive
  // records (in offset order) mostly share one, and its key need not be built again for each.
  let block = { source: "", start: -1 };
  const ofBlock = new Map<string, Pending>();
  for (const r of ordered) {
    const source = `${r.topic}\u0000${r.partition}`;
    nextOffset.set(source, r.offset + 1);
    const parsed = parseStoredEvent(r.value);
    if (!parsed.ok) {
      rejected.push({ record: r, reason: parsed.reason });
      continue;
    }
    const { event } = parsed;
    const start = blockStart(r.offset);
    if (block.source !== source || block.start !== start) {
      block = { source, start };
      ofBlock.clear();
    }
    const ahead = isAheadOfReceipt(event);
    const local = `${event.event_type}\u0000${hourIndexOf(event.timestamp)}${ahead ? "+" : ""}`;
    let pending = ofBlock.get(local);
    if (!pending) {
      const key = archiveObjectKey(prefix, partitionOf(event.event_type, event.timestamp), r, ahead);
      pending = objects.get(key);
      if (!pending) {
        pending = { source, block: start, lines: [], offsets: [] };
        objects.set(key, pending);
      }
      ofBlock.set(local, pending);
    }
    pending.lines.push(r.value);
    pending.offsets.push(r.offset);
  }
  let written = 0;
  let skipped = 0;
  let reads = 0;
  let conflicts = 0;
  await Promise.all(
    [...objects].map(async ([key, pending]) => {
      // Without a cache every object is read first; with one, only after a refused write.
      let read = cache === undefined;
      for (let attempt = 1; ; attempt++) {
        let base: StoredArchiveObject | undefined;
        if (read) {
          reads++;
          base = await store.get(key);
        } else {
          base = cache?.get(key);
        }
        const floor = base?.object.maxOffset ?? -1;
        const fresh: string[] = [];
        let maxOffset = floor;
        pending.offsets.forEach((offset, i) => {
          if (offset > floor) {
            fresh.push(pending.lines[i] ?? "");
            maxOffset = Math.max(maxOffset, offset);
          }
        });
        if (fresh.length === 0) {
          skipped += pending.lines.length;
          if (base) cache?.set(key, pending.source, pending.block, base);
          return;
        }
        const object = { lines: [...(base?.object.lines ?? []), ...fresh], maxOffset };
        const etag = await store.put(key, object, base ? { ifMatch: base.etag } : { ifNoneMatch: true });
        if (etag !== "conflict") {
          cache?.set(key, pending.source, pending.block, { object, etag });
          skipped += pending.lines.length - fresh.length;
          written += fresh.length;
          return;
        }
        conflicts++;
        cache?.delete(key);
        if (attempt >= MAX_ATTEMPTS)
          throw new Error(`archive object ${key} kept changing under ${attempt} writes`);
        read = true;
      }
    }),
  );
  for (const [source, next] of nextOffset) cache?.advance(source, next);
  return { written, skipped, reads, conflicts, rejected };
}

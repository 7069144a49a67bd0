/**
 * Where an event lives in the archive: Hive-style partitions that Athena (partition projection)
 * and DuckDB (hive_partitioning) both understand:
 *   events/event_type=<t>/dt=<YYYY-MM-DD>/hour=<HH>/<topic>-<partition>-<first offset>.ndjson.gz
 * The object name depends only on the record itself: its source partition and the fixed block of
 * offsets it falls in (`ARCHIVE_BLOCK_OFFSETS`), never on how the records happened to be batched.
 * An object holds, in offset order, the records of its block seen so far, and remembers the
 * highest offset it holds; a writer appends only records above it, and writes conditionally on
 * the version it built on (lib/pipeline/archive-batch.ts). So a retried batch, a replay from an
 * earlier offset, or a replay with different batch boundaries rewrites the same objects with the
 * same content and never adds a copy, and no writer overwrites another's records.
 */
// Small enough that a block spans few batches (each batch rewrites the block's open objects),
// large enough to keep objects per hour few; a compaction job is the next step at scale.
export const ARCHIVE_BLOCK_OFFSETS = 2_500;

export function blockStart(offset: number): number {
  return Math.floor(offset / ARCHIVE_BLOCK_OFFSETS) * ARCHIVE_BLOCK_OFFSETS;
}
export interface ArchivePartition {
  readonly eventType: string;
  /** `YYYY-MM-DD` (UTC). */
  readonly dt: string;
  /** `00`..`23` (UTC). */
  readonly hour: string;
}

export function partitionOf(eventType: string, timestampMs: number): ArchivePartition {
  const iso = new Date(timestampMs).toISOString();
  return { eventType, dt: iso.slice(0, 10), hour: iso.slice(11, 13) };
}

export function partitionPrefix(prefix: string, p: ArchivePartition): string {
  return `${prefix}event_type=${p.eventType}/dt=${p.dt}/hour=${p.hour}/`;
}

export function archiveObjectKey(
  prefix: string,
  p: ArchivePartition,
  source: { readonly topic: string; readonly partition: number; readonly offset: number },
): string {
  const block = String(blockStart(source.offset)).padStart(19, "0");
  return `${partitionPrefix(prefix, p)}${source.topic}-${source.partition}-${block}.ndjson.gz`;
}

/** Every `(dt, hour)` between two instants, inclusive, in UTC. */
export function hoursBetween(fromMs: number, toMs: number): { dt: string; hour: string }[] {
  const out: { dt: string; hour: string }[] = [];
  const HOUR = 3_600_000;
  for (let t = Math.floor(fromMs / HOUR) * HOUR; t <= toMs; t += HOUR) {
    const iso = new Date(t).toISOString();
    out.push({ dt: iso.slice(0, 10), hour: iso.slice(11, 13) });
  }
  return out;
}

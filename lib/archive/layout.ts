import { MAX_FUTURE_SKEW_MS } from "../contract/event.ts";

/**
 * Where an event lives in the archive: Hive-style partitions that Athena (partition projection)
 * and DuckDB (hive_partitioning) both understand:
 *   events/event_type=<t>/dt=<YYYY-MM-DD>/hour=<HH>/<topic>-<partition>-<first offset>[-ahead].ndjson.gz
 * The object name depends only on the record itself: its source partition, the fixed block of
 * offsets it falls in (`ARCHIVE_BLOCK_OFFSETS`) and whether it is timestamped ahead of its receipt
 * (`isAheadOfReceipt`), never on how the records happened to be batched.
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
  const { dt, hour } = hourOf(timestampMs);
  return { eventType, dt, hour };
}

/** An hour partition's length, and the unit of `hourIndexOf`. */
export const HOUR_MS = 3_600_000;

/** Which hour partition an instant falls in (hours since the epoch, UTC). */
export const hourIndexOf = (timestampMs: number): number => Math.floor(timestampMs / HOUR_MS);

/** The last hour formatted: a batch's events share a few hours, and formatting a date is not free. */
let lastHour: { readonly index: number; readonly dt: string; readonly hour: string } | undefined;

/** The UTC day and hour of an instant, as the partition names them. */
function hourOf(timestampMs: number): { readonly dt: string; readonly hour: string } {
  const index = hourIndexOf(timestampMs);
  if (lastHour?.index !== index) {
    const iso = new Date(index * HOUR_MS).toISOString();
    lastHour = { index, dt: iso.slice(0, 10), hour: iso.slice(11, 13) };
  }
  return lastHour;
}

export function partitionPrefix(prefix: string, p: ArchivePartition): string {
  return `${prefix}event_type=${p.eventType}/dt=${p.dt}/hour=${p.hour}/`;
}

export function archiveObjectKey(
  prefix: string,
  p: ArchivePartition,
  source: { readonly topic: string; readonly partition: number; readonly offset: number },
  ahead = false,
): string {
  const block = String(blockStart(source.offset)).padStart(19, "0");
  return `${partitionPrefix(prefix, p)}${source.topic}-${source.partition}-${block}${ahead ? AHEAD_SUFFIX : ""}.ndjson.gz`;
}

/**
 * How far an event's own timestamp may run ahead of the API's clock at receipt and still be
 * archived with the others. Events further ahead (a client whose clock runs fast) go to objects of
 * their own (`-ahead`), so that every other object's newest timestamp is bounded by when it was
 * written: see `newestTimestampBound`.
 */
export const AHEAD_OF_RECEIPT_MS = 2_000;
const AHEAD_SUFFIX = "-ahead";

export function isAheadOfReceipt(event: {
  readonly timestamp: number;
  readonly received_at: number;
}): boolean {
  return event.timestamp > event.received_at + AHEAD_OF_RECEIPT_MS;
}

/**
 * Listed `LastModified` is whole seconds, and comes from the S3 service's clock, not the API's:
 * a second for each.
 */
const LAST_MODIFIED_SLACK_MS = 2_000;

/**
 * The newest event timestamp an archive object can hold, from its listing alone. Every record
 * was received (`received_at`, the API's clock) before the archive wrote the object, so its
 * `LastModified` bounds `received_at`; an event archived in an ordinary object is timestamped at
 * most `AHEAD_OF_RECEIPT_MS` later, one in an `-ahead` object at most the contract's future skew.
 * The hour partition bounds both. A name this layout does not write is not bounded. GET /events
 * reads objects in this order, newest bound first, and stops when the page is full of rows newer
 * than any unread object can hold.
 */
export function newestTimestampBound(key: string, lastModifiedMs: number | undefined): number {
  const m = /\/dt=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})\/[^/]+-\d+-\d{19}(-ahead)?\.ndjson\.gz$/.exec(key);
  if (!m || lastModifiedMs === undefined) return Number.POSITIVE_INFINITY;
  const hourEnd = Date.parse(`${m[1]}T${m[2]}:00:00Z`) + HOUR_MS - 1;
  const ahead = m[3] !== undefined ? MAX_FUTURE_SKEW_MS : AHEAD_OF_RECEIPT_MS;
  return Math.min(hourEnd, lastModifiedMs + LAST_MODIFIED_SLACK_MS + ahead);
}

/** Every `(dt, hour)` between two instants, inclusive, in UTC. */
export function hoursBetween(fromMs: number, toMs: number): { dt: string; hour: string }[] {
  const out: { dt: string; hour: string }[] = [];
  for (let t = hourIndexOf(fromMs) * HOUR_MS; t <= toMs; t += HOUR_MS) {
    const iso = new Date(t).toISOString();
    out.push({ dt: iso.slice(0, 10), hour: iso.slice(11, 13) });
  }
  return out;
}

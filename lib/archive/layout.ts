/**
 * Where an event lives in the archive: Hive-style partitions that Athena (partition projection)
 * and DuckDB (hive_partitioning) both understand:
 *   events/event_type=<t>/dt=<YYYY-MM-DD>/hour=<HH>/<topic>-<partition>-<first offset>.ndjson.gz
 * The object name is a function of the batch alone (source partition and the batch's first
 * offset), so a replayed or retried batch overwrites its own objects instead of adding copies.
 */
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
  source: { readonly topic: string; readonly partition: number; readonly firstOffset: number },
): string {
  return `${partitionPrefix(prefix, p)}${source.topic}-${source.partition}-${String(source.firstOffset).padStart(19, "0")}.ndjson.gz`;
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

import { itemSizeBytes, writeUnits } from "../adapters/dynamodb-item-size.ts";
import {
  type Fence,
  fitsOneTransaction,
  type PartialKey,
  type WindowStore,
} from "../adapters/window-store.ts";
import {
  foldRecords,
  GRANULARITY_MS,
  type Granularity,
  MINUTE_MS,
  parseWindowKey,
  type SourcedEvent,
  type WindowDelta,
  type WindowRef,
  windowKey,
  windowStartOf,
} from "../stream/fold.ts";
import { CappedGroups, type Groups, keyCharsOf } from "../stream/partial.ts";
import {
  bucketOf,
  bucketPk,
  decodeGroups,
  deltaSk,
  effectiveRecords,
  encodePartial,
  expiresAt,
  MAX_GROUP_KEY_CHARS_PER_WINDOW,
  MAX_GROUPS_PER_WINDOW,
  type PartialRecord,
  rememberDecoded,
} from "../stream/partial-items.ts";
import { type AggregationRule, LATE_EVENTS_RULE, storageKey } from "../stream/rules.ts";
import { advance, closedBy, DEFAULT_ALLOWED_LATENESS_MS, watermarkOf } from "../stream/watermark.ts";

/**
 * Remembers which offset first carried each recent event_id of a partition, so that a client's
 * resend of an accepted event (same event_id, later offset) counts once. Bounded and per
 * execution environment: docs/stream-processing.md states the exact guarantee.
 *
 * The oldest id is evicted through a ring of insertion order, by key. (Evicting through
 * `map.keys().next()` walks over every entry deleted since V8 last rehashed the table: at
 * 200,000 ids that cost up to 170 µs per event and was most of the aggregator's CPU.)
 */
export class RecentEventIds {
  readonly #byPartition = new Map<number, PartitionIds>();
  constructor(private readonly capacity = 200_000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity ${capacity}`);
  }

  /** True when `eventId` was first seen at a lower offset of this partition. */
  isDuplicate(partition: number, eventId: string, offset: number): boolean {
    let ids = this.#byPartition.get(partition);
    if (!ids) {
      ids = new PartitionIds(this.capacity);
      this.#byPartition.set(partition, ids);
    }
    const first = ids.firstOffset.get(eventId);
    if (first !== undefined) return first < offset;
    ids.remember(eventId, offset);
    return false;
  }

  /** Ids remembered for a partition (at most the capacity). */
  size(partition: number): number {
    return this.#byPartition.get(partition)?.firstOffset.size ?? 0;
  }
}

class PartitionIds {
  readonly firstOffset = new Map<string, number>();
  /** Ids in insertion order; `next` is the oldest once the ring is full. */
  readonly #ring: string[] = [];
  #next = 0;
  constructor(private readonly capacity: number) {}

  remember(eventId: string, offset: number): void {
    if (this.#ring.length < this.capacity) this.#ring.push(eventId);
    else {
      this.firstOffset.delete(this.#ring[this.#next] as string);
      this.#ring[this.#next] = eventId;
      this.#next = (this.#next + 1) % this.capacity;
    }
    this.firstOffset.set(eventId, offset);
  }
}

/**
 * Whether a slice extends its window's open delta (`extension`, the delta with the slice's groups
 * added) rather than writing its own (`own`): when the extension's put costs no more write units
 * than the slice's own delta would over its life, put now and deleted after its compaction.
 * Consecutive slices of a partition touch mostly the same groups: under load an `events_by_type`
 * delta is two or three KB (a unique-users sketch per type) and a per-user one some 15 KB, and a
 * minute of either merged is barely larger than one of them. One put then replaces a put and a
 * later delete of about the same size, readers read one item instead of sixteen, and the window's
 * compaction has one delta to merge, not sixteen.
 */
function worthExtending(extension: PartialRecord, own: () => readonly PartialRecord[]): boolean {
  const units = writeUnits(itemSizeBytes(extension), false);
  // The slice's own delta costs at least a unit to put and one to delete: no need to encode it.
  if (units <= 2) return true;
  return units <= 2 * own().reduce((n, r) => n + writeUnits(itemSizeBytes(r), false), 0);
}

/**
 * The delta this execution environment wrote last, per partition and window, when it is one item:
 * its next slices extend it in place instead of writing a delta each, while that pays
 * (`worthExtending`; docs/stream-processing.md, "Small deltas grow in place"). One delta per slice
 * made a window of a partition up to 16 items before its compaction; extended, it stays one.
 *
 * Valid only while the partition's fence is the one this environment confirmed with them: any
 * other fence (another environment moved it, or this one's last invocation failed after its
 * claim) forgets them, and the next slices write new deltas. A window is forgotten before it is
 * compacted: a delta a compaction absorbed must never be extended.
 */
export class OpenDeltas {
  readonly #byPartition = new Map<
    number,
    { readonly at: number; readonly windows: Map<string, PartialRecord> }
  >();

  /** The partition's open deltas by window key, if `fence` is the one confirmed with them. */
  of(partition: number, fence: Fence): ReadonlyMap<string, PartialRecord> {
    const held = this.#byPartition.get(partition);
    if (held && held.at === fence.lastOffset && !fence.pending && fence.latePending.length === 0)
      return held.windows;
    this.#byPartition.delete(partition);
    return new Map();
  }

  /** The partition's open deltas once the slice that wrote them is confirmed at `lastOffset`. */
  confirmed(partition: number, lastOffset: number, windows: Map<string, PartialRecord>): void {
    this.#byPartition.set(partition, { at: lastOffset, windows });
  }

  /** Forgets a window of the partition (before its compaction). */
  close(partition: number, key: string): void {
    this.#byPartition.get(partition)?.windows.delete(key);
  }
}

/** Deltas a window may collect before its partition compacts them (reads stay a few items). */
export const COMPACT_AFTER: Record<Granularity, number> = { m: 16, h: 64 };
/** Records one compaction transaction absorbs (the rest waits for the next round). */
const COMPACTION_ROUND = 60;

export interface AggregateDeps {
  readonly store: WindowStore;
  readonly rules: readonly AggregationRule[];
  /** Publishes late events (to `events.late`); called only after they are committed. */
  readonly publishLate: (late: readonly SourcedEvent[]) => Promise<void>;
  readonly recent: RecentEventIds;
  /**
   * This execution environment's small deltas, extended by its next slices.
   * @default none: every slice writes a delta per window it changes
   */
  readonly openDeltas?: OpenDeltas;
  readonly allowedLatenessMs?: number;
  /**
   * Deltas a slice is cut at, by estimate (`cutIntoSlices`).
   * @default MAX_SLICE_DELTAS
   */
  readonly maxSliceDeltas?: number;
  /**
   * The invocation's time left (Lambda's `getRemainingTimeInMillis`): no slice is begun that
   * might not be confirmed within it, and the records from there on are left for the next
   * invocation (`AggregateOutcome.unprocessed`). The first slice is always begun.
   * @default unbounded
   */
  readonly remainingMs?: () => number;
  readonly now?: () => number;
  /** Loud warnings (a late event that could not be republished). */
  readonly warn?: (message: string, details: Record<string, unknown>) => void;
}

export interface AggregateOutcome {
  /** Slices claimed, written and confirmed (one per partition per batch but a backfill's: `cutIntoSlices`). */
  slices: number;
  recordsWritten: number;
  onTime: number;
  late: number;
  duplicates: number;
  compactions: number;
  /** Slices an earlier invocation claimed and did not confirm, written again. */
  rewrites: number;
  /** Small deltas a slice extended in place instead of writing its own (`OpenDeltas`). */
  extensions: number;
  /** Of those, extensions of a claimed slice written again that its claimant had not landed. */
  extensionsRewritten: number;
  /**
   * Per partition, the first record left for the next invocation when time ran short
   * (`AggregateDeps.remainingMs`): its records from there on are not counted yet.
   */
  unprocessed: { partition: number; offset: number }[];
}

interface Slice {
  /** The fence that claims the slice (with `pending`). */
  readonly fence: Fence;
  /** New deltas. */
  readonly puts: PartialRecord[];
  /** Open deltas this slice extends: the put over each, and what it replaces. */
  readonly extensions: {
    readonly put: PartialRecord;
    readonly previous: { through: number; bytes: number };
  }[];
  /** The slice's groups per window key (what a rewrite extends an open delta with). */
  readonly deltas: ReturnType<typeof foldRecords>;
  /** The partition's open deltas once the slice is written. */
  readonly open: Map<string, PartialRecord>;
  readonly late: SourcedEvent[];
  readonly onTime: number;
  readonly duplicates: number;
}

/** A claimed slice's deltas cannot be written again: this batch does not carry all its records. */
export class PendingSliceError extends Error {
  override name = "PendingSliceError";
}

/**
 * One batch of `events.raw` into the aggregates, per source partition, in offset order:
 * 1. a slice an earlier invocation claimed but did not confirm written is written again, from the
 *    same records (see `settleFence`), and its late records are published;
 * 2. records above the partition's fence are classified against the watermark (duplicates of a
 *    recent event_id are skipped, but still move the fence) and folded into per-window deltas;
 * 3. the slice is claimed: the fence moves to its last record by a conditional put, recording
 *    what it takes to write the same deltas again (`PendingSlice`);
 * 4. its deltas are put (BatchWriteItem, no transaction), its late records published to
 *    `events.late`, and the fence confirms both by a second conditional put;
 * 5. windows with many deltas, or closed by the watermark, are compacted.
 * A retry, a replay or a concurrent zombie changes no number: everything at or below the fence
 * is skipped, a claim against a moved fence fails, and a slice claimed but not confirmed is
 * written again with the same keys and the same groups, whoever does it.
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
  const outcome: AggregateOutcome = {
    slices: 0,
    recordsWritten: 0,
    onTime: 0,
    late: 0,
    duplicates: 0,
    compactions: 0,
    rewrites: 0,
    extensions: 0,
    extensionsRewritten: 0,
    unprocessed: [],
  };
  await Promise.all(
    [...byPartition].map(([partition, list]) => aggregatePartition(topic, partition, list, deps, outcome)),
  );
  return outcome;
}

async function aggregatePartition(
  topic: string,
  partition: number,
  list: SourcedEvent[],
  deps: AggregateDeps,
  outcome: AggregateOutcome,
): Promise<void> {
  list.sort((a, b) => a.offset - b.offset);
  let fence = await deps.store.getFence(topic, partition);
  if (fence.pending || fence.latePending.length > 0)
    fence = await settleFence(topic, partition, list, fence, deps, outcome);
  const rest = list.filter((r) => r.offset > fence.lastOffset);
  let longestSliceMs = 0;
  for (const records of cutIntoSlices(rest, deps.rules.length, deps.maxSliceDeltas)) {
    const first = records[0];
    if (
      first &&
      longestSliceMs > 0 &&
      deps.remainingMs &&
      deps.remainingMs() < SLICE_TIME_MARGIN * longestSliceMs
    ) {
      outcome.unprocessed.push({ partition, offset: first.offset });
      return;
    }
    const started = performance.now();
    const slice = sliceOf(records, partition, fence, deps, undefined, deps.openDeltas?.of(partition, fence));
    await deps.store.putFence({ topic, partition, expected: fence, fence: slice.fence });
    fence = slice.fence;
    await Promise.all([
      deps.store.putDeltas(slice.puts),
      ...slice.extensions.map((e) => deps.store.extendDelta(e.put, e.previous)),
    ]);
    outcome.slices++;
    outcome.recordsWritten += slice.puts.length + slice.extensions.length;
    outcome.extensions += slice.extensions.length;
    outcome.onTime += slice.onTime;
    outcome.late += slice.late.length;
    outcome.duplicates += slice.duplicates;
    if (slice.late.length > 0) await deps.publishLate(slice.late);
    const confirmed = settled(fence);
    await deps.store.putFence({ topic, partition, expected: fence, fence: confirmed });
    deps.openDeltas?.confirmed(partition, confirmed.lastOffset, slice.open);
    fence = await compactDue(topic, partition, confirmed, deps, outcome);
    longestSliceMs = Math.max(longestSliceMs, performance.now() - started);
  }
}

/**
 * A slice is begun only with this many times the longest slice of the invocation left: a slice
 * cut short by the function's timeout is written again whole by the retry, and locally the
 * timed-out invocation runs on beside it (its fence moves under the retry).
 */
const SLICE_TIME_MARGIN = 3;

/**
 * Deltas a slice is cut at, about (distinct event minutes × rules): a slice is written whole or
 * written again whole, so its size is what a timed-out invocation loses and its retry redoes.
 * Live traffic never comes near it (a batch spans a minute or two); a backfill does: 1,000 events
 * of a partition a minute apart under 25 rules are 26,000 deltas, which DynamoDB Local did not
 * write within the function's 60 s, and every retry, writing the claimed slice again one
 * conditional put at a time, timed out too, until the batch went to the on-failure destination.
 * Cut, each slice is claimed, written and confirmed in turn, and a retry goes on from the last.
 */
export const MAX_SLICE_DELTAS = 2_000;

/**
 * A partition's records in offset order cut into slices of at most `MAX_SLICE_DELTAS` deltas by
 * estimate: each distinct minute of event time is a delta per rule (and one of `late_events`),
 * at least two minutes a slice. One slice, the whole list, under live traffic.
 */
export function cutIntoSlices(
  records: readonly SourcedEvent[],
  rules: number,
  maxDeltas = MAX_SLICE_DELTAS,
): SourcedEvent[][] {
  const maxMinutes = Math.max(2, Math.floor(maxDeltas / (rules + 1)));
  const slices: SourcedEvent[][] = [];
  let current: SourcedEvent[] = [];
  let minutes = new Set<number>();
  for (const r of records) {
    const minute = Math.floor(r.event.timestamp / MINUTE_MS);
    if (!minutes.has(minute) && minutes.size >= maxMinutes) {
      slices.push(current);
      current = [];
      minutes = new Set();
    }
    minutes.add(minute);
    current.push(r);
  }
  if (current.length > 0) slices.push(current);
  return slices;
}

/** The fence once its claimed slice is written and its late records are published. */
const settled = (fence: Fence): Fence => {
  const { pending, ...rest } = fence;
  return {
    ...rest,
    closedBefore: Math.max(fence.closedBefore, pending?.closesBefore ?? Number.NEGATIVE_INFINITY),
    latePending: [],
  };
};

/**
 * Classifies and folds records (all above the fence) into the deltas of one slice, and the fence
 * that claims it. `resends`, when a claimed slice is written again: the offsets its claimant
 * skipped as resends, which decide instead of this environment's recent-id cache.
 */
function sliceOf(
  records: readonly SourcedEvent[],
  partition: number,
  fence: Pick<Fence, "lastOffset" | "maxEventTime" | "closedBefore" | "dirty">,
  deps: AggregateDeps,
  resends?: ReadonlySet<number>,
  open: ReadonlyMap<string, PartialRecord> = new Map(),
): Slice {
  const lateness = deps.allowedLatenessMs ?? DEFAULT_ALLOWED_LATENESS_MS;
  let maxEventTime = fence.maxEventTime;
  const onTime: SourcedEvent[] = [];
  const late: SourcedEvent[] = [];
  const inSlice = new Set<string>();
  const duplicates: number[] = [];
  for (const r of records) {
    const id = r.event.event_id;
    // A slice written again is decided by its claimant's resends alone: this environment's cache
    // neither decides nor learns records at or below the fence, as for any record it skips.
    const duplicate = resends
      ? resends.has(r.offset)
      : inSlice.has(id) || deps.recent.isDuplicate(partition, id, r.offset);
    inSlice.add(id);
    if (duplicate) {
      duplicates.push(r.offset);
      continue;
    }
    // Closed by the running watermark, or by the highest one the partition had (a raised lateness).
    if (closedBy(r.event.timestamp, Math.max(watermarkOf(maxEventTime, lateness), fence.closedBefore)))
      late.push(r);
    else onTime.push(r);
    maxEventTime = advance(maxEventTime, r.event.timestamp, r.event.received_at);
  }
  const deltas = foldRecords(onTime, deps.rules);
  foldRecords(late, [LATE_EVENTS_RULE], deltas);
  for (const [key, delta] of deltas) {
    const groups = withinWindowCap(delta.groups);
    if (groups !== delta.groups) deltas.set(key, { ...delta, groups });
  }
  const closesBefore = Math.max(fence.closedBefore, watermarkOf(maxEventTime, lateness));
  const byArrival = arrivalKeysOf(deps.rules);
  // No on-time event reaches such a window again (the event-time watermark does not close
  // windows placed by arrival).
  const closedForGood = (ref: WindowRef) =>
    ref.windowStart + GRANULARITY_MS[ref.granularity] <= closesBefore && !byArrival.has(ref.ruleKey);
  // Wide: the slice's own records closed two or more of their minutes (a backfill closes
  // hundreds). One is live traffic's lot (an event from a clock running behind, just on time):
  // its minute waits for its compaction, as every minute does, rather than the slice writing a
  // delta of every rule's hour at once.
  const closedMinutes = new Set<number>();
  for (const { ref } of deltas.values()) if (closedForGood(ref)) closedMinutes.add(ref.windowStart);
  const wide = closedMinutes.size >= 2;
  if (wide) rollUpNow(deltas, byArrival);
  const first = records[0]?.offset ?? 0;
  const last = records.at(-1)?.offset ?? fence.lastOffset;
  const now = (deps.now ?? Date.now)();
  const puts: PartialRecord[] = [];
  const extensions: Slice["extensions"] = [];
  const extended: [string, number][] = [];
  const nextOpen = new Map(open);
  const dirty = new Map(fence.dirty);
  for (const [key, delta] of deltas) {
    // A minute whose retention is over already is never read (reads plan its hour instead, which
    // has its groups: a wide slice wrote them there, or the rule keeps no hours): not written. A
    // backfill of last month writes its hours, not 43,200 minutes of every rule.
    if (
      delta.ref.granularity === "m" &&
      !delta.rollsUp &&
      expiresAt("m", delta.ref.windowStart) * 1000 <= now
    )
      continue;
    let own: PartialRecord[] | undefined;
    const encoded = () =>
      (own ??= encodePartial(delta.ref, partition, "d", first, delta.groups, now, delta.rollsUp, last));
    const previous = open.get(key);
    // A delta that rolls up is extended only by groups that roll up, and one that does not only
    // by groups that do not (a wide slice's minutes went to their hour already).
    const extension =
      previous?.t !== undefined && (previous.u === 1) === delta.rollsUp
        ? extendedDelta(previous, delta, last, now)
        : undefined;
    if (previous?.t !== undefined && extension && worthExtending(extension, encoded)) {
      extensions.push({
        put: extension,
        previous: { through: previous.t, bytes: itemSizeBytes(previous) },
      });
      extended.push([key, previous.offset]);
      nextOpen.set(key, extension);
      continue;
    }
    const written = encoded();
    puts.push(...written);
    // A wide slice's windows need no compaction of theirs: nothing in them waits to roll up,
    // and a window it closed gets no on-time event again. Listed only if listed already (then
    // compacted with what it had), so a backfill's thousands of windows stay off the fence.
    if (!wide || delta.rollsUp || dirty.has(key)) dirty.set(key, (dirty.get(key) ?? 0) + written.length);
    const [only, ...more] = written;
    if (only && more.length === 0 && !closedForGood(delta.ref)) {
      nextOpen.set(key, only);
      // The next slice extends it: decoded already (the slice's deltas are only read from now on).
      rememberDecoded(only, delta.groups);
    } else nextOpen.delete(key);
  }
  // Deltas of windows closed for good are never extended: not held (a backfill held every minute
  // it passed, 74,700 deltas after 1,500 minutes under 50 rules).
  for (const [key, delta] of nextOpen)
    if (closedForGood({ ruleKey: delta.rule, granularity: delta.g, windowStart: delta.ws }))
      nextOpen.delete(key);
  return {
    fence: {
      lastOffset: last,
      maxEventTime,
      closedBefore: fence.closedBefore,
      dirty,
      latePending: late.map((r) => r.offset),
      pending: {
        first,
        records: records.length,
        maxEventTime: fence.maxEventTime,
        closesBefore,
        duplicates,
        ...(extended.length > 0 ? { extended } : {}),
      },
      stored: true,
    },
    puts,
    extensions,
    deltas,
    open: nextOpen,
    late,
    onTime: onTime.length,
    duplicates: duplicates.length,
  };
}

/** Storage keys of the rules that place events by arrival time (`late_events` among them). */
const arrivalKeysOf = (rules: readonly AggregationRule[]): ReadonlySet<string> =>
  new Set([...rules, LATE_EVENTS_RULE].filter((r) => r.time_basis === "arrival").map((r) => storageKey(r)));

/**
 * A wide slice (one whose own records moved the watermark past the end of two or more minutes
 * they hold) writes each rolling-up minute's groups to the minute's hour at
 * once, as a delta of the hour, and its minute deltas do not roll up. Otherwise every minute such
 * a slice touched would wait in the fence's dirty list for a compaction to roll it up: a backfill
 * of 5,000 minutes under 44 rules listed 220,000 windows (443 KiB), past DynamoDB's 400 KB item,
 * and compactions take two a commit. Deterministic in the slice's records and fence, as a claimed
 * slice written again must be. Windows placed by arrival time keep rolling up at compaction.
 * The hour's delta is keyed by the slice's first offset, below the fence's last (a wide slice has
 * two records at least: one cannot close its own window), so no compaction's roll-up, keyed by
 * the fence's offset, takes its key.
 */
function rollUpNow(deltas: Map<string, WindowDelta>, byArrival: ReadonlySet<string>): void {
  const hours = new Map<string, { ref: WindowRef; groups: CappedGroups }>();
  for (const [key, delta] of deltas) {
    if (!delta.rollsUp || delta.ref.granularity !== "m" || byArrival.has(delta.ref.ruleKey)) continue;
    deltas.set(key, { ...delta, rollsUp: false });
    const ref = hourOf(delta.ref);
    const hourKey = windowKey(ref);
    let hour = hours.get(hourKey);
    if (!hour) {
      hour = { ref, groups: windowGroups() };
      hours.set(hourKey, hour);
    }
    hour.groups.add(delta.groups);
  }
  for (const [key, { ref, groups }] of hours) deltas.set(key, { ref, groups: groups.groups, rollsUp: false });
}

/** An empty window's groups, merged under a window's bounds (groups and key characters per partition). */
const windowGroups = () => new CappedGroups(MAX_GROUPS_PER_WINDOW, MAX_GROUP_KEY_CHARS_PER_WINDOW);

/**
 * A slice's groups of one window held to the window's bounds: one batch of long group values
 * (page URLs, whole objects) can pass them alone, and its delta would be written whole before any
 * compaction applied them. The same records give the same groups, so a slice written again
 * (claims, resends) keeps and overflows the same ones.
 */
function withinWindowCap(groups: Groups): Groups {
  if (groups.size <= MAX_GROUPS_PER_WINDOW && keyCharsOf(groups) <= MAX_GROUP_KEY_CHARS_PER_WINDOW)
    return groups;
  return windowGroups().add(groups).groups;
}

/**
 * `previous` (a delta of one window of the partition) with `delta`'s groups added: the same key,
 * holding groups through `through`; undefined if it no longer fits one item.
 */
function extendedDelta(
  previous: PartialRecord,
  delta: { readonly ref: WindowRef; readonly groups: Groups; readonly rollsUp: boolean },
  through: number,
  now: number,
): PartialRecord | undefined {
  const { groups } = windowGroups().add(decodeGroups(previous)).add(delta.groups);
  const [put, ...more] = encodePartial(
    delta.ref,
    previous.p,
    "d",
    previous.offset,
    groups,
    now,
    delta.rollsUp,
    through,
  );
  if (!put || more.length > 0) return undefined;
  // The next slice extends this delta again (and a compaction merges it): decoded already.
  rememberDecoded(put, groups);
  return put;
}

/**
 * An earlier invocation claimed a slice but did not confirm it: it may have died before writing
 * every delta, or before publishing the slice's late records (the mapping redelivers them: its
 * offset was not committed). The slice's deltas are written again — the same records, watermark
 * and resends give the same keys and groups, so a write that did land is overwritten with itself —
 * its late records published, and the fence confirmed. (At least once on `events.late`: a crash
 * between the publish and the confirmation repeats it.)
 *
 * If this batch carries only part of the slice, nothing can be written: PendingSliceError, and
 * the mapping retries. If it carries none of it and starts above it, the mapping moved past the
 * slice: an invocation that claims a slice confirms it before it succeeds, so the slice's batch
 * failed every retry and was dead-lettered. The fence is confirmed, loudly.
 */
async function settleFence(
  topic: string,
  partition: number,
  list: readonly SourcedEvent[],
  fence: Fence,
  deps: AggregateDeps,
  outcome: AggregateOutcome,
): Promise<Fence> {
  const { pending } = fence;
  if (pending) {
    const records = list.filter((r) => r.offset >= pending.first && r.offset <= fence.lastOffset);
    // Records below the slice only (a short redelivery, a replay): nothing here to write or to skip.
    if (list.every((r) => r.offset < pending.first)) return fence;
    const above = list.every((r) => r.offset > fence.lastOffset);
    if (records.length === pending.records) {
      const again = sliceOf(
        records,
        partition,
        { ...fence, maxEventTime: pending.maxEventTime },
        deps,
        new Set(pending.duplicates),
      );
      // Windows whose open delta the claimant extended get that delta extended, if it was not.
      const extended = new Map(pending.extended ?? []);
      const fresh = again.puts.filter(
        (p) => !extended.has(windowKey({ ruleKey: p.rule, granularity: p.g, windowStart: p.ws })),
      );
      // Only what the claimant did not write: a delta it wrote holds the same groups (or, once it
      // went on to extend it, more: hence a put only where the key is free).
      await deps.store.putDeltasIfAbsent(await deps.store.missingDeltas(fresh));
      for (const [key, offset] of extended)
        if (await extendAgain(partition, fence, key, offset, again, deps)) outcome.extensionsRewritten++;
      outcome.rewrites++;
    } else if (above) {
      // The mapping moved past the slice without an invocation that wrote it: its batch failed
      // every retry and went to the on-failure destination. Like any dead-lettered batch it is not
      // counted — but the claimant may have written some of its deltas before it died.
      deps.warn?.("a claimed slice was dead-lettered: some of its deltas may be written", {
        partition,
        first: pending.first,
        last: fence.lastOffset,
      });
    } else {
      throw new PendingSliceError(
        `partition ${partition}: the claimed slice ${pending.first}..${fence.lastOffset} has ${pending.records} records, this batch carries ${records.length}`,
      );
    }
  }
  if (fence.latePending.length > 0) {
    const late = new Set(fence.latePending);
    const found = list.filter((r) => late.has(r.offset));
    if (found.length > 0) await deps.publishLate(found);
    if (found.length < late.size)
      deps.warn?.("late events not redelivered: cannot republish them to events.late", {
        partition,
        missing: late.size - found.length,
      });
  }
  const next = settled(fence);
  await deps.store.putFence({ topic, partition, expected: fence, fence: next });
  return next;
}

/**
 * A claimed slice written again extends the open delta its claimant extended (`pending.extended`),
 * unless the claimant's extension landed: the stored delta then holds groups through the slice's
 * last offset. Conditioned on the delta's `t` as read, so the claimant's extension, if it is still
 * on its way, and this one cannot both land.
 */
async function extendAgain(
  partition: number,
  fence: Fence,
  key: string,
  offset: number,
  again: Slice,
  deps: AggregateDeps,
): Promise<boolean> {
  const delta = again.deltas.get(key);
  const ref = parseWindowKey(key);
  const stored = await deps.store.getDelta({
    pk: bucketPk(ref.ruleKey, ref.granularity, bucketOf(ref.granularity, ref.windowStart)),
    sk: deltaSk(ref.windowStart, partition, offset, 0),
  });
  const first = fence.pending?.first ?? fence.lastOffset;
  if (stored?.t === fence.lastOffset) return false;
  if (!delta || stored?.t === undefined || stored.t >= first)
    throw new Error(
      `partition ${partition}: the claimed slice ${first}..${fence.lastOffset} extends the delta of ${key} at offset ${offset}, which holds groups through ${stored?.t ?? "nothing"}`,
    );
  const extension = extendedDelta(stored, delta, fence.lastOffset, (deps.now ?? Date.now)());
  if (!extension)
    throw new Error(
      `partition ${partition}: the delta of ${key} at offset ${offset} no longer fits one item`,
    );
  await deps.store.extendDelta(extension, { through: stored.t, bytes: itemSizeBytes(stored) });
  return true;
}

/**
 * Compactions one commit may be followed by, at most. Windows close together: at each minute's
 * close every rule's window of every partition falls due at once, and compacting them all before
 * the next batch held the partition's next batch back by 1.6–1.9 s in the bench (session 7), the
 * worst of the freshness tail: each is a read and a transaction on a busy DynamoDB, 264 ms at the
 * median and up to 1 s there (per-user windows the largest). The rest wait in the fence's dirty list for the next commits: a window's deltas stay
 * readable meanwhile, so nothing but its read cost waits. About 45 commits a minute per
 * partition under load can make 90 compactions; some 25 fall due.
 */
export const MAX_COMPACTIONS_PER_COMMIT = 2;

/**
 * Compacts the windows of this partition that collected many deltas or were closed by the
 * watermark: oldest window first, at most `MAX_COMPACTIONS_PER_COMMIT`.
 */
async function compactDue(
  topic: string,
  partition: number,
  fence: Fence,
  deps: AggregateDeps,
  outcome: AggregateOutcome,
): Promise<Fence> {
  const lateness = deps.allowedLatenessMs ?? DEFAULT_ALLOWED_LATENESS_MS;
  const now = (deps.now ?? Date.now)();
  const due: WindowRef[] = [];
  for (const [key, count] of fence.dirty) {
    const ref = parseWindowKey(key);
    const end = ref.windowStart + GRANULARITY_MS[ref.granularity];
    const closed = end <= fence.closedBefore || end <= now - lateness - 60_000;
    if (closed || count >= COMPACT_AFTER[ref.granularity]) due.push(ref);
  }
  due.sort((a, b) => a.windowStart - b.windowStart);
  let current = fence;
  // Hours this commit's compactions wrote to or compacted: a roll-up delta is keyed by the
  // fence's offset, so a second one into the same hour waits for the next commit.
  const hoursTouched = new Set<string>();
  let compactions = 0;
  for (const ref of due) {
    if (compactions >= MAX_COMPACTIONS_PER_COMMIT) break;
    const hour = windowKey(ref.granularity === "h" ? ref : hourOf(ref));
    if (ref.granularity === "m" && hoursTouched.has(hour)) continue;
    const key = windowKey(ref);
    const undone = `${topic}#${partition}#${key}`;
    // Found too large for one transaction, and no delta added since: reading it again would only
    // find the same.
    if (tooLargeToCompact.get(undone) === current.dirty.get(key)) continue;
    // Before the compaction's transaction: once it commits, the delta it absorbed must not grow.
    deps.openDeltas?.close(partition, key);
    const next = await compactWindow(topic, partition, ref, current, deps, now);
    compactions++;
    if (next === undefined) {
      if (tooLargeToCompact.size >= MAX_TOO_LARGE_REMEMBERED) tooLargeToCompact.clear();
      tooLargeToCompact.set(undone, current.dirty.get(key) ?? 0);
      continue;
    }
    current = next;
    hoursTouched.add(hour);
    outcome.compactions++;
  }
  return current;
}

/**
 * Windows (topic, partition, window key) whose compaction did not fit one transaction, with the
 * fence's delta count for them then: per execution environment, so a cold start tries each once.
 */
const tooLargeToCompact = new Map<string, number>();
const MAX_TOO_LARGE_REMEMBERED = 10_000;

/** The hourly window a minute window rolls up into. */
const hourOf = (ref: WindowRef): WindowRef => ({
  ruleKey: ref.ruleKey,
  granularity: "h",
  windowStart: windowStartOf(ref.windowStart, "h"),
});

/**
 * Merges a window's compacted partial and deltas of this partition into one compacted partial.
 * Undefined, with nothing written, when that transaction would pass DynamoDB's limits (100 items,
 * 4 MB): a window of thousands of groups each with a dense unique-count sketch (unique visitors
 * per page: 3,400 pages of 2,000 visitors an hour on a partition) compacts to more than 4 MB, and
 * the refused transaction failed every later batch of the partition, since the window stays due.
 * Its deltas stay as they are, readers merge them as before (a minute's deltas still count in
 * their hour: the window stays dirty, so its hour stays unrolled), and the window is tried again
 * once it has more deltas.
 */
async function compactWindow(
  topic: string,
  partition: number,
  ref: WindowRef,
  fence: Fence,
  deps: AggregateDeps,
  now: number,
): Promise<Fence | undefined> {
  const key = windowKey(ref);
  const raw = await deps.store.read(ref.ruleKey, ref.granularity, [ref.windowStart], partition);
  const stored = effectiveRecords(raw);
  // Deltas an earlier compaction absorbed but did not delete (it died between its commit and
  // `discard`): no number counts them; this compaction deletes them with its own.
  const effective = new Set(stored);
  const leftovers = raw.filter((r) => r.kind === "d" && !effective.has(r));
  const compacted = stored.filter((r) => r.kind === "c");
  const deltas = stored
    .filter((r) => r.kind === "d")
    .sort((a, b) => a.offset - b.offset || a.chunk - b.chunk);
  // Whole slices only: all chunks of the last delta absorbed must be in this round.
  let take = Math.min(deltas.length, COMPACTION_ROUND);
  while (take < deltas.length && take > 0 && deltas[take]?.offset === deltas[take - 1]?.offset) take--;
  const absorbed = deltas.slice(0, take);
  const remaining = deltas.length - absorbed.length;
  const merged = windowGroups();
  for (const r of [...compacted, ...absorbed]) merged.add(decodeGroups(r));
  const { groups } = merged;
  const through = absorbed.at(-1)?.offset ?? compacted[0]?.offset ?? -1;
  const puts = absorbed.length > 0 ? encodePartial(ref, partition, "c", through, groups, now) : [];
  // The hour's roll-up gains exactly what this compaction absorbs from the minute, in the same
  // transaction: a delta of the hour at the fence's offset (higher than any delta of the hour
  // this partition wrote before, so the hour's own compactions order it after them).
  const rolledUp = windowGroups();
  for (const r of absorbed) if (r.u === 1) rolledUp.add(decodeGroups(r));
  const rolled = rolledUp.groups;
  const hour = hourOf(ref);
  const rollup = rolled.size > 0 ? encodePartial(hour, partition, "d", fence.lastOffset, rolled, now) : [];
  const putKeys = new Set(puts.map((p) => p.sk));
  // Compacted chunks the new partial no longer fills go in the transaction: their keys are
  // written again by later compactions, so a late delete could remove a newer chunk.
  const deletes: PartialKey[] = compacted.filter((r) => absorbed.length > 0 && !putKeys.has(r.sk)).map(keyOf);
  // Compacted chunks the puts overwrite: a put over an item is billed by the larger of the two.
  const replaces = new Map(
    compacted.filter((r) => putKeys.has(r.sk)).map((r) => [r.sk, itemSizeBytes(r)] as const),
  );
  if (!fitsOneTransaction([...puts, ...rollup], deletes)) {
    deps.warn?.("compaction left undone: over DynamoDB's transaction limits (100 items, 4 MB)", {
      partition,
      window: key,
      records: stored.length,
      puts: puts.length + rollup.length,
    });
    return undefined;
  }
  const dirty = new Map(fence.dirty);
  if (remaining > 0) dirty.set(key, remaining);
  else dirty.delete(key);
  if (rollup.length > 0) dirty.set(windowKey(hour), (dirty.get(windowKey(hour)) ?? 0) + rollup.length);
  const next: Fence = { ...fence, dirty };
  await deps.store.apply({
    topic,
    partition,
    expected: fence,
    fence: next,
    puts: [...puts, ...rollup],
    deletes,
    replaces,
  });
  // Absorbed deltas go after the commit, by plain deletes (half a transactional delete's units):
  // from the commit on, readers drop them (their offset is at or below the compacted partial's).
  await deps.store.discard([...absorbed, ...leftovers].map(keyOf));
  return next;
}

const keyOf = (r: PartialRecord): PartialKey => ({ pk: r.pk, sk: r.sk, bytes: itemSizeBytes(r) });

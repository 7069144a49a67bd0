import { createHash } from "node:crypto";
import { GRANULARITY_MS, type Granularity, TTL_SECONDS, type WindowRef, windowStartOf } from "./fold.ts";
import {
  encodeGroup,
  type GroupPartial,
  type Groups,
  mergeGroups,
  PackedGroups,
  packGroups,
} from "./partial.ts";

/**
 * How partial aggregates are laid out as stored items (DynamoDB locally and in AWS; the memory
 * store of the unit tests uses the same records).
 *
 * - `pk = <rule key>#<m|h>#<bucket start>`: one rule's items for one hour (minute windows) or one
 *   day (hourly windows), from every source partition. A range read, whatever the number of
 *   partitions, is one Query per bucket: DynamoDB Local spends ~2 ms of CPU per request whatever it
 *   returns, and a GET /stats that queried each partition's own key made 12–24 requests.
 * - `sk = <window start>#p<partition>#d#<slice offset>#<chunk>` for a delta: the groups one
 *   committed slice of the partition changed in that window (`slice offset` = the slice's first
 *   offset, so a retry of the same slice overwrites the same keys);
 *   `sk = <window start>#p<partition>#c#<chunk>` for the compacted partial that absorbed the
 *   window's deltas of that partition through offset `offset`. Exactly one consumer writes the
 *   keys of a partition (the fence says which), so writers never touch each other's items; the
 *   window start leads, so a range of windows of every partition is one contiguous key range.
 * - `b`: the groups, encoded and deflated (lib/stream/partial.ts), cut into chunks so an item stays
 *   far below DynamoDB's 400 KB.
 * - Hourly windows (`h`) are written by compactions, not by batches: a compaction of a minute
 *   window puts the groups of the deltas it absorbed (those marked `u`) as one delta of the hour,
 *   at the fence's offset (lib/pipeline/aggregate-batch.ts). Until then the minute's deltas are
 *   the hour's only copy, so readers of an hour add them (`unrolledDeltas`).
 */
export type PartialKind = "d" | "c";

export interface PartialRecord {
  readonly pk: string;
  readonly sk: string;
  readonly rule: string;
  readonly g: Granularity;
  readonly ws: number;
  readonly p: number;
  readonly kind: PartialKind;
  /** delta: its slice's first offset; compacted: the highest delta offset absorbed */
  readonly offset: number;
  readonly chunk: number;
  /** events in this record (all groups) */
  readonly n: number;
  readonly b: Uint8Array;
  readonly expires_at: number;
  /** epoch ms of the write (the publish lag of analytics.stats is measured from it) */
  readonly at: number;
  /**
   * 1 on a minute delta whose groups go to its hour's roll-up when a compaction absorbs it (and
   * which lives as long as that hour: see `encodePartial`). Absent on every other record, and on
   * minute deltas written before roll-ups moved to compaction: their batch wrote the hour's delta
   * itself, and rolling them up again would count them twice.
   */
  readonly u?: 1;
  /**
   * On a delta written by a slice: the last offset whose groups it holds. A later slice of the
   * partition may extend it in place (lib/pipeline/aggregate-batch.ts, `OpenDeltas`), so one
   * delta may hold several slices; the extension is conditioned on this value.
   */
  readonly t?: number;
}

/** Raw (pre-deflate) bytes per chunk: deflate never grows data by more than a few bytes per 16 KiB. */
export const CHUNK_RAW_BYTES = 256 * 1024;
/** Groups kept per window and source partition; beyond, they are counted under OTHER_GROUP. */
export const MAX_GROUPS_PER_WINDOW = 100_000;
/**
 * Characters of group keys kept per window and source partition; beyond, groups are counted under
 * OTHER_GROUP. The group count alone did not bound a window: 100,000 distinct 2,000-character page
 * URLs are 200 MB a partition and minute (hundreds of 400 KB items per compaction, gigabytes for a
 * 15-minute GET /stats). 2 Mi characters keep 100,000 keys of up to 20 characters (58,000 UUIDs)
 * and about a thousand of the longest URLs.
 */
export const MAX_GROUP_KEY_CHARS_PER_WINDOW = 2 * 1024 * 1024;

const BUCKET_MS: Record<Granularity, number> = { m: 3_600_000, h: 86_400_000 };
export const bucketOf = (g: Granularity, windowStart: number) =>
  Math.floor(windowStart / BUCKET_MS[g]) * BUCKET_MS[g];
export const bucketPk = (ruleKey: string, g: Granularity, bucket: number) => `${ruleKey}#${g}#${bucket}`;
const pad = (n: number, width: number) => String(n).padStart(width, "0");
export const deltaSk = (windowStart: number, partition: number, offset: number, chunk: number) =>
  `${windowStart}#p${partition}#d#${pad(offset, 16)}#${pad(chunk, 3)}`;
export const compactedSk = (windowStart: number, partition: number, chunk: number) =>
  `${windowStart}#p${partition}#c#${pad(chunk, 3)}`;
/**
 * The sort-key range (inclusive bounds for a BETWEEN) of the windows `from`..`to` of every
 * partition, or of one window of one partition (`#p1#` is no prefix of `#p10#`).
 */
export const windowSkRange = (from: number, to: number, partition?: number) =>
  partition === undefined
    ? ([`${from}#`, `${to}#~`] as const)
    : ([`${from}#p${partition}#`, `${to}#p${partition}#~`] as const);

export const expiresAt = (g: Granularity, windowStart: number) =>
  Math.floor((windowStart + GRANULARITY_MS[g]) / 1000) + TTL_SECONDS[g];

/**
 * Approximate stored size (attribute names and values), as DynamoDB bills it: strings in UTF-8
 * bytes, as DynamoDB counts them (a rule key need not be ASCII).
 */
export const recordBytes = (r: PartialRecord) =>
  Buffer.byteLength(r.pk) + Buffer.byteLength(r.sk) + Buffer.byteLength(r.rule) + r.b.length + 90;

/** Encodes a window's groups into one or more records. */
export function encodePartial(
  ref: WindowRef,
  partition: number,
  kind: PartialKind,
  offset: number,
  groups: Groups,
  now: number,
  rollsUp = false,
  through?: number,
): PartialRecord[] {
  const chunks: { fragments: string[]; events: number }[] = [];
  let current = { fragments: [] as string[], events: 0 };
  let bytes = 0;
  for (const [key, partial] of groups) {
    const fragment = encodeGroup(key, partial);
    // UTF-8 bytes, what is deflated and stored: a group of non-ASCII text is up to 3 bytes per
    // UTF-16 unit, and a chunk cut by units could deflate to more than DynamoDB's 400 KB item.
    const fragmentBytes = Buffer.byteLength(fragment);
    if (bytes + fragmentBytes > CHUNK_RAW_BYTES && current.fragments.length > 0) {
      chunks.push(current);
      current = { fragments: [], events: 0 };
      bytes = 0;
    }
    current.fragments.push(fragment);
    current.events += partial.c;
    bytes += fragmentBytes + 1;
  }
  chunks.push(current);
  const pk = bucketPk(ref.ruleKey, ref.granularity, bucketOf(ref.granularity, ref.windowStart));
  return chunks.map((c, chunk) => ({
    pk,
    sk:
      kind === "d"
        ? deltaSk(ref.windowStart, partition, offset, chunk)
        : compactedSk(ref.windowStart, partition, chunk),
    rule: ref.ruleKey,
    g: ref.granularity,
    ws: ref.windowStart,
    p: partition,
    kind,
    offset,
    chunk,
    n: c.events,
    b: packGroups(c.fragments),
    // A delta not yet rolled up holds its hour's only copy of its groups: it lives as long as
    // the hour (a partition whose traffic stops is never compacted again).
    expires_at: rollsUp
      ? expiresAt("h", windowStartOf(ref.windowStart, "h"))
      : expiresAt(ref.granularity, ref.windowStart),
    at: now,
    ...(rollsUp ? { u: 1 as const } : {}),
    ...(through === undefined ? {} : { t: through }),
  }));
}

/**
 * A record's groups, memoized by its key and content (hashing is far cheaper than inflating and
 * parsing): committed records rarely change, so readers that see the same windows again — the
 * stats publisher on every write, GET /stats on every poll — inflate and parse each record once,
 * and decode each group they use once (`PackedGroups`). Bounded by the groups held and their bytes.
 */
export function packedGroupsOf(r: Pick<PartialRecord, "pk" | "sk" | "b">): PackedGroups {
  const key = memoKey(r);
  const hit = memo.get(key);
  if (hit) {
    memo.delete(key);
    memo.set(key, hit);
    return hit;
  }
  const packed = PackedGroups.unpack(r.b);
  unpacked++;
  remember(key, packed);
  return packed;
}

/** Every group of a record, decoded (memoized: `packedGroupsOf`). Callers must not mutate the result. */
export const decodeGroups = (r: Pick<PartialRecord, "pk" | "sk" | "b">): Groups => packedGroupsOf(r).all();

/**
 * Registers `groups` as what the record `r` decodes to, when they are the very groups just encoded
 * into it (`encodePartial` writes every group exactly: decoding gives them back). The aggregator's
 * next slice extends that record, and its compaction merges it: both then find it decoded, where
 * each would inflate and parse the whole delta again. The caller gives `groups` up: from now on
 * nobody may mutate them, as with any result of `decodeGroups`.
 */
export function rememberDecoded(r: Pick<PartialRecord, "pk" | "sk" | "b">, groups: Groups): void {
  remember(memoKey(r), PackedGroups.ofDecoded(groups));
}

/** Records `packedGroupsOf` had to inflate and parse, in this process (the memo's misses). */
export const recordsUnpacked = (): number => unpacked;

// Keyed by content: tests (and several local stacks in one process) reuse keys across tables.
const memoKey = (r: Pick<PartialRecord, "pk" | "sk" | "b">) =>
  `${r.pk}|${r.sk}|${createHash("sha1").update(r.b).digest("base64")}`;

function remember(key: string, packed: PackedGroups): void {
  const old = memo.get(key);
  if (old) {
    memo.delete(key);
    memoGroups -= old.size;
    memoBytes -= old.bytes;
  }
  memo.set(key, packed);
  memoGroups += packed.size;
  memoBytes += packed.bytes;
  while ((memoGroups > MAX_MEMO_GROUPS || memoBytes > MAX_MEMO_BYTES) && memo.size > 1) {
    const [oldest, value] = memo.entries().next().value as [string, PackedGroups];
    memo.delete(oldest);
    memoGroups -= value.size;
    memoBytes -= value.bytes;
  }
}

/** Groups kept per process (a few tens of MB of short keys). */
const MAX_MEMO_GROUPS = 100_000;
/**
 * Bytes of groups kept per process (`PackedGroups.bytes`): 100,000 groups of 2,000-character page
 * URLs are 200 MB, more than the stats publisher's 512 MB function can keep beside its work. A
 * stream batch of the longest keys (500 delta chunks of 256 KiB) still fits, so its windows' reads
 * find every record it unpacked.
 */
const MAX_MEMO_BYTES = 128 * 1024 * 1024;
const memo = new Map<string, PackedGroups>();
let memoGroups = 0;
let memoBytes = 0;
let unpacked = 0;

/**
 * The records that count for a window, per partition: the compacted chunks with the highest
 * `offset`, and the deltas above it. A reader that races a compaction (Query is read-committed
 * per item, not isolated from a transaction) may see both the new compacted item and deltas it
 * absorbed: those deltas are dropped here, so nothing is counted twice.
 */
export function effectiveRecords(records: readonly PartialRecord[]): PartialRecord[] {
  const through = new Map<string, number>();
  for (const r of records) {
    if (r.kind !== "c") continue;
    const key = `${r.pk}\u0000${r.p}\u0000${r.ws}`;
    through.set(key, Math.max(through.get(key) ?? -1, r.offset));
  }
  return records.filter((r) => {
    const t = through.get(`${r.pk}\u0000${r.p}\u0000${r.ws}`);
    if (t === undefined) return true;
    return r.kind === "c" ? r.offset === t : r.offset > t;
  });
}

/**
 * The minute deltas among `records` that their hour's roll-up does not hold yet: marked `u` and
 * not absorbed by a compaction of their minute (a compaction rolls up exactly what it absorbs,
 * in the same transaction). A reader of an hour adds them to the hour's own records.
 */
export const unrolledDeltas = (records: readonly PartialRecord[]) =>
  effectiveRecords(records).filter((r) => r.kind === "d" && r.g === "m" && r.u === 1);

/**
 * The merged value of just `wanted` groups of one window, over every record given (all
 * partitions). The stats publisher needs the groups a write changed, not the window's thousands of
 * per-user groups: merging only those is what keeps its cost proportional to the change.
 */
export function mergeRecordGroups(
  records: readonly PartialRecord[],
  windowStart: number,
  wanted: ReadonlySet<string>,
): Groups {
  const out: Groups = new Map();
  for (const r of effectiveRecords(records)) {
    if (r.ws !== windowStart) continue;
    mergeGroups(out, pickGroups(packedGroupsOf(r), wanted));
  }
  return out;
}

/**
 * Merged groups per window start, over every record given (all partitions); with `only`, just
 * those groups. A window's item holds every group of its rule, and a reader that wants one (GET
 * /stats by event type: one group of `events_by_type`) would otherwise merge every other group's
 * sketch for nothing.
 */
export function mergeRecords(
  records: readonly PartialRecord[],
  only?: ReadonlySet<string>,
): Map<number, Groups> {
  const out = new Map<number, Groups>();
  for (const r of effectiveRecords(records)) {
    let groups = out.get(r.ws);
    if (!groups) {
      groups = new Map();
      out.set(r.ws, groups);
    }
    const packed = packedGroupsOf(r);
    mergeGroups(groups, only ? pickGroups(packed, only) : packed.all());
  }
  return out;
}

/** Just `keys` of a record's groups: only those are decoded. */
function pickGroups(packed: PackedGroups, keys: ReadonlySet<string>): Groups {
  const picked: Groups = new Map();
  if (keys.size < packed.size) {
    for (const key of keys) {
      const p = packed.get(key);
      if (p) picked.set(key, p);
    }
  } else for (const key of packed.keys()) if (keys.has(key)) picked.set(key, packed.get(key) as GroupPartial);
  return picked;
}

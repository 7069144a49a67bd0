import { deflateRawSync, inflateRawSync } from "node:zlib";
import { READABLE_PROPERTY_NAME } from "../contract/event.ts";
import {
  addExact,
  copySum,
  exactMean,
  exactValue,
  mergeExact,
  partialsOf,
  type SumState,
} from "./exact-sum.ts";
import { HyperLogLog } from "./hll.ts";

/**
 * Partial aggregates of one window: per group, the count, stats of the rule's numeric field,
 * a unique-count sketch and (detailed rules) stats of every numeric property.
 *
 * Everything keyed by user data is a `Map`, never a plain object: a group or property named
 * `__proto__` or `constructor` is just a key (issue 8.1). Sums are exact (Shewchuk's
 * non-overlapping partials with an overflow carry, lib/stream/exact-sum.ts): however the values
 * are split into batches, deltas and partitions and merged, the sum read is the exact sum
 * rounded once, to nearest (issue 8.2). They are stored inside a binary attribute, so no
 * magnitude can make a DynamoDB marshaller throw.
 */
export interface NumberStats extends SumState {
  /** values seen (the divisor of avg: events without the field do not count, issue 8.6) */
  n: number;
  mn: number;
  mx: number;
}

export interface GroupPartial {
  /** events */
  c: number;
  /** the rule's numeric field */
  v?: NumberStats;
  /** unique-count sketch (unique metric; unique users for detailed rules) */
  h?: HyperLogLog;
  /** detailed rules: every numeric property */
  f?: Map<string, NumberStats>;
  /** detailed rules: some properties were not tracked (more than MAX_FIELDS in this window) */
  ft?: boolean;
}

export type Groups = Map<string, GroupPartial>;

/** Numeric properties tracked per group of a detailed rule; beyond, `ft` says the list is partial. */
export const MAX_FIELDS = 64;

/**
 * Whether a detailed rule keeps statistics of a property of this name: only names GET /stats can
 * ask for (READABLE_PROPERTY_NAME, at most 64 ASCII characters), so that a group's properties
 * stay a few KB whatever names events carry. Other names are skipped without marking the list
 * partial (`ft`): no reader can ask for them, and `field_partial` speaks of readable names.
 */
export const tracksProperty = (name: string): boolean => READABLE_PROPERTY_NAME.test(name);

export const newStats = (v: number): NumberStats => ({ n: 1, s: v, e: 0, lo: null, o: 0, mn: v, mx: v });

export function addValue(acc: NumberStats, v: number): void {
  acc.n++;
  addExact(acc, v);
  if (v < acc.mn) acc.mn = v;
  if (v > acc.mx) acc.mx = v;
}

export function mergeStats(into: NumberStats, other: NumberStats): void {
  into.n += other.n;
  mergeExact(into, other);
  if (other.mn < into.mn) into.mn = other.mn;
  if (other.mx > into.mx) into.mx = other.mx;
}

/** The sum, correctly rounded (±Infinity beyond ±MAX_VALUE). */
export const statsSum = (s: NumberStats): number => exactValue(s);
/** The average of the values, from the exact sum (finite even when the sum is not). */
export const statsMean = (s: NumberStats): number => exactMean(s, s.n);
const copyStats = copySum<NumberStats>;

/** Merges `other` into `into` (sketches are unions; nothing of `other` is aliased). */
export function mergePartial(into: GroupPartial, other: GroupPartial): void {
  into.c += other.c;
  if (other.v) {
    if (into.v) mergeStats(into.v, other.v);
    else into.v = copyStats(other.v);
  }
  if (other.h) into.h = into.h ? into.h.merge(other.h) : other.h.clone();
  if (other.f) {
    into.f ??= new Map();
    for (const [name, s] of other.f) {
      const mine = into.f.get(name);
      if (mine) mergeStats(mine, s);
      // Items written before the bound may hold other names: they are not carried on.
      else if (!tracksProperty(name)) continue;
      else if (into.f.size < MAX_FIELDS) into.f.set(name, copyStats(s));
      else into.ft = true;
    }
  }
  if (other.ft) into.ft = true;
}

/**
 * Adds `other`'s groups to `into`. A group `into` lacks goes to OTHER_GROUP (counted, never
 * dropped) once `into` holds `maxGroups` groups, or when its key would take the characters of
 * `into`'s keys past `maxKeyChars`. Merging several records into one window: `CappedGroups`, which
 * counts the characters once rather than on every call.
 */
export function mergeGroups(
  into: Groups,
  other: Groups,
  maxGroups = Number.POSITIVE_INFINITY,
  maxKeyChars = Number.POSITIVE_INFINITY,
): void {
  mergeCapped(
    into,
    other,
    maxGroups,
    maxKeyChars,
    maxKeyChars === Number.POSITIVE_INFINITY ? 0 : keyCharsOf(into),
  );
}

/**
 * `mergeGroups` given the characters of `into`'s keys (`keyCharsOf(into)`); returns them after the
 * merge, so that a caller merging many records never walks the keys merged so far again.
 */
function mergeCapped(
  into: Groups,
  other: Groups,
  maxGroups: number,
  maxKeyChars: number,
  keyCharsBefore: number,
): number {
  let keyChars = keyCharsBefore;
  // OTHER_GROUP's own characters count from the next merge on (as a recount of `into` would).
  let otherAdded = false;
  for (const [key, p] of other) {
    let mine = into.get(key);
    if (!mine) {
      let target = OTHER_GROUP;
      let counted = false;
      if (into.size < maxGroups && keyChars + key.length <= maxKeyChars) {
        target = key;
        keyChars += key.length;
        counted = true;
      }
      mine = into.get(target);
      if (!mine) {
        mine = { c: 0 };
        into.set(target, mine);
        if (!counted) otherAdded = true;
      }
    }
    mergePartial(mine, p);
  }
  return otherAdded ? keyChars + OTHER_GROUP.length : keyChars;
}

/**
 * The groups of one window merged from several records (a compaction's compacted chunks and
 * deltas, a slice's delta and the one it extends) under the window's bounds (`mergeGroups`). The
 * characters of the keys are kept as they are merged: counted again for every record, they made
 * a compaction of a window of many groups walk all of them once per record.
 */
export class CappedGroups {
  readonly groups: Groups = new Map();
  #keyChars = 0;

  constructor(
    private readonly maxGroups: number,
    private readonly maxKeyChars: number,
  ) {}

  add(other: Groups): this {
    this.#keyChars = mergeCapped(this.groups, other, this.maxGroups, this.maxKeyChars, this.#keyChars);
    return this;
  }
}

/** The characters (UTF-16 code units) of a window's group keys: what its items hold most of. */
export function keyCharsOf(groups: Groups): number {
  let chars = 0;
  for (const key of groups.keys()) chars += key.length;
  return chars;
}

/** Where groups beyond a window's cap go (counted, never dropped). */
export const OTHER_GROUP = "\u0000other";

// --- Encoding: one binary attribute per stored item -------------------------------------------
//
// A compact JSON array, deflated. JSON strings carry any key (NUL, U+001F, `__proto__`) and
// numbers of any magnitude (JSON's shortest round-trip form: every partial is exact).
//
// Stats are `[n, sum, mn, mx]`; `sum` is one number in the common case (a single partial, no
// carry), else `[o, ...partials]` (lib/stream/exact-sum.ts: the largest last). Items written
// before exact sums hold `[n, s, e, mn, mx]` (a compensated pair, whose exact sum s + e is taken;
// a sum that had overflowed is the string "Infinity", "-Infinity" or "NaN") and still decode and
// merge.

type EncodedSum = number | string | number[];
type EncodedStats = [n: number, sum: EncodedSum, mn: number, mx: number];
type LegacyStats = [n: number, s: number | string, e: number | string, mn: number, mx: number];
type EncodedGroup = [
  key: string,
  c: number,
  v: EncodedStats | 0,
  h: string | 0,
  f: [string, ...(EncodedStats | LegacyStats)][] | 0,
  ft: 1 | 0,
];

const encSum = (s: SumState): EncodedSum =>
  s.e === 0 && s.lo === null && s.o === 0
    ? Number.isFinite(s.s)
      ? s.s
      : String(s.s)
    : [s.o, ...partialsOf(s)];

const encStats = (s: NumberStats): EncodedStats => [s.n, encSum(s), s.mn, s.mx];

function decStats(a: EncodedStats | LegacyStats): NumberStats {
  if (a.length === 5) {
    const [n, s, e, mn, mx] = a;
    // s and e may overlap (Neumaier's pair): added, not taken as partials.
    const stats: NumberStats = { n, s: Number(s), e: 0, lo: null, o: 0, mn, mx };
    addExact(stats, Number(e));
    return stats;
  }
  const [n, sum, mn, mx] = a;
  if (!Array.isArray(sum)) return { n, s: Number(sum), e: 0, lo: null, o: 0, mn, mx };
  const [o = 0, ...p] = sum;
  const s = p.pop() ?? 0;
  const e = p.pop() ?? 0;
  return { n, s, e, lo: p.length > 0 ? p : null, o, mn, mx };
}

/** One group as a JSON fragment (so callers can cut item chunks by size before deflating). */
export function encodeGroup(key: string, p: GroupPartial): string {
  const g: EncodedGroup = [
    key,
    p.c,
    p.v ? encStats(p.v) : 0,
    p.h ? p.h.toText() : 0,
    p.f ? [...p.f].map(([name, s]): [string, ...EncodedStats] => [name, ...encStats(s)]) : 0,
    p.ft ? 1 : 0,
  ];
  return JSON.stringify(g);
}

/** Deflates encoded groups into one blob. */
export function packGroups(fragments: readonly string[]): Uint8Array {
  return deflateRawSync(Buffer.from(`[${fragments.join(",")}]`), { level: 1 });
}

/** Groups a stored item holds, decoded as each is first used (`PackedGroups`). */
export function unpackGroups(blob: Uint8Array): Groups {
  return PackedGroups.unpack(blob).all();
}

/** Groups decoded in this process (sketches built): what lazy decoding saves is counted here. */
let groupsDecoded = 0;
export const groupsDecodedSoFar = (): number => groupsDecoded;

function decodeGroup([, c, v, h, f, ft]: EncodedGroup): GroupPartial {
  groupsDecoded++;
  const p: GroupPartial = { c };
  if (v) p.v = decStats(v);
  if (h)
    p.h = HyperLogLog.isText(h)
      ? HyperLogLog.fromText(h)
      : HyperLogLog.deserialize(new Uint8Array(Buffer.from(h, "base64")));
  if (f) p.f = new Map(f.map(([name, ...s]) => [name, decStats(s)]));
  if (ft) p.ft = true;
  return p;
}

/** Structural equality of two JSON values as `JSON.parse` gives them (arrays, strings, numbers). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
  return true;
}

/** What `PackedGroups.bytes` counts for a decoded group besides its key (stats, a sketch's text). */
const DECODED_GROUP_BYTES = 64;

/**
 * One stored item's groups, each decoded on first use. Inflating and parsing an item is cheap;
 * building every group's sketch and stats is not, and most readers want a few groups of a window
 * that holds hundreds or thousands: GET /stats for one event type reads one group of
 * `events_by_type`, and the stats publisher the groups a write changed (found by comparing
 * encodings, without decoding either side). Decoded groups are kept; callers must not mutate
 * them (merging copies what it takes).
 */
export class PackedGroups {
  /** Each group's encoding, in stored order (the first, if a key is listed more than once). */
  readonly #encoded: Map<string, EncodedGroup>;
  /** Further encodings of a key listed more than once (merged when decoded; items written so are rare). */
  readonly #repeated: Map<string, EncodedGroup[]> | undefined;
  readonly #decoded = new Map<string, GroupPartial>();
  #all: Groups | undefined;
  /** Whether `#encoded` holds every group (unpacked from a blob), not none (`ofDecoded`). */
  readonly #unpacked: boolean;
  /**
   * About the bytes this holds: its JSON's length (a group of a 2,000-character page URL is 2 KB,
   * one of a user id a few dozen bytes). What caches of these count, besides groups.
   */
  readonly bytes: number;

  private constructor(
    bytes: number,
    encoded: Map<string, EncodedGroup>,
    repeated?: Map<string, EncodedGroup[]>,
    all?: Groups,
  ) {
    this.bytes = bytes;
    this.#encoded = encoded;
    this.#repeated = repeated;
    this.#all = all;
    this.#unpacked = all === undefined;
  }

  /** Inflates and parses a blob of `packGroups`; no group is decoded yet. */
  static unpack(blob: Uint8Array): PackedGroups {
    const encoded = new Map<string, EncodedGroup>();
    let repeated: Map<string, EncodedGroup[]> | undefined;
    const json = inflateRawSync(blob).toString("utf8");
    for (const group of JSON.parse(json) as EncodedGroup[]) {
      const key = group[0];
      if (!encoded.has(key)) encoded.set(key, group);
      else {
        repeated ??= new Map();
        const more = repeated.get(key) ?? [];
        more.push(group);
        repeated.set(key, more);
      }
    }
    return new PackedGroups(json.length, encoded, repeated);
  }

  /** Groups already decoded (the very groups just encoded into an item). */
  static ofDecoded(groups: Groups): PackedGroups {
    return new PackedGroups(
      keyCharsOf(groups) + DECODED_GROUP_BYTES * groups.size,
      new Map(),
      undefined,
      groups,
    );
  }

  get size(): number {
    return this.#all?.size ?? this.#encoded.size;
  }

  keys(): Iterable<string> {
    return this.#all?.keys() ?? this.#encoded.keys();
  }

  /** One group, decoded (once). */
  get(key: string): GroupPartial | undefined {
    if (this.#all) return this.#all.get(key);
    const hit = this.#decoded.get(key);
    if (hit) return hit;
    const first = this.#encoded.get(key);
    if (!first) return undefined;
    const p = decodeGroup(first);
    for (const more of this.#repeated?.get(key) ?? []) mergePartial(p, decodeGroup(more));
    this.#decoded.set(key, p);
    return p;
  }

  /** Every group, decoded, in stored order. */
  all(): Groups {
    if (this.#all) return this.#all;
    const all: Groups = new Map();
    for (const key of this.#encoded.keys()) all.set(key, this.get(key) as GroupPartial);
    this.#all = all;
    this.#decoded.clear();
    return all;
  }

  /**
   * Whether `key` holds the same value here and in `other`: compared by encoding, so neither side
   * is decoded when both came from stored items. A group encoded twice differently (an older
   * format, a key listed twice) counts as changed, which at worst republishes an unchanged value.
   */
  sameGroup(key: string, other: PackedGroups): boolean {
    if (this.#unpacked && other.#unpacked && !this.#repeated?.has(key) && !other.#repeated?.has(key)) {
      const mine = this.#encoded.get(key);
      const theirs = other.#encoded.get(key);
      return mine === undefined || theirs === undefined ? mine === theirs : sameJson(mine, theirs);
    }
    const a = this.get(key);
    const b = other.get(key);
    if (a === undefined || b === undefined) return a === b;
    return encodeGroup(key, a) === encodeGroup(key, b);
  }
}

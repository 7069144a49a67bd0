import { deflateRawSync, inflateRawSync } from "node:zlib";
import { HyperLogLog } from "./hll.ts";

/**
 * Partial aggregates of one window: per group, the count, stats of the rule's numeric field,
 * a unique-count sketch and (detailed rules) stats of every numeric property.
 *
 * Everything keyed by user data is a `Map`, never a plain object: a group or property named
 * `__proto__` or `constructor` is just a key (issue 8.1). Sums use Neumaier's compensated
 * summation, so they stay exact for integers up to 2^53 and, beyond, are off by at most one
 * rounding of the final value (issue 8.2); they are stored inside a binary attribute, so no
 * magnitude can make a DynamoDB marshaller throw.
 */
export interface NumberStats {
  /** values seen (the divisor of avg: events without the field do not count, issue 8.6) */
  n: number;
  /** compensated sum: the value is `s + e` */
  s: number;
  e: number;
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

export const newStats = (v: number): NumberStats => ({ n: 1, s: v, e: 0, mn: v, mx: v });

/** Neumaier's compensated addition of `v` into `acc`. */
function addCompensated(acc: NumberStats, v: number): void {
  const t = acc.s + v;
  if (Number.isFinite(t)) acc.e += Math.abs(acc.s) >= Math.abs(v) ? acc.s - t + v : v - t + acc.s;
  acc.s = t;
}

export function addValue(acc: NumberStats, v: number): void {
  acc.n++;
  addCompensated(acc, v);
  if (v < acc.mn) acc.mn = v;
  if (v > acc.mx) acc.mx = v;
}

export function mergeStats(into: NumberStats, other: NumberStats): void {
  into.n += other.n;
  addCompensated(into, other.s);
  addCompensated(into, other.e);
  if (other.mn < into.mn) into.mn = other.mn;
  if (other.mx > into.mx) into.mx = other.mx;
}

export const statsSum = (s: NumberStats): number => s.s + s.e;
const copyStats = (s: NumberStats): NumberStats => ({ ...s });

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
      else if (into.f.size < MAX_FIELDS) into.f.set(name, copyStats(s));
      else into.ft = true;
    }
  }
  if (other.ft) into.ft = true;
}

export function mergeGroups(into: Groups, other: Groups, maxGroups = Number.POSITIVE_INFINITY): void {
  for (const [key, p] of other) {
    let mine = into.get(key);
    if (!mine) {
      const target = into.size >= maxGroups ? OTHER_GROUP : key;
      mine = into.get(target);
      if (!mine) {
        mine = { c: 0 };
        into.set(target, mine);
      }
    }
    mergePartial(mine, p);
  }
}

/** Where groups beyond a window's cap go (counted, never dropped). */
export const OTHER_GROUP = "\u0000other";

// --- Encoding: one binary attribute per stored item -------------------------------------------
//
// A compact JSON array, deflated. JSON strings carry any key (NUL, U+001F, `__proto__`) and
// numbers of any magnitude; non-finite sums (an overflow) are written as strings.

type EncodedStats = [n: number, s: number | string, e: number | string, mn: number, mx: number];
type EncodedGroup = [
  key: string,
  c: number,
  v: EncodedStats | 0,
  h: string | 0,
  f: [string, ...EncodedStats][] | 0,
  ft: 1 | 0,
];

const num = (x: number): number | string => (Number.isFinite(x) ? x : String(x));
const encStats = (s: NumberStats): EncodedStats => [s.n, num(s.s), num(s.e), s.mn, s.mx];
const decStats = (a: EncodedStats): NumberStats => ({
  n: a[0],
  s: Number(a[1]),
  e: Number(a[2]),
  mn: a[3],
  mx: a[4],
});

/** One group as a JSON fragment (so callers can cut item chunks by size before deflating). */
export function encodeGroup(key: string, p: GroupPartial): string {
  const g: EncodedGroup = [
    key,
    p.c,
    p.v ? encStats(p.v) : 0,
    p.h ? Buffer.from(p.h.serialize()).toString("base64") : 0,
    p.f ? [...p.f].map(([name, s]) => [name, ...encStats(s)] as [string, ...EncodedStats]) : 0,
    p.ft ? 1 : 0,
  ];
  return JSON.stringify(g);
}

/** Deflates encoded groups into one blob. */
export function packGroups(fragments: readonly string[]): Uint8Array {
  return deflateRawSync(Buffer.from(`[${fragments.join(",")}]`), { level: 1 });
}

export function unpackGroups(blob: Uint8Array): Groups {
  const groups: Groups = new Map();
  const list = JSON.parse(inflateRawSync(blob).toString("utf8")) as EncodedGroup[];
  for (const [key, c, v, h, f, ft] of list) {
    const p: GroupPartial = { c };
    if (v) p.v = decStats(v);
    if (h) p.h = HyperLogLog.deserialize(new Uint8Array(Buffer.from(h, "base64")));
    if (f) p.f = new Map(f.map(([name, ...s]) => [name, decStats(s as EncodedStats)]));
    if (ft) p.ft = true;
    const existing = groups.get(key);
    if (existing) mergePartial(existing, p);
    else groups.set(key, p);
  }
  return groups;
}

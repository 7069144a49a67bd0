/**
 * Exact sums of doubles, rounded once at the end: Shewchuk's non-overlapping partials (the
 * algorithm of Python's `math.fsum`), plus a carry so that no intermediate sum overflows.
 *
 * The exact sum of everything added is `o·2^1023 + s + e + Σ lo`. Adding a value is a cascade of
 * error-free two-sums over the partials; merging adds each partial of the other sum. So any split
 * of the values into batches, deltas and partitions, merged in any order, holds the same exact
 * sum, and `exactValue` rounds it correctly (to nearest, ties to even).
 *
 * The common case is two plain fields and no allocation: the sum `s` and an error term `e`.
 * Adding x is one two-sum (s + x → s′, err) and one exactness check (e + err must not round):
 * integers leave `e` at 0, typical decimal amounts keep their exact sum in these two doubles.
 * When `e + err` would round (the exact sum needs more than two doubles), the general case
 * takes over: `lo, e, s` become non-overlapping partials in increasing magnitude (`s` the
 * largest), grown by Python's msum cascade.
 *
 * Overflow: a partial near ±1.8e308 could make a two-sum overflow although the exact sum is
 * representable ([1.7e308, 1.7e308, −1.7e308]); the common case then sees a NaN error and hands
 * over. The general case first brings the value and the largest partial within ±2^1022 by moving
 * multiples of 2^1023 into the integer carry `o` (exact: the subtraction neither rounds nor
 * changes the partial's lowest set bit, so the partials stay non-overlapping); then no sum in the
 * cascade exceeds 3·2^1022 < MAX_VALUE. The result is ±Infinity only when the exact sum rounds
 * beyond ±MAX_VALUE.
 *
 * Inputs are finite (the fold skips anything else). A non-finite `s` only comes from partials
 * written before exact sums, whose sum had overflowed: it then absorbs everything, as before.
 */
export interface SumState {
  /** the largest partial; the whole sum while `e` is 0, `lo` null and `o` 0 (the common case) */
  s: number;
  /** the second partial, or 0 (while `lo` is null, `s + e` is exact but the two may overlap) */
  e: number;
  /** null, or the smaller partials in increasing magnitude (then lo, e, s do not overlap) */
  lo: number[] | null;
  /** carry, in units of 2^1023 (0 unless partials reached ±2^1022 ≈ ±4.5e307) */
  o: number;
}

const CARRY = 2 ** 1023;
const LIMIT = 2 ** 1022;

export function addExact(acc: SumState, x: number): void {
  if (acc.lo === null) {
    // At most two partials (integers: one; typical decimal amounts: two): Knuth's two-sum of s
    // and x, then the rounding error added to e, which must be exact (then s + e is the exact
    // sum). An overflow makes the errors NaN.
    const s = acc.s;
    const e = acc.e;
    const t = s + x;
    let b = t - s;
    const err = s - (t - b) + (x - b);
    const f = e + err;
    b = f - e;
    if (e - (f - b) + (err - b) === 0) {
      acc.s = t;
      acc.e = f;
      return;
    }
  }
  addPartials(acc, x);
}

/** `x` brought within ±2^1022 by whole multiples of 2^1023 (exact), moved into `acc.o`. */
function reduce(acc: SumState, x: number): number {
  while (x > LIMIT) {
    x -= CARRY;
    acc.o++;
  }
  while (x < -LIMIT) {
    x += CARRY;
    acc.o--;
  }
  return x;
}

/**
 * Python's msum step: two-sums `value` with every partial of `p` (non-overlapping, increasing
 * magnitude), smallest first, writing the nonzero errors back in place; the last sum is the new
 * largest partial. The value and the new largest partial are first brought within ±2^1022.
 */
function grow(acc: SumState, p: number[], value: number): void {
  let x = reduce(acc, value);
  let i = 0;
  for (let j = 0; j < p.length; j++) {
    let y = p[j] as number;
    if (Math.abs(x) < Math.abs(y)) {
      const t = x;
      x = y;
      y = t;
    }
    const hi = x + y;
    const err = y - (hi - x);
    if (err !== 0) p[i++] = err;
    x = hi;
  }
  p[i] = reduce(acc, x);
  p.length = i + 1;
}

/** The general case: any number of partials, and the overflow carry. */
function addPartials(acc: SumState, value: number): void {
  if (!Number.isFinite(value) || !Number.isFinite(acc.s)) {
    acc.s += value;
    acc.e = 0;
    acc.lo = null;
    acc.o = 0;
    return;
  }
  let p = acc.lo;
  if (p === null) {
    // From two fields that may overlap: rebuilt as an expansion.
    p = [];
    grow(acc, p, acc.s);
    if (acc.e !== 0) grow(acc, p, acc.e);
  } else p.push(acc.e, acc.s);
  grow(acc, p, value);
  acc.s = p.pop() as number;
  acc.e = p.pop() ?? 0;
  acc.lo = p.length > 0 ? p : null;
}

/** Adds everything `other` holds into `into` (`other` is not modified). */
export function mergeExact(into: SumState, other: SumState): void {
  if (!Number.isFinite(other.s)) {
    addPartials(into, other.s);
    return;
  }
  into.o += other.o;
  if (other.lo !== null) for (const x of other.lo) addExact(into, x);
  if (other.e !== 0) addExact(into, other.e);
  addExact(into, other.s);
}

export const copySum = <T extends SumState>(s: T): T => ({ ...s, lo: s.lo === null ? null : [...s.lo] });

/** The partials in increasing magnitude, the largest last. */
export const partialsOf = (s: SumState): number[] => [...(s.lo ?? []), ...(s.e !== 0 ? [s.e] : []), s.s];

/** The exact sum, rounded to the nearest double (ties to even); zero is +0. */
export function exactValue(acc: SumState): number {
  if (!Number.isFinite(acc.s)) return acc.s;
  if (acc.o !== 0) return roundScaled(scaledSum(acc));
  // Two partials: their exact sum rounded once. + 0: an exact zero (even of −0s) is +0.
  if (acc.lo === null) return acc.s + acc.e + 0;
  // Python's fsum: add the partials from the largest down while that is exact; then, if the
  // first rounding error is exactly half an ulp, the next partial's sign says which way the
  // exact sum really lies.
  const p = partialsOf(acc);
  let k = p.length - 1;
  let hi = p[k] as number;
  let err = 0;
  while (k > 0) {
    const x = hi;
    const y = p[--k] as number;
    hi = x + y;
    err = y - (hi - x);
    if (err !== 0) break;
  }
  const next = k > 0 ? (p[k - 1] as number) : 0;
  if ((err < 0 && next < 0) || (err > 0 && next > 0)) {
    const y = err * 2;
    const x = hi + y;
    if (x - hi === y) hi = x;
  }
  return hi + 0;
}

/**
 * The exact sum divided by `n` (> 0), rounded. It is finite whenever the values were (a mean lies
 * within their min..max), also when the sum itself rounds beyond ±MAX_VALUE: the average of 1e308
 * and 1e308 is 1e308, where `exactValue(acc) / n` gave Infinity (`null` in JSON).
 */
export function exactMean(acc: SumState, n: number): number {
  const sum = exactValue(acc);
  if (Number.isFinite(sum) || !Number.isFinite(acc.s)) return sum / n;
  // Only sums beyond ±MAX_VALUE get here. The quotient's truncation (below 2^-1074) is far
  // below the result's ulp at such magnitudes.
  return roundScaled(scaledSum(acc) / BigInt(n));
}

// --- the carried case: exact integers in units of 2^-1074 ---------------------------------------
//
// Only sums whose partials crossed ±2^1022 (≈ 4.5e307) get here, so BigInt's cost is off the
// common path.

const view = new DataView(new ArrayBuffer(8));

/** `x · 2^1074` as an exact BigInt (every finite double is an integer multiple of 2^-1074). */
function scaled(x: number): bigint {
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const exponent = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & 0xfffffffffffffn;
  const magnitude = exponent === 0 ? fraction : (fraction | (1n << 52n)) << BigInt(exponent - 1);
  return bits >> 63n ? -magnitude : magnitude;
}

function scaledSum(acc: SumState): bigint {
  let total = BigInt(acc.o) << 2097n;
  for (const x of partialsOf(acc)) total += scaled(x);
  return total;
}

/** `m · 2^-1074` rounded to nearest, ties to even. */
function roundScaled(m: bigint): number {
  const negative = m < 0n;
  let magnitude = negative ? -m : m;
  // Keep 64 significant bits and a sticky bit for what is dropped: Number() then rounds once
  // (ties to even, and the sticky bit rules out false ties); the power of two is exact unless the
  // result overflows, which is then the right answer.
  let exp = -1074;
  const bits = magnitude.toString(2).length;
  if (bits > 64) {
    const drop = BigInt(bits - 64);
    const sticky = magnitude & ((1n << drop) - 1n) ? 1n : 0n;
    magnitude = (magnitude >> drop) | sticky;
    exp += bits - 64;
  }
  const v = Number(magnitude) * 2 ** exp;
  return negative ? -v : v;
}

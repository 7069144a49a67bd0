import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { foldRecords } from "../../lib/stream/fold.ts";
import {
  addValue,
  encodeGroup,
  type GroupPartial,
  mergeGroups,
  mergePartial,
  type NumberStats,
  newStats,
  packGroups,
  statsSum,
  unpackGroups,
} from "../../lib/stream/partial.ts";
import { figures } from "../../lib/stream/read.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { ExactSum, roundScaled, scaled } from "../support/reference-model.ts";
import { checkParameters } from "../support/stream-property.ts";

/**
 * Sums are correctly rounded (issue 8.2): the exact sum of every value, however the values were
 * split into batches, deltas and partitions and merged, rounded once to the nearest double (ties to
 * even), checked against exact BigInt arithmetic (every double is an integer multiple of 2^-1074).
 */
const { seed, numRuns } = checkParameters(2_000, 8_2026);

const MAX = Number.MAX_VALUE;
const TINY = Number.MIN_VALUE; // 2^-1074

function fold(xs: readonly number[]): NumberStats {
  const s = newStats(xs[0] as number);
  for (const x of xs.slice(1)) addValue(s, x);
  return s;
}

const throughStore = (p: GroupPartial) =>
  unpackGroups(packGroups([encodeGroup("g", p)])).get("g") as GroupPartial;

/**
 * Folds slices separately, then merges them in `order`; `stored`: every delta and every merge (a
 * compaction) goes through the stored encoding.
 */
function foldAndMerge(
  slices: readonly number[][],
  order: readonly number[] = [],
  stored = false,
): GroupPartial {
  let parts: GroupPartial[] = slices.map((slice) => {
    const p: GroupPartial = { c: slice.length, v: fold(slice), f: new Map([["amount", fold(slice)]]) };
    return stored ? throughStore(p) : p;
  });
  // A random merge tree: merge part `order[k] mod length` into its neighbour, until one is left.
  for (let k = 0; parts.length > 1; k++) {
    const i = (order[k % Math.max(order.length, 1)] ?? 0) % (parts.length - 1);
    const into: GroupPartial = { c: 0 };
    mergePartial(into, parts[i + 1] as GroupPartial);
    mergePartial(into, parts[i] as GroupPartial);
    parts = [...parts.slice(0, i), stored ? throughStore(into) : into, ...parts.slice(i + 2)];
  }
  return parts[0] as GroupPartial;
}

const exactSumOf = (xs: readonly number[]) => {
  const e = new ExactSum();
  for (const x of xs) e.add(x);
  return e;
};
const exactOf = (xs: readonly number[]) => exactSumOf(xs).value;

const sumOf = (xs: readonly number[]) => statsSum(fold(xs));

describe("the oracle: exact BigInt sums rounded to nearest, ties to even", () => {
  it("scales doubles exactly", () => {
    expect(scaled(1)).toBe(1n << 1074n);
    expect(scaled(-2.5)).toBe(-5n << 1073n);
    expect(scaled(TINY)).toBe(1n);
    expect(scaled(2 ** -1022)).toBe(1n << 52n);
    expect(scaled(MAX)).toBe(((1n << 53n) - 1n) << 2045n);
  });

  it("rounds known cases", () => {
    const one = 1n << 1074n;
    const ulpOfOne = 1n << 1022n; // 2^-52
    expect(roundScaled(0n)).toBe(0);
    expect(roundScaled(1n)).toBe(TINY);
    expect(roundScaled(-3n)).toBe(-3 * TINY);
    expect(roundScaled((1n << 52n) - 1n)).toBe(2 ** -1022 - TINY); // largest subnormal
    expect(roundScaled(1n << 52n)).toBe(2 ** -1022); // smallest normal
    expect(roundScaled(one)).toBe(1);
    // 1 + half an ulp: a tie, to the even 1; a hair above: up; 1 + 1.5 ulp: a tie, to even (1 + 2 ulp).
    expect(roundScaled(one + ulpOfOne / 2n)).toBe(1);
    expect(roundScaled(one + ulpOfOne / 2n + 1n)).toBe(1 + 2 ** -52);
    expect(roundScaled(one + ulpOfOne / 2n - 1n)).toBe(1);
    expect(roundScaled(one + (3n * ulpOfOne) / 2n)).toBe(1 + 2 ** -51);
    expect(roundScaled(-(one + (3n * ulpOfOne) / 2n))).toBe(-(1 + 2 ** -51));
    // 2^53 + 1: a tie between 2^53 and 2^53 + 2, to the even 2^53; 2^53 + 3 to 2^53 + 4.
    expect(roundScaled(((1n << 53n) + 1n) << 1074n)).toBe(2 ** 53);
    expect(roundScaled(((1n << 53n) + 3n) << 1074n)).toBe(2 ** 53 + 4);
    // Rounding up into the next binade: 2 − 2^-54 (a tie between 2 − 2^-52 (odd) and 2).
    expect(roundScaled((2n << 1074n) - (1n << 1020n))).toBe(2);
    // MAX_VALUE plus half its ulp (2^970) is a tie with 2^1024 (even): Infinity; one unit less: MAX.
    const halfUlpOfMax = 1n << (970n + 1074n);
    expect(roundScaled(scaled(MAX) + halfUlpOfMax)).toBe(Number.POSITIVE_INFINITY);
    expect(roundScaled(scaled(MAX) + halfUlpOfMax - 1n)).toBe(MAX);
    expect(roundScaled(-scaled(MAX) - halfUlpOfMax)).toBe(Number.NEGATIVE_INFINITY);
    expect(roundScaled(3n * scaled(MAX))).toBe(Number.POSITIVE_INFINITY);
  });

  it("gives back every double, and agrees with Number(bigint) (ties to even) on integers", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
        expect(roundScaled(scaled(x))).toBe(x === 0 ? 0 : x);
      }),
      { seed, numRuns },
    );
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(1n << 1100n), max: 1n << 1100n }),
        fc.integer({ min: 0, max: 1100 }),
        (k, bits) => {
          const m = k >> BigInt(1100 - bits); // integers of every length
          expect(roundScaled(m << 1074n)).toBe(Number(m) + 0);
        },
      ),
      { seed, numRuns },
    );
  });
});

describe("sums are correctly rounded", () => {
  it("[1e300, −1e300, 2^60] in any order and any split is 2^60", () => {
    const xs = [1e300, -1e300, 2 ** 60];
    for (const perm of [
      [0, 1, 2],
      [0, 2, 1],
      [1, 0, 2],
      [1, 2, 0],
      [2, 0, 1],
      [2, 1, 0],
    ]) {
      const ordered = perm.map((i) => xs[i] as number);
      expect(sumOf(ordered), `order ${ordered}`).toBe(2 ** 60);
      // one value per batch, merged in both directions, through the stored encoding or not
      for (const stored of [false, true])
        for (const order of [[0], [1]]) {
          const p = foldAndMerge(
            ordered.map((x) => [x]),
            order,
            stored,
          );
          expect(figures(p).sum, `${ordered} merged ${order} stored ${stored}`).toBe(2 ** 60);
          expect(figures(p, "amount").sum).toBe(2 ** 60);
        }
    }
  });

  it("keeps ordinary values that huge ones cancel around (compensated sums lost them)", () => {
    expect(sumOf([2 ** 53, 1, -1e300, 1, 1e300])).toBe(2 ** 53 + 2); // was 2^53
    expect(figures(foldAndMerge([[2 ** 53, 1], [-1e300], [1, 1e300]], [1, 0], true)).sum).toBe(2 ** 53 + 2);
    // Exact 2^60 + 300, which rounds to 2^60 + 256 (the ulp is 256); was 2^60.
    expect(sumOf([1e300, 2 ** 60, 100, 100, 100, -1e300])).toBe(2 ** 60 + 256);
    expect(figures(foldAndMerge([[1e300, 2 ** 60], [100], [100, 100], [-1e300]], [2, 0, 1], true)).sum).toBe(
      2 ** 60 + 256,
    );
  });

  it("Python's fsum cases, with the half-way correction", () => {
    expect(sumOf([1e16, 1, 1e-16])).toBe(10000000000000002);
    expect(sumOf([1e-16, 1, 1e16])).toBe(10000000000000002);
    expect(sumOf([1, 2 ** -53])).toBe(1); // a tie, to even
    expect(sumOf([1, 2 ** -53, TINY])).toBe(1 + 2 ** -52); // just above the tie
    expect(sumOf([1, 2 ** -53, -TINY])).toBe(1);
    expect(sumOf([1 + 2 ** -52, 2 ** -53, -TINY])).toBe(1 + 2 ** -52);
    expect(sumOf([1 + 2 ** -52, 2 ** -53])).toBe(1 + 2 ** -51);
    expect(sumOf([0.1, 0.2, 0.3, -0.6])).toBe(exactOf([0.1, 0.2, 0.3, -0.6]));
    expect(sumOf(Array.from({ length: 10 }, () => 0.1))).toBe(1);
  });

  it("intermediate sums beyond MAX_VALUE do not overflow when the exact sum is representable", () => {
    expect(sumOf([1.7e308, 1.7e308, -1.7e308])).toBe(1.7e308);
    expect(sumOf([-1.7e308, -1.7e308, 1.7e308])).toBe(-1.7e308);
    expect(sumOf([MAX, MAX, -MAX, 1])).toBe(MAX);
    expect(sumOf([MAX, MAX, MAX, -MAX, -MAX, -MAX, 2 ** 60, 1e-300])).toBe(2 ** 60);
    expect(sumOf([MAX, MAX, -MAX, -MAX, 1e-300, TINY])).toBe(1e-300);
    expect(figures(foldAndMerge([[1.7e308, 1.7e308], [-1.7e308]], [0], true)).sum).toBe(1.7e308);
    // The result is infinite exactly when the exact sum rounds beyond MAX_VALUE.
    expect(sumOf([MAX, MAX])).toBe(Number.POSITIVE_INFINITY);
    expect(sumOf([-MAX, -MAX, MAX / 2])).toBe(Number.NEGATIVE_INFINITY);
    expect(sumOf([MAX, 2 ** 969])).toBe(MAX); // below half an ulp of MAX_VALUE
    expect(sumOf([MAX, 2 ** 970])).toBe(Number.POSITIVE_INFINITY); // the tie goes to 2^1024
    expect(sumOf([MAX, 2 ** 970, -TINY])).toBe(MAX);
  });

  it("avg is the correctly rounded sum divided by the values", () => {
    const p = foldAndMerge(
      [
        [2 ** 53, 1, -1e300],
        [1, 1e300, 8],
      ],
      [0],
      true,
    );
    expect(figures(p)).toMatchObject({ sum: 2 ** 53 + 10, avg: (2 ** 53 + 10) / 6, values: 6 });
  });

  // Doubles of every magnitude, with exact negations mixed in so that huge values cancel around
  // small ones, split into slices folded separately and merged in a random order.
  const double = fc.oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.double({ min: -1e6, max: 1e6, noNaN: true }),
    fc.integer({ min: -1_000, max: 1_000 }),
    fc.constantFrom(1e300, -1e300, 2 ** 60, 2 ** 53, 1, 0.1, 12.34, MAX, -MAX, 1.7e308, 2 ** 1023, TINY, -0),
  );
  const values = fc
    .tuple(fc.array(double, { minLength: 1, maxLength: 30 }), fc.array(fc.nat(), { maxLength: 30 }))
    .map(([xs, negate]) => [...xs, ...negate.map((i) => -(xs[i % xs.length] as number))]);
  const split = (xs: readonly number[], cuts: readonly number[]) => {
    const at = [...new Set(cuts.map((c) => c % xs.length))].filter((c) => c > 0).sort((a, b) => a - b);
    return [0, ...at].map((start, i) => xs.slice(start, at[i] ?? xs.length));
  };

  it("any finite doubles, split anyhow and merged in any order: the exact sum rounded once", () => {
    fc.assert(
      fc.property(
        values,
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.boolean(),
        (xs, cuts, order, stored) => {
          const exact = exactSumOf(xs);
          const p = foldAndMerge(split(xs, cuts), order, stored);
          const f = figures(p);
          expect(statsSum(p.v as NumberStats), `${xs}`).toBe(exact.value);
          if (Number.isFinite(exact.value)) {
            expect(f.sum, `${xs}`).toBe(exact.value);
            expect(figures(p, "amount").sum).toBe(exact.value);
          } else {
            // JSON has no Infinity: left out, and said so.
            expect(f).not.toHaveProperty("sum");
            expect(figures(p, "amount")).toMatchObject({ sum_out_of_range: true });
          }
          expect(f.avg).toBe(exact.mean);
          expect(f.values).toBe(xs.length);
        },
      ),
      { seed, numRuns },
    );
  });
  // Long streams of typical amounts with rare huge values: the two-field common case hands over to
  // the general one and back, many times.
  const amount = fc.oneof(
    { weight: 40, arbitrary: fc.integer({ min: 1, max: 500 }) },
    { weight: 40, arbitrary: fc.integer({ min: -50_000, max: 50_000 }).map((c) => c / 100) },
    { weight: 1, arbitrary: fc.constantFrom(1e300, -1e300, 2 ** 60, 1e16, -1e16, 1.7e308, -1.7e308, 1e-300) },
  );
  it("long streams of amounts, split and merged: the exact sum rounded once", () => {
    fc.assert(
      fc.property(
        fc.array(amount, { minLength: 1, maxLength: 3_000 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (xs, cuts, order) => {
          expect(sumOf(xs)).toBe(exactOf(xs));
          expect(figures(foldAndMerge(split(xs, cuts), order, true)).sum).toBe(exactOf(xs));
        },
      ),
      { seed, numRuns: Math.ceil(numRuns / 20) },
    );
  });

  it("small values that a huge sum cannot hold in two doubles", () => {
    const xs = [
      2 ** 60,
      ...Array.from({ length: 10_000 }, (_, i) => (i % 3 === 0 ? 0.1 : i % 3 === 1 ? 1e-20 : 3)),
    ];
    expect(sumOf(xs)).toBe(exactOf(xs));
    expect(sumOf([...xs, -(2 ** 60)])).toBe(exactOf([...xs, -(2 ** 60)]));
  });
});

describe("stored partials", () => {
  it("the common case stays one number", () => {
    const s = newStats(1);
    addValue(s, 12.5);
    expect(JSON.parse(encodeGroup("g", { c: 2, v: s }))[2]).toEqual([2, 13.5, 1, 12.5]);
  });

  it("items written with compensated sums [n, s, e, mn, mx] still decode and merge", () => {
    const legacy = (v: unknown) =>
      unpackGroups(packGroups([JSON.stringify(["g", 2, v, 0, [["amount", ...(v as unknown[])]], 0])])).get(
        "g",
      ) as GroupPartial;
    const old = legacy([2, 2 ** 60, 3, 1, 2 ** 60]);
    expect(figures(old)).toMatchObject({ sum: 2 ** 60 + 3, min: 1, max: 2 ** 60, values: 2 });
    expect(figures(old, "amount").sum).toBe(2 ** 60 + 3);
    const merged: GroupPartial = { c: 0 };
    mergePartial(merged, old);
    mergePartial(merged, foldAndMerge([[1e300, 5, -1e300]]));
    expect(figures(merged)).toMatchObject({ sum: 2 ** 60 + 8, values: 5 });
    // A compensated sum that had overflowed was written as a string: it stays infinite (then
    // left out of the figures, said to be out of range: JSON has no Infinity).
    const overflowed = legacy([2, "Infinity", 0, 1e308, 1e308]);
    expect(statsSum(overflowed.v as NumberStats)).toBe(Number.POSITIVE_INFINITY);
    expect(figures(overflowed)).toMatchObject({ sum_out_of_range: true, min: 1e308, max: 1e308 });
    expect(figures(overflowed).sum).toBeUndefined();
  });

  it("merging never aliases the decoded partials (the read path caches them)", () => {
    const stored = foldAndMerge([[2 ** 53, 1, 0.1]], [], true);
    const before = statsSum(stored.v as NumberStats);
    const groups = new Map([["g", { c: 0 } as GroupPartial]]);
    mergeGroups(groups, new Map([["g", stored]]));
    addValue(groups.get("g")?.v as NumberStats, 1e-3);
    addValue(groups.get("g")?.v as NumberStats, -(2 ** 60));
    expect(statsSum(stored.v as NumberStats)).toBe(before);
  });
});

describe("non-finite numbers never reach a sum", () => {
  it("the fold skips them (JSON's 1e999 parses to Infinity)", () => {
    const event = (
      amount: number,
      offset: number,
    ): { partition: number; offset: number; event: AcceptedEvent } => ({
      partition: 0,
      offset,
      event: {
        event_id: `e${offset}`,
        user_id: "u",
        event_type: "purchase_completed",
        timestamp: 1_800_000_000_000,
        received_at: 1_800_000_000_000,
        properties: { amount, currency: "EUR" },
      },
    });
    const deltas = foldRecords(
      [event(5, 0), event(JSON.parse("1e999"), 1), event(Number.NaN, 2), event(Number.NEGATIVE_INFINITY, 3)],
      BUILT_IN_RULES,
    );
    const sums = [...deltas.values()].filter((d) => d.ref.granularity === "m");
    const revenue = sums.find((d) => d.ref.ruleKey === "revenue_by_currency")?.groups.get("EUR");
    expect(figures(revenue)).toMatchObject({ count: 4, sum: 5, values: 1 });
    const byType = sums.find((d) => d.ref.ruleKey === "events_by_type")?.groups.get("purchase_completed");
    expect(figures(byType, "amount")).toMatchObject({ count: 4, sum: 5, values: 1 });
  });
});

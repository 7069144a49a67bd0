import { describe, expect, it } from "vitest";
import { HLL_STANDARD_ERROR, HyperLogLog } from "../../lib/stream/hll.ts";

describe("HyperLogLog", () => {
  for (const n of [1_000, 10_000, 100_000, 1_000_000]) {
    it(`estimates ${n} distinct ids within 3 standard errors`, () => {
      const hll = new HyperLogLog();
      for (let i = 0; i < n; i++) hll.add(`user-${i}`);
      const error = Math.abs(hll.estimate() - n) / n;
      expect(error).toBeLessThan(3 * HLL_STANDARD_ERROR);
    });
  }

  it("is idempotent: adding the same ids again changes nothing", () => {
    const hll = new HyperLogLog();
    for (let i = 0; i < 5_000; i++) hll.add(`u${i}`);
    const before = hll.estimate();
    for (let i = 0; i < 5_000; i++) hll.add(`u${i}`);
    expect(hll.estimate()).toBe(before);
  });

  it("merges as the union of its inputs", () => {
    const a = new HyperLogLog();
    const b = new HyperLogLog();
    const both = new HyperLogLog();
    for (let i = 0; i < 30_000; i++) {
      (i % 2 === 0 ? a : b).add(`id-${i}`);
      both.add(`id-${i}`);
    }
    for (let i = 0; i < 10_000; i++) b.add(`id-${i}`); // overlap
    expect(a.merge(b).estimate()).toBe(both.estimate());
  });

  it("round-trips through its sparse and dense serialized forms", () => {
    const small = new HyperLogLog();
    for (let i = 0; i < 50; i++) small.add(`s${i}`);
    const sparse = small.serialize();
    expect(sparse.length).toBeLessThan(200);
    expect(HyperLogLog.deserialize(sparse).estimate()).toBe(small.estimate());
    const large = new HyperLogLog();
    for (let i = 0; i < 100_000; i++) large.add(`l${i}`);
    const dense = large.serialize();
    expect(dense.length).toBe(4097);
    expect(HyperLogLog.deserialize(dense).estimate()).toBe(large.estimate());
  });
});

import { describe, expect, it } from "vitest";
import { RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";

/**
 * The aggregator's duplicate check: an event_id seen first at a lower offset of the same
 * partition is a duplicate, as long as it is among the partition's `capacity` most recent new ids
 * (the bound docs/stream-processing.md states). Eviction goes by insertion order, by key.
 */
describe("RecentEventIds", () => {
  it("knows an id resent at a later offset, not the first copy replayed at its own offset", () => {
    const recent = new RecentEventIds(10);
    expect(recent.isDuplicate(0, "a", 5)).toBe(false);
    expect(recent.isDuplicate(0, "a", 9)).toBe(true);
    expect(recent.isDuplicate(0, "a", 5)).toBe(false); // a replay of the first copy counts it
    expect(recent.isDuplicate(1, "a", 9)).toBe(false); // partitions are independent
  });

  it("forgets the oldest ids first and never holds more than its capacity", () => {
    const capacity = 1_000;
    const recent = new RecentEventIds(capacity);
    for (let offset = 0; offset < 10 * capacity + 7; offset++) recent.isDuplicate(3, `id-${offset}`, offset);
    expect(recent.size(3)).toBe(capacity);
    const newest = 10 * capacity + 6;
    // The last `capacity` ids are remembered; everything older was evicted, oldest first.
    for (let offset = newest - capacity + 1; offset <= newest; offset++)
      expect(recent.isDuplicate(3, `id-${offset}`, newest + 1)).toBe(true);
    expect(recent.isDuplicate(3, `id-${newest - capacity}`, newest + 1)).toBe(false);
    expect(recent.size(3)).toBe(capacity);
  });

  it("does not count a duplicate as new: a resend does not push an id out", () => {
    const recent = new RecentEventIds(3);
    recent.isDuplicate(0, "a", 0);
    recent.isDuplicate(0, "b", 1);
    recent.isDuplicate(0, "c", 2);
    for (let i = 0; i < 5; i++) expect(recent.isDuplicate(0, "c", 10 + i)).toBe(true);
    expect(recent.isDuplicate(0, "a", 20)).toBe(true);
    recent.isDuplicate(0, "d", 21); // evicts "a"
    expect(recent.isDuplicate(0, "a", 22)).toBe(false);
    expect(recent.isDuplicate(0, "c", 23)).toBe(true);
  });

  it("rejects a capacity that cannot hold an id", () => {
    expect(() => new RecentEventIds(0)).toThrow(RangeError);
  });
});

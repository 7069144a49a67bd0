import { describe, expect, it } from "vitest";
import { itemSizeBytes, writeUnits } from "../../lib/adapters/dynamodb-item-size.ts";
import { billedUnits, deltaPutUnits, discardedUnits } from "../../lib/adapters/window-store.ts";
import type { Groups } from "../../lib/stream/partial.ts";
import { encodePartial } from "../../lib/stream/partial-items.ts";

/**
 * Write units of the aggregator's transactions by DynamoDB's billing rule, and the units its
 * delta items still owe (their later deletion, a plain delete outside any transaction): what
 * `npm run bench` reports as the cost.
 */
describe("billedUnits", () => {
  const ref = { ruleKey: "events_by_type", granularity: "m" as const, windowStart: 1_764_000_000_000 };
  const groups = (n: number): Groups =>
    new Map(Array.from({ length: n }, (_, i) => [`type_${i}_${"x".repeat(40)}`, { c: i + 1 }]));
  const fence = {
    pk: "fence#events.raw",
    sk: "p0",
    last_offset: 41,
    max_event_time: 1,
    dirty: "[]",
    late_pending: "[]",
  };

  it("bills each put and delete per item (2 units per KB, rounded up per item) and the fence", () => {
    const small = encodePartial(ref, 0, "d", 10, groups(1), 0);
    const large = encodePartial({ ...ref, granularity: "h" }, 0, "d", 10, groups(200), 0);
    const puts = [...small, ...large];
    const sizes = puts.map(itemSizeBytes);
    expect(sizes.some((s) => s > 1024)).toBe(true); // one item above a KB, one under
    expect(sizes.some((s) => s < 1024)).toBe(true);
    const billed = billedUnits({ puts, deletes: [] }, itemSizeBytes(fence), undefined);
    const expected = sizes.reduce((n, s) => n + writeUnits(s, true), 0);
    const owed = sizes.reduce((n, s) => n + writeUnits(s, false), 0);
    expect(owed * 2).toBe(expected); // a plain delete costs half a transactional one
    expect(billed).toEqual({
      units: expected + 2,
      owedChange: owed,
      // Each delta costs its transactional put and its later plain deletion, by rule and granularity.
      costByWindowKind: {
        "events_by_type#m": writeUnits(sizes[0] ?? 0, true) + writeUnits(sizes[0] ?? 0, false),
        "events_by_type#h": writeUnits(sizes[1] ?? 0, true) + writeUnits(sizes[1] ?? 0, false),
        fence: 2,
      },
    });
    const { costByWindowKind } = billed;
    expect(Object.values(costByWindowKind).reduce((a, b) => a + b, 0)).toBe(billed.units + billed.owedChange);
    // Rounded per item: one transaction of both is not billed by their summed size.
    expect(expected).not.toBe(
      writeUnits(
        sizes.reduce((a, b) => a + b, 0),
        true,
      ),
    );
  });

  it("bills a compaction by the larger of a rewritten chunk's two sizes and by each chunk it drops; the deltas it absorbed pay what they owed when discarded", () => {
    const compacted = encodePartial(ref, 0, "c", 30, groups(60), 0);
    const [put] = compacted;
    if (!put) throw new Error("no record");
    const oldCompacted = 5_000; // the chunk it overwrites was larger
    const billed = billedUnits(
      {
        puts: compacted,
        deletes: [{ pk: put.pk, sk: `${ref.windowStart}#p0#c#001`, bytes: 700 }], // a chunk no longer needed
        replaces: new Map([[put.sk, oldCompacted]]),
      },
      itemSizeBytes(fence),
      3_000, // the previous fence item was larger than this one
    );
    expect(billed).toEqual({
      units:
        writeUnits(Math.max(itemSizeBytes(put), oldCompacted), true) +
        writeUnits(700, true) +
        writeUnits(3_000, true),
      owedChange: 0,
      costByWindowKind: {
        "events_by_type#m":
          writeUnits(Math.max(itemSizeBytes(put), oldCompacted), true) + writeUnits(700, true),
        fence: writeUnits(3_000, true),
      },
    });
    // The absorbed deltas go after the commit, one plain delete each: 1 unit per KB, rounded up per item.
    const absorbed = [
      { pk: put.pk, sk: `${ref.windowStart}#p0#d#0000000000000010#000`, bytes: 900 },
      { pk: put.pk, sk: `${ref.windowStart}#p0#d#0000000000000020#000`, bytes: 2_100 },
    ];
    expect(discardedUnits(absorbed)).toBe(1 + 3);
  });

  it("a delta deleted inside a transaction pays its owed plain delete, and the rest is charged to its rule", () => {
    const pk = `events_by_type#m#${ref.windowStart}`;
    const billed = billedUnits(
      { puts: [], deletes: [{ pk, sk: `${ref.windowStart}#p0#d#0000000000000010#000`, bytes: 2_100 }] },
      itemSizeBytes(fence),
      undefined,
    );
    expect(billed).toEqual({
      units: writeUnits(2_100, true) + 2,
      owedChange: -writeUnits(2_100, false),
      costByWindowKind: { "events_by_type#m": writeUnits(2_100, true) - writeUnits(2_100, false), fence: 2 },
    });
  });

  it("bills a slice's deltas put outside a transaction 1 unit per KB each, and as much again owed for their deletion", () => {
    const small = encodePartial(ref, 0, "d", 10, groups(1), 0);
    const large = encodePartial({ ...ref, ruleKey: "unique_users" }, 0, "d", 10, groups(200), 0);
    const puts = [...small, ...large];
    const sizes = puts.map(itemSizeBytes);
    const units = sizes.reduce((n, s) => n + writeUnits(s, false), 0);
    expect(units).toBe(1 + Math.ceil((sizes[1] ?? 0) / 1024));
    expect(deltaPutUnits(puts)).toEqual({
      units,
      owedChange: units,
      costByWindowKind: {
        "events_by_type#m": 2 * writeUnits(sizes[0] ?? 0, false),
        "unique_users#m": 2 * writeUnits(sizes[1] ?? 0, false),
      },
    });
  });
});

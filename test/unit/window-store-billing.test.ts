import { describe, expect, it } from "vitest";
import { itemSizeBytes, writeUnits } from "../../lib/adapters/dynamodb-item-size.ts";
import { billedUnits } from "../../lib/adapters/window-store.ts";
import type { Groups } from "../../lib/stream/partial.ts";
import { encodePartial } from "../../lib/stream/partial-items.ts";

/**
 * Write units of the aggregator's transactions by DynamoDB's billing rule, and the units its
 * delta items still owe (their later deletion): what `npm run bench` reports as the cost.
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
    expect(billed).toEqual({
      units: expected + 2,
      owedChange: expected,
      // Each delta costs its put and its later deletion, by rule and granularity.
      costByWindowKind: {
        "events_by_type#m": 2 * writeUnits(sizes[0] ?? 0, true),
        "events_by_type#h": 2 * writeUnits(sizes[1] ?? 0, true),
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

  it("bills a compaction by the larger of a rewritten chunk's two sizes and by each deleted item; deleted deltas pay what they owed", () => {
    const compacted = encodePartial(ref, 0, "c", 30, groups(60), 0);
    const [put] = compacted;
    if (!put) throw new Error("no record");
    const oldCompacted = 5_000; // the chunk it overwrites was larger
    const deltaBytes = [900, 2_100];
    const billed = billedUnits(
      {
        puts: compacted,
        deletes: [
          { pk: put.pk, sk: `${ref.windowStart}#p0#d#0000000000000010#000`, bytes: deltaBytes[0] },
          { pk: put.pk, sk: `${ref.windowStart}#p0#d#0000000000000020#000`, bytes: deltaBytes[1] },
          { pk: put.pk, sk: `${ref.windowStart}#p0#c#001`, bytes: 700 }, // a chunk no longer needed
        ],
        replaces: new Map([[put.sk, oldCompacted]]),
      },
      itemSizeBytes(fence),
      3_000, // the previous fence item was larger than this one
    );
    const deletedDeltas = writeUnits(900, true) + writeUnits(2_100, true);
    expect(billed).toEqual({
      units:
        writeUnits(Math.max(itemSizeBytes(put), oldCompacted), true) +
        deletedDeltas +
        writeUnits(700, true) +
        writeUnits(3_000, true),
      owedChange: -deletedDeltas,
      // The deleted deltas were costed when put; the compaction's puts and the chunk it drops were not.
      costByWindowKind: {
        "events_by_type#m":
          writeUnits(Math.max(itemSizeBytes(put), oldCompacted), true) + writeUnits(700, true),
        fence: writeUnits(3_000, true),
      },
    });
  });
});

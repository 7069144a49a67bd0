import { describe, expect, it } from "vitest";
import { itemSizeBytes } from "../../lib/adapters/dynamodb-item-size.ts";
import type { Groups } from "../../lib/stream/partial.ts";
import { decodeGroups, encodePartial } from "../../lib/stream/partial-items.ts";

/**
 * A delta item is cut into chunks before it is deflated, so that no item reaches DynamoDB's
 * 400 KB limit. The cut must count UTF-8 bytes (what is deflated and stored), not UTF-16 units:
 * a group value of non-ASCII text is up to 3 bytes per unit, and text drawn from the whole BMP
 * barely deflates.
 */
const DYNAMODB_MAX_ITEM_BYTES = 400 * 1024;

/** Deterministic text of BMP characters from U+0800 up (3 bytes each in UTF-8), no surrogates. */
function bmpText(seed: number, length: number): string {
  let x = seed;
  const units: number[] = [];
  while (units.length < length) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
    const unit = 0x0800 + ((x >>> 8) % (0x10000 - 0x0800));
    if (unit >= 0xd800 && unit <= 0xdfff) continue;
    units.push(unit);
  }
  return String.fromCharCode(...units);
}

describe("delta items of non-ASCII groups", () => {
  it("stay under DynamoDB's 400 KB item limit", () => {
    const groups: Groups = new Map();
    for (let i = 0; i < 300; i++) groups.set(bmpText(i + 1, 1000), { c: 1 });
    const ref = { ruleKey: "by_country", granularity: "m" as const, windowStart: Date.UTC(2026, 10, 24, 12) };
    const records = encodePartial(ref, 0, "d", 0, groups, Date.UTC(2026, 10, 24, 12, 0, 30));
    for (const r of records) expect(itemSizeBytes(r)).toBeLessThanOrEqual(DYNAMODB_MAX_ITEM_BYTES);
    // Every group is still there, once.
    expect(records.reduce((n, r) => n + decodeGroups(r).size, 0)).toBe(groups.size);
  });
});

import { describe, expect, it } from "vitest";
import { itemSizeBytes } from "../../lib/adapters/dynamodb-item-size.ts";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { foldRecords } from "../../lib/stream/fold.ts";
import { type GroupPartial, mergePartial } from "../../lib/stream/partial.ts";
import { decodeGroups, encodePartial } from "../../lib/stream/partial-items.ts";
import { figures } from "../../lib/stream/read.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";

/**
 * `events_by_type` keeps stats of numeric properties per event type, in one group: its whole
 * fragment goes into one item, so what it keeps must be bounded in bytes, not only in names. A
 * property name may be as long as an event (32 KiB); 64 such names made one group megabytes.
 */
const DYNAMODB_MAX_ITEM_BYTES = 400 * 1024;
const now = Date.UTC(2026, 10, 24, 12, 30, 30);
const eventsByType = BUILT_IN_RULES.filter((r) => r.rule_id === "events_by_type");

/** Deterministic letters and digits (they barely deflate: about 6 bits each). */
function randomName(seed: number, length: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  let x = seed;
  let out = "";
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
    out += alphabet[(x >>> 16) % alphabet.length];
  }
  return out;
}

const event = (i: number, properties: Record<string, unknown>): AcceptedEvent => ({
  event_id: `long-names-${i}`,
  user_id: `u${i}`,
  event_type: "purchase_completed",
  timestamp: now - 10_000,
  received_at: now - 10_000,
  properties,
});

describe("events_by_type with long property names", () => {
  it("keeps a type's delta under DynamoDB's 400 KB item limit, and still tracks readable names", () => {
    // One 30,000-character numeric property per event (each event under 32 KiB), 100 events.
    const records = Array.from({ length: 100 }, (_, i) => ({
      partition: 0,
      offset: i,
      event: event(i, { [randomName(i + 1, 30_000)]: i, amount: 10 }),
    }));
    const [delta] = foldRecords(records, eventsByType).values();
    if (!delta) throw new Error("no delta");
    const items = encodePartial(delta.ref, 0, "d", 0, delta.groups, now);
    for (const item of items) expect(itemSizeBytes(item)).toBeLessThanOrEqual(DYNAMODB_MAX_ITEM_BYTES);
    const group = decodeGroups(items[0] as (typeof items)[0]).get("purchase_completed");
    // A property GET /stats can ask for is tracked, and not said to be partial.
    expect(figures(group, "amount")).toMatchObject({ count: 100, sum: 1000, values: 100 });
    expect(figures(group, "amount").field_partial).toBeUndefined();
  });

  it("drops names no reader can ask for when merging partials stored before the bound", () => {
    const stored: GroupPartial = {
      c: 1,
      f: new Map([[randomName(7, 30_000), { n: 1, s: 1, e: 0, lo: null, o: 0, mn: 1, mx: 1 }]]),
    };
    const into: GroupPartial = { c: 0 };
    mergePartial(into, stored);
    expect([...(into.f ?? new Map()).keys()]).toEqual([]);
  });
});

import { describe, expect, it } from "vitest";
import { INITIAL_FENCE, type StoreChange } from "../../lib/adapters/window-store.ts";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import { type WindowRef, windowKey } from "../../lib/stream/fold.ts";
import { HyperLogLog } from "../../lib/stream/hll.ts";
import type { Groups } from "../../lib/stream/partial.ts";
import { encodePartial, recordBytes } from "../../lib/stream/partial-items.ts";
import type { AggregationRule } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * DynamoDB's TransactWriteItems takes at most 100 actions whose items add up to at most 4 MB
 * (DynamoDB API reference, TransactWriteItems; Developer Guide, "Service, account, and table
 * quotas": transactions); beyond, the whole call fails with a ValidationException, every time.
 */
const TRANSACT_MAX_ACTIONS = 100;
const TRANSACT_MAX_BYTES = 4 * 1024 * 1024;

/** The in-memory store, refusing a transaction over DynamoDB's limits as DynamoDB does. */
class TransactionLimitedStore extends MemoryWindowStore {
  refused = 0;
  override async apply(change: StoreChange): Promise<void> {
    const actions = change.puts.length + change.deletes.length + 1;
    const bytes =
      change.puts.reduce((n, r) => n + recordBytes(r), 0) +
      change.deletes.reduce((n, d) => n + Buffer.byteLength(d.pk) + Buffer.byteLength(d.sk), 0);
    if (actions > TRANSACT_MAX_ACTIONS || bytes > TRANSACT_MAX_BYTES) {
      this.refused++;
      throw Object.assign(new Error("Transaction request cannot include more than 4 MB"), {
        name: "ValidationException",
      });
    }
    await super.apply(change);
  }
}

/** Unique visitors per page: a sketch per URL, dense (4,096 registers) past ~1,400 visitors. */
const rule: AggregationRule = {
  rule_id: "visitors_by_page",
  event_type: "page_view",
  metric: "unique",
  group_by: ["page_url"],
  window: { type: "tumbling", size: "1h" },
  active: true,
};

const HOUR = Date.UTC(2026, 10, 24, 10);
const NOW = HOUR + 3 * 3_600_000;
const TOPIC = "events.raw";

/**
 * An hour of one partition for a busy shop: 3,400 pages, 2,000 visitors each (7,500 events/s over
 * the 6 partitions, well inside the ingest target), in two roll-up deltas of its minutes.
 */
function hourDeltas(ref: WindowRef) {
  const half = (from: number): Groups => {
    const groups: Groups = new Map();
    for (let page = 0; page < 3_400; page++) {
      const h = new HyperLogLog();
      for (let v = from; v < from + 1_000; v++) h.add(`visitor-${page}-${v}`);
      groups.set(`https://shop.example.com/products/item-${page}`, { c: 1_000, h });
    }
    return groups;
  };
  return [
    ...encodePartial(ref, 0, "d", 100, half(0), NOW),
    ...encodePartial(ref, 0, "d", 200, half(1_000), NOW),
  ];
}

describe("a compaction whose transaction DynamoDB would refuse", () => {
  it("leaves the window's deltas as they are and goes on, instead of failing every batch of the partition", async () => {
    const store = new TransactionLimitedStore(1);
    const ref: WindowRef = { ruleKey: rule.rule_id, granularity: "h", windowStart: HOUR };
    const deltas = hourDeltas(ref);
    for (const r of deltas) store.items.set(`${r.pk}|${r.sk}`, r);
    // Its compacted form alone is over the limit.
    expect(deltas.reduce((n, r) => n + recordBytes(r), 0)).toBeGreaterThan(TRANSACT_MAX_BYTES);
    store.fences.set(`${TOPIC}/0`, {
      ...INITIAL_FENCE,
      lastOffset: 300,
      maxEventTime: NOW - 60_000,
      closedBefore: NOW - 180_000,
      dirty: new Map([[windowKey(ref), deltas.length]]),
      stored: true,
    });
    const warnings: string[] = [];
    const event = (offset: number): AcceptedEvent => ({
      event_id: `e${offset}`,
      user_id: "u1",
      event_type: "page_view",
      page_url: "https://shop.example.com/",
      timestamp: NOW - 30_000,
      received_at: NOW - 30_000,
    });
    const deps = {
      store,
      rules: [rule],
      recent: new RecentEventIds(),
      publishLate: async () => {},
      now: () => NOW,
      warn: (message: string) => warnings.push(message),
    };
    await aggregateBatch(TOPIC, [{ partition: 0, offset: 301, event: event(301) }], deps);
    const fence = await store.getFence(TOPIC, 0);
    expect(fence.lastOffset).toBe(301);
    expect(fence.pending).toBeUndefined();
    // Nothing lost: the deltas stay, and readers merge them as they always could.
    for (const r of deltas) expect(store.items.get(`${r.pk}|${r.sk}`)).toBe(r);
    expect(warnings.some((w) => w.includes("compaction"))).toBe(true);

    // The next batch does not read and try the same window again while it has not changed.
    const refusedBefore = store.refused;
    await aggregateBatch(TOPIC, [{ partition: 0, offset: 302, event: event(302) }], deps);
    expect((await store.getFence(TOPIC, 0)).lastOffset).toBe(302);
    expect(store.refused).toBe(refusedBefore);
  }, 60_000);
});

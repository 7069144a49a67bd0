import { describe, expect, it } from "vitest";
import { type FenceChange, type StoreChange, storedDirty } from "../../lib/adapters/window-store.ts";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import {
  aggregateBatch,
  MAX_SLICE_DELTAS,
  OpenDeltas,
  RecentEventIds,
} from "../../lib/pipeline/aggregate-batch.ts";
import { readStats } from "../../lib/pipeline/stats-service.ts";
import { HOUR_MS, MINUTE_MS } from "../../lib/stream/fold.ts";
import type { PartialRecord } from "../../lib/stream/partial-items.ts";
import { type AggregationRule, BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/** DynamoDB refuses any item over 400 KB (Developer Guide, "Item size limits"). */
const MAX_ITEM_BYTES = 400 * 1024;
/** A fence's attributes besides its dirty list: keys, offsets, times, late list (generous). */
const FENCE_OTHER_BYTES = 512;

/** The in-memory store, refusing a fence past DynamoDB's item limit as DynamoDB does. */
class ItemLimitedStore extends MemoryWindowStore {
  largestFenceBytes = 0;
  #check(change: FenceChange): void {
    const bytes = storedDirty(change.fence.dirty).length + FENCE_OTHER_BYTES;
    this.largestFenceBytes = Math.max(this.largestFenceBytes, bytes);
    if (bytes > MAX_ITEM_BYTES)
      throw Object.assign(new Error("Item size has exceeded the maximum allowed size"), {
        name: "ValidationException",
      });
  }
  override async putFence(change: FenceChange): Promise<void> {
    this.#check(change);
    await super.putFence(change);
  }
  override async apply(change: StoreChange): Promise<void> {
    this.#check(change);
    await super.apply(change);
  }
}

/** Custom rules a team adds: each counts page views a way of its own (every one matches). */
const CUSTOM_RULES: AggregationRule[] = Array.from({ length: 45 }, (_, i) => ({
  rule_id: `views_${i}`,
  event_type: "page_view",
  metric: "count",
  group_by: ["user_id"],
  window: { type: "tumbling", size: "1m" },
  active: true,
}));
const RULES = [...BUILT_IN_RULES, ...CUSTOM_RULES];

/** A rule's count and granularity over `[from, to)`, read as GET /stats reads it at `now`. */
const ruleStats = async (
  store: MemoryWindowStore,
  rules: readonly AggregationRule[],
  rule_id: string,
  from: number,
  to: number,
  now: number,
) =>
  (await readStats(store, rules, { kind: "rule", rule_id, from, to }, now)) as {
    count: number;
    granularity: string;
  };

/**
 * A backfill: the last 1,500 minutes of one device sent oldest first, one event a minute, all
 * received now. Every event is on time (each is newer than the last), and each is in a window of
 * its own. A partition's fence lists the windows that still have deltas to compact (its dirty
 * list); before, every window of such a batch stayed in it and two compactions a commit took them
 * out: 1,500 minutes made a 150 KB fence, written twice a batch, and 5,000 minutes passed 400 KB,
 * which DynamoDB refuses: the batches went to the on-failure destination, archived, never counted.
 */
describe("a backfill in event-time order", () => {
  const MINUTES = 1_500;
  const NOW = Date.UTC(2026, 11, 6, 12, 0);
  const FIRST = NOW - MINUTES * MINUTE_MS;
  const events: AcceptedEvent[] = Array.from({ length: MINUTES }, (_, i) => ({
    event_id: `backfill-${i}`,
    user_id: `u${i % 3}`,
    event_type: "page_view",
    timestamp: FIRST + i * MINUTE_MS + 30_000,
    received_at: NOW,
  }));

  /** The aggregator's dependencies for a store: the backfill arrives at NOW. */
  const depsOf = <S extends MemoryWindowStore>(store: S, rules: readonly AggregationRule[] = RULES) => ({
    store,
    rules,
    recent: new RecentEventIds(),
    publishLate: async () => {},
    now: () => NOW,
  });
  /** The backfill's first `n` events as one partition's batch. */
  const batchOf = (n: number) => events.slice(0, n).map((event, offset) => ({ partition: 0, offset, event }));
  /** The built-in rules and 20 custom ones: 1,000 of the backfill's minutes are 26,000 deltas. */
  const TWENTY_FIVE_RULES = [...BUILT_IN_RULES, ...CUSTOM_RULES.slice(0, 20)];
  /** The backfill's first 15 whole hours count every event of a rule, read from hourly items. */
  const expectFifteenHours = async (store: MemoryWindowStore, rule_id: string) => {
    const firstHour = Math.ceil(FIRST / HOUR_MS) * HOUR_MS;
    const stats = await ruleStats(
      store,
      TWENTY_FIVE_RULES,
      rule_id,
      firstHour,
      firstHour + 15 * HOUR_MS,
      NOW,
    );
    expect(stats).toMatchObject({ granularity: "h", count: 15 * 60 });
  };

  it("keeps the partition's fence small, and counts every event in its minute and its hour", async () => {
    const store = new ItemLimitedStore(1);
    const deps = { ...depsOf(store), openDeltas: new OpenDeltas() };
    // As the mapping delivers them: batches of 500 records.
    for (let from = 0; from < MINUTES; from += 500) {
      const batch = events
        .slice(from, from + 500)
        .map((event, i) => ({ partition: 0, offset: from + i, event }));
      await aggregateBatch("events.raw", batch, deps);
    }
    expect(store.largestFenceBytes).toBeLessThan(16 * 1024);
    // Nor does the aggregator hold on to the deltas of windows closed for good (it extends only
    // open windows' deltas): a few minutes and hours of each rule, whatever the backfill's span.
    const held = deps.openDeltas.of(0, await store.getFence("events.raw", 0));
    expect(held.size).toBeGreaterThan(0);
    expect(held.size).toBeLessThanOrEqual(RULES.length * 6);

    const count = (rule_id: string, from: number, to: number) =>
      ruleStats(store, RULES, rule_id, from, to, NOW);
    // Whole hours (read from the hours' items), and minutes, of a built-in rule and a custom one.
    const firstHour = Math.ceil(FIRST / HOUR_MS) * HOUR_MS;
    for (const rule_id of ["events_by_type", "views_44"]) {
      const hours = await count(rule_id, firstHour, firstHour + 24 * HOUR_MS);
      expect(hours).toMatchObject({ granularity: "h", count: 24 * 60 });
      const minutes = await count(rule_id, firstHour + 17 * MINUTE_MS, firstHour + 47 * MINUTE_MS);
      expect(minutes).toMatchObject({ granularity: "m", count: 30 });
      // The last minutes: still open when the backfill ended.
      const last = await count(rule_id, NOW - 10 * MINUTE_MS, NOW);
      expect(last).toMatchObject({ granularity: "m", count: 10 });
    }
  }, 120_000);

  it("writes a batch of many minutes in slices, so a retry after a crash writes one slice again, not the batch", async () => {
    // What a timed-out invocation loses and its retry redoes: the claimed slice.
    class CountingStore extends MemoryWindowStore {
      readonly putCalls: number[] = [];
      rewritten = 0;
      override async putDeltas(puts: readonly PartialRecord[]): Promise<void> {
        this.putCalls.push(puts.length);
        await super.putDeltas(puts);
      }
      override async putDeltasIfAbsent(puts: readonly PartialRecord[]): Promise<void> {
        this.rewritten += puts.length;
        await super.putDeltasIfAbsent(puts);
      }
    }
    const store = new CountingStore(1);
    const rules = TWENTY_FIVE_RULES;
    const deps = depsOf(store, rules);
    const backfill = batchOf(1_000);
    // The invocation dies (a Lambda timing out) at its 14th write: a slice is three (claim, deltas,
    // confirmation), so the fifth slice is claimed and its deltas are not written. The mapping
    // retries the batch.
    store.crashAt = 13;
    await expect(aggregateBatch("events.raw", backfill, deps)).rejects.toThrow("crash");
    store.crashAt = Number.POSITIVE_INFINITY;
    await aggregateBatch("events.raw", backfill, { ...deps, recent: new RecentEventIds() });

    // 1,000 minutes × 25 rules: 26,000 deltas, in slices of about MAX_SLICE_DELTAS each.
    expect(store.putCalls.length).toBeGreaterThan(10);
    expect(Math.max(...store.putCalls)).toBeLessThanOrEqual(MAX_SLICE_DELTAS + 2 * rules.length);
    expect(store.rewritten).toBeGreaterThan(0);
    expect(store.rewritten).toBeLessThanOrEqual(MAX_SLICE_DELTAS + 2 * rules.length);
    await expectFifteenHours(store, "views_19");
  }, 60_000);

  it("writes no minute whose retention is over (reads take its hour), and counts it in its hour", async () => {
    const store = new MemoryWindowStore(1);
    const deps = depsOf(store);
    // Three days back, then the last hour: minutes are kept two days (TTL_SECONDS.m).
    const old = Math.floor((NOW - 3 * 86_400_000) / HOUR_MS) * HOUR_MS;
    const sent: AcceptedEvent[] = [];
    for (const start of [old, NOW - HOUR_MS])
      for (let i = 0; i < 120; i++)
        sent.push({
          event_id: `old-${sent.length}`,
          user_id: "u1",
          event_type: "page_view",
          timestamp: start + i * MINUTE_MS + 1_000,
          received_at: NOW,
        });
    await aggregateBatch(
      "events.raw",
      sent.map((event, offset) => ({ partition: 0, offset, event })),
      deps,
    );
    const minutes = [...store.items.values()].filter((r) => r.g === "m");
    expect(minutes.filter((r) => r.ws < NOW - 2 * 86_400_000)).toEqual([]);
    expect(minutes.some((r) => r.ws >= NOW - HOUR_MS)).toBe(true);
    const hours = await ruleStats(store, RULES, "views_3", old, old + 2 * HOUR_MS, NOW);
    expect(hours).toMatchObject({ granularity: "h", count: 120 });
  });

  it("leaves the slices it has no time for to the next invocation, which counts them", async () => {
    const store = new MemoryWindowStore(1);
    // The invocation's clock: time enough for four slices, then none left.
    let asked = 0;
    const deps = { ...depsOf(store, TWENTY_FIVE_RULES), remainingMs: () => (++asked <= 3 ? 60_000 : 0) };
    const backfill = batchOf(1_000);
    const first = await aggregateBatch("events.raw", backfill, deps);
    expect(first.slices).toBe(4);
    const [left, ...more] = first.unprocessed;
    expect(more).toEqual([]);
    expect(left?.partition).toBe(0);
    expect(left?.offset).toBeGreaterThan(0);
    // The mapping hands the rest over again, from the first record left.
    const second = await aggregateBatch(
      "events.raw",
      backfill.filter((r) => r.offset >= (left?.offset ?? 0)),
      { ...deps, remainingMs: () => 60_000 },
    );
    expect(second.unprocessed).toEqual([]);
    await expectFifteenHours(store, "views_7");
  }, 60_000);

  it("takes a straggler that closes its own minute as live traffic: no hour written at once", async () => {
    // A client whose clock runs behind: its event is on time, and the slice's newer events close
    // its minute. One such minute is live traffic's lot (it waits for its compaction, as every
    // minute does); writing the slice's hours at once would cost a delta per rule and hour.
    const store = new MemoryWindowStore(1);
    const deps = depsOf(store);
    const at = (offset: number, timestamp: number) => ({
      partition: 0,
      offset,
      event: {
        event_id: `s-${offset}`,
        user_id: "u1",
        event_type: "page_view",
        timestamp,
        received_at: timestamp,
      },
    });
    const T = NOW - 10 * MINUTE_MS;
    await aggregateBatch("events.raw", [at(0, T)], deps);
    // Watermark T − 2 min: the straggler's minute [T − 2 min, T − 1 min) is open, and the next
    // event (T + 1.5 min) moves the watermark past its end.
    const outcome = await aggregateBatch("events.raw", [at(1, T - 90_000), at(2, T + 90_000)], deps);
    expect(outcome.onTime).toBe(2);
    // A wide slice's hour deltas are keyed by its first offset (1); compactions' roll-ups of the
    // minutes they absorb, by the fence's at the time (0, 2).
    expect([...store.items.values()].filter((r) => r.g === "h" && r.offset === 1)).toEqual([]);
    // The hour counts the three events all the same: roll-ups, and minutes not rolled up yet.
    const hour = Math.floor(T / HOUR_MS) * HOUR_MS;
    const stats = await ruleStats(store, RULES, "events_by_type", hour, hour + HOUR_MS, NOW);
    expect(stats).toMatchObject({ granularity: "h", count: 3 });
  });
});

import { describe, expect, it } from "vitest";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import { ClosedWindowCache } from "../../lib/pipeline/closed-windows.ts";
import { readStats } from "../../lib/pipeline/stats-service.ts";
import type { Granularity } from "../../lib/stream/fold.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * GET /stats keeps the windows every partition's watermark has passed: a poll of the last hour
 * reads the windows still open, not the whole hour, and answers the same.
 */
const MIN = 60_000;
/** A fence snapshot with every hour rolled up. */
const snapshotAt = (closedBefore: number) => ({ closedBefore, unrolledHours: new Map() });
const start = Date.UTC(2026, 10, 24, 12, 0);
let seq = 0;
const ev = (timestamp: number, type = "page_view"): AcceptedEvent => ({
  event_id: `cw-${seq++}`,
  user_id: `u${seq % 5}`,
  event_type: type,
  timestamp,
  received_at: timestamp,
});

describe("GET /stats with closed windows cached", () => {
  const setup = async () => {
    const store = new MemoryWindowStore(2);
    const recent = new RecentEventIds();
    const offsets = new Map<number, number>();
    const next = (partition: number) => {
      const offset = offsets.get(partition) ?? 0;
      offsets.set(partition, offset + 1);
      return offset;
    };
    const send = async (partition: number, timestamps: number[], type?: string) => {
      await aggregateBatch(
        "events.raw",
        timestamps.map((t) => ({ partition, offset: next(partition), event: ev(t, type) })),
        { store, rules: BUILT_IN_RULES, recent, publishLate: async () => {}, now: () => start + 30 * MIN },
      );
    };
    const reads: { granularity: Granularity; starts: readonly number[] }[] = [];
    const read = store.read.bind(store);
    store.read = async (ruleKey, granularity, starts, partition) => {
      if (ruleKey === "events_by_type") reads.push({ granularity, starts });
      return read(ruleKey, granularity, starts, partition);
    };
    const cache = new ClosedWindowCache(() => store.fenceSnapshot("events.raw", 2), {
      refreshMs: 0,
      settleMs: 0,
    });
    const stats = (now: number, withCache = true) =>
      readStats(
        store,
        BUILT_IN_RULES,
        { kind: "event_type", event_type: "page_view", interval: "1h", intervalMs: 60 * MIN, group_by: [] },
        now,
        withCache ? cache : undefined,
      ) as Promise<{ count: number; series: { count: number }[] }>;
    return { store, send, reads, cache, stats };
  };

  it("reads only the windows still open once the closed ones are cached, and answers as without the cache", async () => {
    const { send, reads, cache, stats } = await setup();
    // Both partitions: events over 12:00–12:19, then the watermark at 12:20 (lateness 2 min).
    for (const p of [0, 1]) {
      await send(
        p,
        Array.from({ length: 20 }, (_, m) => start + m * MIN + 5_000),
      );
      await send(p, [start + 20 * MIN]);
    }
    const now = start + 20 * MIN + 30_000;
    const first = await stats(now);
    expect(first.count).toBe(42);
    expect(cache.size).toBeGreaterThan(0);
    reads.length = 0;
    const second = await stats(now);
    expect(second).toEqual(first);
    // What the cached poll read: only minutes not yet closed (from 12:18 on, closed before 12:18).
    const readMinutes = reads.filter((r) => r.granularity === "m").flatMap((r) => r.starts);
    expect(readMinutes.length).toBeGreaterThan(0);
    expect(Math.min(...readMinutes)).toBeGreaterThanOrEqual(start + 18 * MIN);
    expect(second).toEqual(await stats(now, false));
  });

  it("caches nothing while a partition has no fence, or lags: its windows may still change", async () => {
    const { send, cache, stats } = await setup();
    await send(0, [start + 5_000, start + 20 * MIN]);
    const now = start + 20 * MIN + 30_000;
    expect((await stats(now)).count).toBe(2);
    expect(cache.size).toBe(0); // partition 1 has written nothing yet
    await send(1, [start + 6_000]); // its watermark is 12:00: 12:00 stays open
    expect((await stats(now)).count).toBe(3);
    await send(1, [start + 7_000]);
    expect((await stats(now)).count).toBe(4);
  });

  it("shares one read of the watermarks between concurrent requests and reuses it for refreshMs", async () => {
    let calls = 0;
    let clock = 0;
    const cache = new ClosedWindowCache(
      async () => {
        calls++;
        return snapshotAt(1_000 * calls);
      },
      { refreshMs: 1_000, settleMs: 0, now: () => clock },
    );
    expect(await Promise.all([cache.closedBefore(), cache.closedBefore()])).toEqual([1_000, 1_000]);
    clock = 999;
    expect(await cache.closedBefore()).toBe(1_000);
    clock = 1_000;
    expect(await cache.closedBefore()).toBe(2_000);
    expect(calls).toBe(2);
  });

  it("uses an answer only once it is settleMs old: the commit that moved a fence may still be writing a window it closed", async () => {
    let clock = 0;
    let value = 5_000;
    const cache = new ClosedWindowCache(async () => snapshotAt(value), {
      refreshMs: 100,
      settleMs: 500,
      now: () => clock,
    });
    expect(await cache.closedBefore()).toBe(Number.NEGATIVE_INFINITY);
    clock = 200;
    value = 9_000; // read at 200
    expect(await cache.closedBefore()).toBe(Number.NEGATIVE_INFINITY);
    clock = 500;
    expect(await cache.closedBefore()).toBe(5_000); // the answer read at 0
    clock = 699;
    expect(await cache.closedBefore()).toBe(5_000);
    clock = 700;
    expect(await cache.closedBefore()).toBe(9_000);
  });

  /** A promise that is still pending once everything already queued has run (a macrotask later). */
  const stillPending = <T>(p: Promise<T>) =>
    Promise.race([p.then(() => false), new Promise<boolean>((r) => setImmediate(() => r(true)))]);

  it("answers without waiting for a due refresh: a new answer is of use only settleMs later", async () => {
    let clock = 0;
    const reads: ((s: ReturnType<typeof snapshotAt>) => void)[] = [];
    const cache = new ClosedWindowCache(() => new Promise((resolve) => reads.push(resolve)), {
      refreshMs: 100,
      settleMs: 500,
      now: () => clock,
    });
    expect(await stillPending(cache.closedBefore())).toBe(false); // nothing settled: no wait either
    reads[0]?.(snapshotAt(5_000)); // read at 0
    await cache.refreshed();
    clock = 600;
    // A refresh is due and its read never answers: the request still gets the settled answer.
    const answer = cache.closedBefore();
    expect(await stillPending(answer)).toBe(false);
    expect(await answer).toBe(5_000);
    expect(reads).toHaveLength(2);
    // Concurrent requests share the read in flight.
    clock = 700;
    expect(await cache.closedBefore()).toBe(5_000);
    expect(reads).toHaveLength(2);
    reads[1]?.(snapshotAt(9_000)); // answered at 700
    await cache.refreshed();
    clock = 1_199;
    expect(await cache.closedBefore()).toBe(5_000);
    clock = 1_200;
    expect(await cache.closedBefore()).toBe(9_000);
  });

  it("reads again when a refresh stays pending past abandonMs (a Lambda environment frozen mid-request)", async () => {
    let clock = 0;
    const reads: ((s: ReturnType<typeof snapshotAt>) => void)[] = [];
    const cache = new ClosedWindowCache(() => new Promise((resolve) => reads.push(resolve)), {
      refreshMs: 100,
      settleMs: 500,
      abandonMs: 2_000,
      now: () => clock,
    });
    await cache.closedBefore(); // read 1 at 0, never answered
    clock = 1_999;
    await cache.closedBefore();
    expect(reads).toHaveLength(1);
    clock = 2_000;
    await cache.closedBefore();
    expect(reads).toHaveLength(2);
    reads[1]?.(snapshotAt(7_000)); // answered at 2,000
    reads[0]?.(snapshotAt(1_000)); // the abandoned read answers late: not used
    await cache.refreshed();
    clock = 2_500;
    expect(await cache.closedBefore()).toBe(7_000);
  });

  it("a failed refresh leaves the settled answer in use, and the next due request reads again", async () => {
    let clock = 0;
    let calls = 0;
    const cache = new ClosedWindowCache(
      async () => {
        calls++;
        if (calls === 2) throw new Error("DynamoDB unavailable");
        return snapshotAt(1_000 * calls);
      },
      { refreshMs: 100, settleMs: 500, now: () => clock },
    );
    await cache.closedBefore();
    await cache.refreshed();
    clock = 500;
    expect(await cache.closedBefore()).toBe(1_000); // read 2 fails in the background
    await cache.refreshed();
    expect(calls).toBe(2);
    clock = 501;
    await cache.closedBefore(); // still due: read 3
    await cache.refreshed();
    expect(calls).toBe(3);
    clock = 1_001;
    expect(await cache.closedBefore()).toBe(3_000);
  });

  it("holds at most maxGroups groups, dropping the least recently used window", () => {
    const cache = new ClosedWindowCache(async () => snapshotAt(0), { maxGroups: 3 });
    const groups = (n: number) => new Map(Array.from({ length: n }, (_, i) => [`g${i}`, { c: 1 }]));
    cache.set("r", "m", 1, groups(1));
    cache.set("r", "m", 2, groups(1));
    expect(cache.get("r", "m", 1)?.size).toBe(1); // 1 is now the most recently used
    cache.set("r", "m", 3, groups(2));
    expect(cache.get("r", "m", 2)).toBeUndefined();
    expect(cache.get("r", "m", 1)?.size).toBe(1);
    expect(cache.get("r", "m", 3)?.size).toBe(2);
  });
});

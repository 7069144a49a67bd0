import { describe, expect, it } from "vitest";
import { readPlan } from "../../lib/adapters/window-store.ts";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, COMPACT_AFTER, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import { readStats } from "../../lib/pipeline/stats-service.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * The key layout of the aggregates table: every source partition's items of a rule and bucket
 * share one key, so a read of every partition is one Query per bucket (DynamoDB Local spends ~2 ms
 * of CPU per request, so GET /stats cost 12–24 requests' worth when each partition had its own key).
 * Writers still own their partition's sort keys: one partition's compaction neither hides nor
 * absorbs another's items.
 */
const MIN = 60_000;
const now = Date.UTC(2026, 10, 24, 12, 30, 30);
const windowStart = Date.UTC(2026, 10, 24, 12, 30);

let seq = 0;
const ev = (): AcceptedEvent => ({
  event_id: `layout-${seq++}`,
  user_id: `u${seq}`,
  event_type: "page_view",
  timestamp: now - 10_000,
  received_at: now - 10_000,
});

const recent = new RecentEventIds();
async function batch(store: MemoryWindowStore, partition: number, offset: number) {
  await aggregateBatch("events.raw", [{ partition, offset, event: ev() }], {
    store,
    rules: BUILT_IN_RULES,
    recent,
    publishLate: async () => {},
    now: () => now,
  });
}

const pageViewsOfLast5Minutes = (store: MemoryWindowStore) =>
  readStats(
    store,
    BUILT_IN_RULES,
    { kind: "event_type", event_type: "page_view", interval: "5m", intervalMs: 5 * MIN, group_by: [] },
    now,
  ) as Promise<{ count: number }>;

describe("aggregates key layout", () => {
  it("reads a range of every partition with one Query per bucket, and one partition's window with one", () => {
    const minutes = Array.from({ length: 6 }, (_, i) => windowStart - i * MIN);
    // 12:25–12:30 lie in one hour bucket: one Query, not one per source partition.
    expect(readPlan("events_by_type", "m", minutes)).toHaveLength(1);
    // Across an hour boundary: two buckets, two Queries.
    expect(readPlan("events_by_type", "m", [windowStart - 31 * MIN, windowStart])).toHaveLength(2);
    const own = readPlan("events_by_type", "m", [windowStart], 1);
    expect(own).toHaveLength(1);
    // Partition 1's range must not take in partition 10's keys.
    const [q] = own;
    const p10 = `${windowStart}#p10#d#0000000000000005#000`;
    expect(q !== undefined && p10 >= q.lo && p10 <= q.hi).toBe(false);
  });

  it("GET /stats by event type over 5 minutes makes one Query per rule, whatever the partitions", async () => {
    const store = new MemoryWindowStore(6);
    for (let p = 0; p < 6; p++) await batch(store, p, 0);
    let queries = 0;
    const read = store.read.bind(store);
    store.read = async (ruleKey, granularity, starts, partition) => {
      queries += readPlan(ruleKey, granularity, starts, partition).length;
      return read(ruleKey, granularity, starts, partition);
    };
    const stats = await pageViewsOfLast5Minutes(store);
    expect(stats.count).toBe(6);
    // events_by_type and late_events, one hour bucket each
    expect(queries).toBe(2);
  });

  it("one partition's compaction neither hides nor absorbs another partition's items of the window", async () => {
    const store = new MemoryWindowStore(12);
    // Partition 10 writes first, at low offsets.
    await batch(store, 10, 3);
    // Partitions 0 and 1 write enough deltas for their windows to compact, at higher offsets.
    const batches = COMPACT_AFTER.m + 1;
    for (let i = 0; i < batches; i++) {
      await batch(store, 0, 100 + i);
      await batch(store, 1, 200 + i);
    }
    const compacted = [...store.items.values()].filter((r) => r.kind === "c" && r.g === "m");
    expect(compacted.length).toBeGreaterThan(0);
    // Each compacted item holds its own partition's events only.
    for (const r of compacted) expect(r.sk).toContain(`#p${r.p}#c#`);
    const p10 = [...store.items.values()].filter(
      (r) => r.p === 10 && r.g === "m" && r.rule === "events_by_type",
    );
    expect(p10.map((r) => r.kind)).toEqual(["d"]);
    const stats = await pageViewsOfLast5Minutes(store);
    // A compacted item of partition 1 (through offset ≥ 200) must not drop partition 10's delta
    // at offset 3, nor partition 0's deltas: every event counts once.
    expect(stats.count).toBe(2 * batches + 1);
  });
});

import { describe, expect, it } from "vitest";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import { ClosedWindowCache } from "../../lib/pipeline/closed-windows.ts";
import { readStats } from "../../lib/pipeline/stats-service.ts";
import { HOUR_MS, MINUTE_MS, TTL_SECONDS } from "../../lib/stream/fold.ts";
import { decodeGroups, encodePartial } from "../../lib/stream/partial-items.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * Hourly roll-ups come from compactions: a batch writes its minutes only, and a compaction adds
 * what it absorbs from a minute to the minute's hour. Until then an hour is its roll-up plus its
 * minutes' unrolled deltas, and reads of whole hours must answer the same at every step.
 */
const HOUR = Date.UTC(2026, 10, 24, 12, 0);
let seq = 0;
const ev = (timestamp: number, user = `u${seq % 7}`): AcceptedEvent => ({
  event_id: `hr-${seq++}`,
  user_id: user,
  event_type: "page_view",
  timestamp,
  received_at: timestamp,
});

function setup(partitions = 1, firstOffset = 0) {
  const store = new MemoryWindowStore(partitions);
  const recent = new RecentEventIds();
  const offsets = new Map<number, number>(Array.from({ length: partitions }, (_, p) => [p, firstOffset]));
  // Processed as they arrive: "now" is the batch's last event (compaction closes windows by it too).
  const send = async (partition: number, timestamps: readonly number[], now = Math.max(...timestamps)) => {
    const records = timestamps.map((t) => {
      const offset = offsets.get(partition) ?? 0;
      offsets.set(partition, offset + 1);
      return { partition, offset, event: ev(t) };
    });
    await aggregateBatch("events.raw", records, {
      store,
      rules: BUILT_IN_RULES,
      recent,
      publishLate: async () => {},
      now: () => now,
    });
  };
  const items = (g: "m" | "h", rule = "events_by_type") =>
    [...store.items.values()].filter((r) => r.rule === rule && r.g === g);
  /** The whole hour 12:00–13:00 by rule (planned from its hourly window), read at `now`. */
  const hourCount = async (now: number, cache?: ClosedWindowCache) => {
    const stats = (await readStats(
      store,
      BUILT_IN_RULES,
      { kind: "rule", rule_id: "events_by_type", from: HOUR, to: HOUR + HOUR_MS },
      now,
      cache,
    )) as { count: number; granularity: string };
    expect(stats.granularity).toBe("h");
    return stats.count;
  };
  return { store, send, items, hourCount };
}

describe("hourly roll-ups at compaction", () => {
  it("a batch writes minutes only; a compaction adds exactly what it absorbed to the hour", async () => {
    const { send, items } = setup();
    await send(0, [HOUR + 5_000, HOUR + 6_000, HOUR + MINUTE_MS + 1_000]);
    expect(items("h")).toEqual([]);
    expect(items("m").every((r) => r.u === 1)).toBe(true);
    // The per-user rule keeps no hours: nothing of it rolls up.
    expect(items("m", "active_sessions_per_user").every((r) => r.u === undefined)).toBe(true);
    // An event 10 minutes on closes 12:00 and 12:01 (lateness 2 minutes): every rule's windows
    // of both fall due, two compactions a commit, and one roll-up into an hour a commit.
    for (let i = 0; i < 8; i++) await send(0, [HOUR + 11 * MINUTE_MS + i]);
    const rolled = items("h");
    expect(rolled.length).toBeGreaterThan(0);
    const counted = rolled.reduce((n, r) => n + (decodeGroups(r).get("page_view")?.c ?? 0), 0);
    expect(counted).toBe(3);
    // The minutes' deltas were absorbed, so none of them is still waiting to roll up.
    const minuteDeltas = items("m").filter((r) => r.kind === "d" && r.ws < HOUR + 2 * MINUTE_MS);
    expect(minuteDeltas).toEqual([]);
  });

  it("reads a whole hour the same before and after its minutes roll up, with and without the fences cached", async () => {
    const { store, send, hourCount } = setup(2);
    const cache = new ClosedWindowCache(() => store.fenceSnapshot("events.raw", 2), {
      refreshMs: 0,
      settleMs: 0,
    });
    const now = HOUR + 2 * HOUR_MS;
    await send(0, [HOUR + 5_000, HOUR + 20 * MINUTE_MS]);
    await send(1, [HOUR + 7_000]);
    expect(await hourCount(now)).toBe(3);
    expect(await hourCount(now, cache)).toBe(3);
    // Partition 0 moves past the hour: its minutes compact and roll up; partition 1 stays behind.
    for (let i = 0; i < 4; i++) await send(0, [HOUR + 65 * MINUTE_MS + i]);
    expect(await hourCount(now)).toBe(3);
    expect(await hourCount(now, cache)).toBe(3);
    expect(cache.size).toBe(0); // partition 1 still has a minute of the hour to roll up
    for (let i = 0; i < 4; i++) await send(1, [HOUR + 65 * MINUTE_MS + i]);
    expect(await hourCount(now, cache)).toBe(3);
    expect(await hourCount(now, cache)).toBe(3); // from the cache: closed and rolled up
    expect(cache.size).toBeGreaterThan(0);
    expect(await hourCount(now)).toBe(3);
  });

  it("a partition whose traffic stops keeps its hour whole after its minutes expire", async () => {
    const { store, send, items, hourCount } = setup();
    await send(0, [HOUR + 5_000, HOUR + 6_000]);
    // Never compacted: its deltas are the hour's only copy, so they live as long as the hour.
    const hourExpiry = Math.floor((HOUR + HOUR_MS) / 1000) + TTL_SECONDS.h;
    expect(items("m").map((r) => r.expires_at)).toEqual(items("m").map(() => hourExpiry));
    // Three days on, the plan reads the hour from its roll-up (minutes are kept two days).
    const cache = new ClosedWindowCache(() => store.fenceSnapshot("events.raw", 1), {
      refreshMs: 0,
      settleMs: 0,
    });
    const later = HOUR + 3 * 24 * HOUR_MS;
    expect(await hourCount(later)).toBe(2);
    expect(await hourCount(later, cache)).toBe(2);
  });

  it("does not roll up minute deltas written when batches wrote the hour themselves", async () => {
    const { store, send, items, hourCount } = setup(1, 2);
    // As the aggregator wrote them before: a minute delta without the mark, and the hour's own delta.
    const groups = new Map([["page_view", { c: 2 }]]);
    const minute = { ruleKey: "events_by_type", granularity: "m" as const, windowStart: HOUR };
    for (const r of [
      ...encodePartial(minute, 0, "d", 0, groups, HOUR),
      ...encodePartial({ ...minute, granularity: "h", windowStart: HOUR }, 0, "d", 0, groups, HOUR),
    ])
      store.items.set(`${r.pk}|${r.sk}`, r);
    store.fences.set("events.raw/0", {
      lastOffset: 1,
      maxEventTime: HOUR + 5_000,
      closedBefore: Number.NEGATIVE_INFINITY,
      dirty: new Map([
        [`events_by_type#m#${HOUR}`, 1],
        [`events_by_type#h#${HOUR}`, 1],
      ]),
      latePending: [],
      stored: true,
    });
    const now = HOUR + 2 * HOUR_MS;
    expect(await hourCount(now)).toBe(2);
    // The new code closes and compacts that minute: the hour must still count 2.
    await send(0, [HOUR + 11 * MINUTE_MS]);
    expect(items("m").filter((r) => r.ws === HOUR && r.kind === "d")).toEqual([]);
    expect(await hourCount(now)).toBe(3);
  });
});

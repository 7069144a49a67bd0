import { describe, expect, it } from "vitest";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import {
  aggregateBatch,
  MAX_COMPACTIONS_PER_COMMIT,
  RecentEventIds,
} from "../../lib/pipeline/aggregate-batch.ts";
import { readStats } from "../../lib/pipeline/stats-service.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * Windows close together (every rule's window of a partition at each minute's close): the commit
 * after that compacts a few of them, the next commits the rest, and no count changes on the way.
 * Compacting them all at once held the partition's next batch back by 1.6–1.9 s in the bench.
 */
const MIN = 60_000;
const start = Date.UTC(2026, 10, 24, 12, 0);

let seq = 0;
const ev = (timestamp: number): AcceptedEvent => ({
  event_id: `spread-${seq++}`,
  user_id: `u${seq % 7}`,
  session_id: `s${seq % 3}`,
  event_type: "page_view",
  page_url: "/a",
  timestamp,
  received_at: timestamp,
});

describe("compactions after a commit", () => {
  it(`are at most ${MAX_COMPACTIONS_PER_COMMIT}, oldest window first; later commits compact the rest, and counts never change`, async () => {
    const store = new MemoryWindowStore(1);
    const recent = new RecentEventIds();
    let offset = 0;
    let now = start;
    const send = async (timestamps: number[]) =>
      aggregateBatch(
        "events.raw",
        timestamps.map((t) => ({ partition: 0, offset: offset++, event: ev(t) })),
        { store, rules: BUILT_IN_RULES, recent, publishLate: async () => {}, now: () => now },
      );
    const count = async () =>
      (
        (await readStats(
          store,
          BUILT_IN_RULES,
          { kind: "event_type", event_type: "page_view", interval: "1h", intervalMs: 60 * MIN, group_by: [] },
          now,
        )) as { count: number }
      ).count;

    // Events in each of minutes 12:00–12:04, a batch each as they arrive: a delta per rule and
    // minute. (One batch of them all would close 12:00–12:01 itself, a wide slice: those minutes
    // would go to their hour at once, never listed for compaction.)
    now = start + 5 * MIN;
    for (const m of [0, 1, 2, 3, 4]) await send([start + m * MIN + 1_000]);
    const dirty = async () => [...(await store.getFence("events.raw", 0)).dirty.keys()];
    const minuteWindows = (await dirty()).filter((k) => k.includes("#m#"));
    expect(minuteWindows.length).toBeGreaterThan(2 * MAX_COMPACTIONS_PER_COMMIT);

    // Ten minutes on, all of them are closed: the next commit compacts only the oldest ones.
    now = start + 15 * MIN;
    const first = await send([now - 1_000]);
    expect(first.compactions).toBe(MAX_COMPACTIONS_PER_COMMIT);
    const left = await dirty();
    expect(left).not.toContain(minuteWindows.find((k) => k.endsWith(`#${start}`)));
    expect(await count()).toBe(6);

    // The following commits drain the rest, a few at a time.
    const seen: number[] = [];
    for (
      let i = 0;
      i < 40 && (await dirty()).some((k) => k.includes("#m#") && !k.endsWith(`#${now - (now % MIN)}`));
      i++
    ) {
      seen.push((await send([now - 1_000])).compactions);
      expect(await count()).toBe(7 + i);
    }
    expect(seen.length).toBeGreaterThan(1);
    expect(Math.max(...seen)).toBeLessThanOrEqual(MAX_COMPACTIONS_PER_COMMIT);
    const closedDeltas = [...store.items.values()].filter(
      (r) => r.g === "m" && r.kind === "d" && r.ws < start + 5 * MIN,
    );
    expect(closedDeltas).toEqual([]);
  });
});

import { describe, expect, it } from "vitest";
import type { PartialKey, StoreChange } from "../../lib/adapters/window-store.ts";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, COMPACT_AFTER, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import { readStats } from "../../lib/pipeline/stats-service.ts";
import { MINUTE_MS } from "../../lib/stream/fold.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * A compaction deletes the deltas it absorbed after its transaction, by plain deletes (half the
 * write units of a transactional delete): readers drop absorbed deltas by the compacted partial's
 * offset, so a crash between the commit and the deletes changes no number, and the window's next
 * compaction deletes what it left.
 */
const MINUTE = Date.UTC(2026, 10, 24, 12, 0);
let seq = 0;
const ev = (timestamp: number): AcceptedEvent => ({
  event_id: `cd-${seq++}`,
  user_id: `u${seq % 5}`,
  event_type: "page_view",
  timestamp,
  received_at: timestamp,
});

/** A store that records every transaction and every discard, and can fail the next discards. */
class RecordingStore extends MemoryWindowStore {
  readonly changes: StoreChange[] = [];
  readonly discarded: PartialKey[][] = [];
  failDiscards = 0;
  override async apply(change: StoreChange): Promise<void> {
    await super.apply(change);
    this.changes.push(change);
  }
  override async discard(deltas: readonly PartialKey[]): Promise<void> {
    if (deltas.length > 0 && this.failDiscards > 0) {
      this.failDiscards--;
      throw new Error("crash");
    }
    await super.discard(deltas);
    this.discarded.push([...deltas]);
  }
}

function setup() {
  const store = new RecordingStore(1);
  const recent = new RecentEventIds();
  let offset = 0;
  let sent = 0;
  let last: { partition: number; offset: number; event: AcceptedEvent }[] = [];
  /** One batch of one event in 12:00 (or a redelivery of the last), processed with the window open. */
  const send = async (redeliver = false) => {
    if (!redeliver) last = [{ partition: 0, offset: offset++, event: ev(MINUTE + 1_000 + sent++) }];
    await aggregateBatch("events.raw", last, {
      store,
      rules: BUILT_IN_RULES,
      recent,
      publishLate: async () => {},
      now: () => MINUTE + 2_000,
    });
  };
  const count = async () => {
    const stats = (await readStats(
      store,
      BUILT_IN_RULES,
      { kind: "rule", rule_id: "events_by_type", from: MINUTE, to: MINUTE + MINUTE_MS },
      MINUTE + 2_000,
    )) as { count: number };
    return stats.count;
  };
  const items = () => [...store.items.values()].filter((r) => r.rule === "events_by_type" && r.g === "m");
  return { store, send, count, items, sentCount: () => sent };
}

describe("absorbed deltas are deleted after the compaction's transaction", () => {
  it("no transaction deletes a delta; every absorbed delta is discarded, once", async () => {
    const { store, send, count, items } = setup();
    for (let i = 0; i < 3 * COMPACT_AFTER.m; i++) await send();
    const compactions = store.changes.filter((c) => c.puts.some((p) => p.kind === "c"));
    expect(compactions.length).toBeGreaterThan(0);
    for (const change of store.changes)
      expect(change.deletes.filter((d) => d.sk.includes("#d#"))).toEqual([]);
    const discarded = store.discarded.flat();
    expect(discarded.length).toBeGreaterThanOrEqual(COMPACT_AFTER.m);
    expect(new Set(discarded.map((d) => `${d.pk}|${d.sk}`)).size).toBe(discarded.length);
    for (const d of discarded) expect(d.bytes).toBeGreaterThan(0);
    // What is left of the window: its compacted partial and the deltas since.
    const [compacted] = items().filter((r) => r.kind === "c");
    if (!compacted) throw new Error("not compacted");
    expect(items().filter((r) => r.kind === "d" && r.offset <= compacted.offset)).toEqual([]);
    expect(await count()).toBe(3 * COMPACT_AFTER.m);
  });

  it("a crash between the commit and the deletes changes no number, and the next compaction deletes what it left", async () => {
    const { store, send, count, items, sentCount } = setup();
    store.failDiscards = 1;
    let crashed = false;
    for (let i = 0; i < COMPACT_AFTER.m + 2 && !crashed; i++)
      await send().catch((error: Error) => {
        expect(error.message).toBe("crash");
        crashed = true;
      });
    expect(crashed).toBe(true);
    const leftovers = () => {
      const compacted = items().find((r) => r.kind === "c");
      return items().filter((r) => r.kind === "d" && compacted !== undefined && r.offset <= compacted.offset);
    };
    // Committed, not deleted: readers drop them by the compacted partial's offset.
    const left = leftovers();
    expect(left.length).toBeGreaterThan(0);
    expect(await count()).toBe(sentCount());
    // The mapping redelivers the failed batch: it is at or below the fence, so nothing changes.
    expect((await store.getFence("events.raw", 0)).lastOffset).toBe(sentCount() - 1);
    await send(true);
    expect(await count()).toBe(sentCount());
    // The window fills again: its next compaction deletes the leftovers with its own deltas.
    for (let i = 0; i < COMPACT_AFTER.m + 2; i++) await send();
    const discarded = new Set(store.discarded.flat().map((d) => d.sk));
    for (const r of left) expect(discarded.has(r.sk)).toBe(true);
    expect(leftovers()).toEqual([]);
    expect(await count()).toBe(sentCount());
  });
});

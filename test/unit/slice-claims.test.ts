import { describe, expect, it } from "vitest";
import type { FenceChange } from "../../lib/adapters/window-store.ts";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, PendingSliceError, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import { MINUTE_MS, type SourcedEvent } from "../../lib/stream/fold.ts";
import type { PartialRecord } from "../../lib/stream/partial-items.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { eventsByTypeCount } from "./support/events-by-type.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * A slice is committed without a transaction: the fence claims it (a conditional put), its deltas
 * are put, and the fence confirms it. An invocation that dies in between leaves a claim that the
 * next one completes from the same records, so every number stays exact.
 */
const T = Date.UTC(2026, 10, 24, 12, 0, 30);
const ev = (id: string, timestamp = T, user = "u1"): AcceptedEvent => ({
  event_id: id,
  user_id: user,
  event_type: "click",
  timestamp,
  received_at: timestamp,
});
const records = (events: AcceptedEvent[], from = 0): SourcedEvent[] =>
  events.map((event, i) => ({ partition: 0, offset: from + i, event }));

/** Dies at the n-th write (claim, deltas, confirmation, compaction), counted from arming. */
class DyingStore extends MemoryWindowStore {
  writes: string[] = [];
  dieAt = Number.POSITIVE_INFINITY;
  #die(what: string) {
    this.writes.push(what);
    if (this.writes.length > this.dieAt) throw new Error("crash");
  }
  override async putFence(change: FenceChange) {
    this.#die(change.fence.pending ? "claim" : "confirm");
    await super.putFence(change);
  }
  override async putDeltas(puts: readonly PartialRecord[]) {
    this.#die("deltas");
    await super.putDeltas(puts);
  }
}

const setup = () => {
  const store = new DyingStore(1);
  const run = (batch: SourcedEvent[], recent = new RecentEventIds()) =>
    aggregateBatch("events.raw", batch, {
      store,
      rules: BUILT_IN_RULES,
      recent,
      publishLate: async () => {},
      now: () => T,
    });
  const count = () => eventsByTypeCount(store, T);
  return { store, run, count };
};

describe("slices claimed, then written, then confirmed", () => {
  it("writes a slice in three plain writes and no transaction: claim, deltas, confirmation", async () => {
    const { store, run, count } = setup();
    await run(records([ev("a"), ev("b")]));
    expect(store.writes).toEqual(["claim", "deltas", "confirm"]);
    expect(store.applies).toBe(3);
    expect(await count()).toBe(2);
    const fence = await store.getFence("events.raw", 0);
    expect(fence.pending).toBeUndefined();
    expect(fence.lastOffset).toBe(1);
  });

  it("a claimant that died before its deltas: a retry in a new environment writes them, deciding resends as the claimant did", async () => {
    const { store, run, count } = setup();
    const claimant = new RecentEventIds();
    await run(records([ev("a")]), claimant);
    // The claimant saw "a" at offset 0; offset 2 resends it. It dies after its claim.
    const batch = records([ev("b"), ev("a"), ev("c")], 1);
    store.dieAt = store.writes.length + 1;
    await expect(run(batch, claimant)).rejects.toThrow("crash");
    const claimed = await store.getFence("events.raw", 0);
    expect(claimed.pending).toMatchObject({ first: 1, records: 3, duplicates: [2] });
    expect(await count()).toBe(1);
    // The retry runs in a new environment, whose cache never saw "a": the claim decides.
    store.dieAt = Number.POSITIVE_INFINITY;
    const outcome = await run(batch, new RecentEventIds());
    expect(outcome.rewrites).toBe(1);
    expect(await count()).toBe(3);
    expect((await store.getFence("events.raw", 0)).pending).toBeUndefined();
  });

  it("a retry that carries part of a claimed slice changes nothing and fails; a full one completes it", async () => {
    const { store, run, count } = setup();
    const batch = records([ev("a"), ev("b"), ev("c")]);
    store.dieAt = 1; // dies at its deltas
    await expect(run(batch)).rejects.toThrow("crash");
    store.dieAt = Number.POSITIVE_INFINITY;
    const before = store.writes.length;
    await expect(run(batch.slice(0, 2))).rejects.toThrow(PendingSliceError);
    expect(store.writes.length).toBe(before);
    expect(await count()).toBe(0);
    await run(batch);
    expect(await count()).toBe(3);
  });

  it("a slice written but not confirmed is written again with the same keys and groups: nothing counts twice", async () => {
    const { store, run, count } = setup();
    const batch = records([ev("a"), ev("b", T + 1), ev("c", T + 2, "u2")]);
    store.dieAt = 2; // dies at its confirmation
    await expect(run(batch)).rejects.toThrow("crash");
    const written = new Map(store.items);
    expect(await count()).toBe(3);
    store.dieAt = Number.POSITIVE_INFINITY;
    await run(batch);
    expect(await count()).toBe(3);
    expect([...store.items.keys()].sort()).toEqual([...written.keys()].sort());
    for (const [key, item] of store.items) expect(item.b).toEqual(written.get(key)?.b);
  });

  it("readers see a window closed only once the slice that closes it is confirmed", async () => {
    const { store, run } = setup();
    // An event ten minutes on moves the watermark past 12:00: the slice that carries it closes
    // 12:00, and also holds a delta of 12:00 itself.
    const batch = records([ev("a"), ev("b", T + 10 * MINUTE_MS)]);
    store.dieAt = 1; // the claim lands, its deltas do not
    await expect(run(batch)).rejects.toThrow("crash");
    const snapshot = await store.fenceSnapshot("events.raw", 1);
    expect(snapshot.closedBefore).toBe(Number.NEGATIVE_INFINITY);
    store.dieAt = Number.POSITIVE_INFINITY;
    await run(batch);
    expect((await store.fenceSnapshot("events.raw", 1)).closedBefore).toBeGreaterThan(T + 30_000);
  });

  it("a claim whose batch was dead-lettered (the next batch starts above it) is confirmed with a warning, and the stream goes on", async () => {
    const { store, count } = setup();
    const warnings: string[] = [];
    const run = (batch: SourcedEvent[]) =>
      aggregateBatch("events.raw", batch, {
        store,
        rules: BUILT_IN_RULES,
        recent: new RecentEventIds(),
        publishLate: async () => {},
        now: () => T,
        warn: (message) => warnings.push(message),
      });
    store.dieAt = 1; // the claim lands, its deltas do not; every retry fails the same way
    await expect(run(records([ev("a"), ev("b")]))).rejects.toThrow("crash");
    store.dieAt = Number.POSITIVE_INFINITY;
    await run(records([ev("c")], 2));
    expect(warnings).toEqual(["a claimed slice was dead-lettered: some of its deltas may be written"]);
    const fence = await store.getFence("events.raw", 0);
    expect(fence.pending).toBeUndefined();
    expect(fence.lastOffset).toBe(2);
    expect(await count()).toBe(1); // the dead-lettered batch is not counted
  });
});

import { describe, expect, it } from "vitest";
import { FenceConflictError } from "../../lib/adapters/window-store.ts";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, OpenDeltas, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import type { SourcedEvent } from "../../lib/stream/fold.ts";
import { encodeGroup, type Groups, unpackGroups } from "../../lib/stream/partial.ts";
import { decodeGroups, type PartialRecord, recordsUnpacked } from "../../lib/stream/partial-items.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { eventsByTypeCount } from "./support/events-by-type.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * A partition's small deltas grow in place: a slice extends the delta its environment wrote last
 * for the window, by a put conditioned on the offset the delta holds groups through (`t`). The
 * races below are those a real network allows and the reference-model property does not stage
 * (there a dead invocation's writes land before its retry starts): a write held on its way lands
 * after later slices, and must not undo them.
 */
const T = Date.UTC(2026, 10, 24, 12, 0, 30);
const ev = (id: string): AcceptedEvent => ({
  event_id: id,
  user_id: `u-${id}`,
  event_type: "click",
  timestamp: T,
  received_at: T,
});
/** Records `from`..`from + n - 1` of partition 0, one event each. */
const slice = (from: number, n: number): SourcedEvent[] =>
  Array.from({ length: n }, (_, i) => ({ partition: 0, offset: from + i, event: ev(`e${from + i}`) }));

type Held = "putDeltas" | "extendDelta" | "putDeltasIfAbsent";

/**
 * A memory store whose next call of a chosen write that carries an events_by_type item waits until
 * released: a request on its way.
 */
class HoldingStore extends MemoryWindowStore {
  readonly #held = new Map<Held, Promise<void>>();
  /** Holds the next call of `write`; the returned function lets it go on. */
  hold(write: Held): () => void {
    let release = () => {};
    this.#held.set(
      write,
      new Promise<void>((r) => {
        release = r;
      }),
    );
    return release;
  }
  async #wait(write: Held, puts: readonly PartialRecord[]): Promise<void> {
    if (!puts.some(isTypeItem)) return;
    const gate = this.#held.get(write);
    this.#held.delete(write);
    await gate;
  }
  override async putDeltas(puts: readonly PartialRecord[]) {
    await this.#wait("putDeltas", puts);
    await super.putDeltas(puts);
  }
  override async extendDelta(
    put: PartialRecord,
    previous: { readonly through: number; readonly bytes: number },
  ) {
    await this.#wait("extendDelta", [put]);
    await super.extendDelta(put, previous);
  }
  override async putDeltasIfAbsent(puts: readonly PartialRecord[]) {
    await this.#wait("putDeltasIfAbsent", puts);
    await super.putDeltasIfAbsent(puts);
  }
  /** The events_by_type delta items of partition 0. */
  typeDeltas(): PartialRecord[] {
    return [...this.items.values()].filter((r) => isTypeItem(r) && r.kind === "d");
  }
}
const isTypeItem = (r: PartialRecord) => r.rule.startsWith("events_by_type") && r.g === "m";

const setup = () => {
  const store = new HoldingStore(1);
  /** One execution environment: its own recent-id cache and open deltas. */
  const environment = () => {
    const recent = new RecentEventIds();
    const openDeltas = new OpenDeltas();
    return (batch: SourcedEvent[]) =>
      aggregateBatch("events.raw", batch, {
        store,
        rules: BUILT_IN_RULES,
        recent,
        openDeltas,
        publishLate: async () => {},
        now: () => T,
      });
  };
  const count = () => eventsByTypeCount(store, T);
  /** Lets queued microtasks and timers run (a held call reaches its gate). */
  const settle = () => new Promise((r) => setTimeout(r, 5));
  return { store, environment, count, settle };
};

describe("small deltas grow in place", () => {
  it("ten slices of a partition into one window leave one delta of events_by_type, not ten", async () => {
    const { store, environment, count } = setup();
    const run = environment();
    let extensions = 0;
    for (let i = 0; i < 10; i++) extensions += (await run(slice(i * 5, 5))).extensions;
    expect(await count()).toBe(50);
    const deltas = store.typeDeltas();
    expect(deltas).toHaveLength(1);
    expect(deltas[0]).toMatchObject({ offset: 0, t: 49, n: 50 });
    // Every rule's small delta of the window grows: unique_users' sketch and the per-user rule's
    // five users a slice fit 1 KB too.
    expect(extensions).toBeGreaterThanOrEqual(9);

    // An environment without them (or a new one) writes a delta per slice.
    const plain = setup();
    const once = (batch: SourcedEvent[]) =>
      aggregateBatch("events.raw", batch, {
        store: plain.store,
        rules: BUILT_IN_RULES,
        recent: new RecentEventIds(),
        publishLate: async () => {},
        now: () => T,
      });
    for (let i = 0; i < 10; i++) await once(slice(i * 5, 5));
    expect(await plain.count()).toBe(50);
    expect(plain.store.typeDeltas()).toHaveLength(10);
  });

  it("a slice extends its open delta without inflating and parsing it again", async () => {
    const { store, environment, count } = setup();
    const run = environment();
    // Users repeat across slices, as they do under load: the per-user rule's groups grow and merge.
    const users = (from: number, n: number): SourcedEvent[] =>
      slice(from, n).map((r) => ({
        ...r,
        event: { ...r.event, user_id: `u-${r.offset % 7}`, properties: { amount: r.offset } },
      }));
    await run(users(0, 5));
    const before = recordsUnpacked();
    let extensions = 0;
    for (let i = 1; i < 10; i++) extensions += (await run(users(i * 5, 5))).extensions;
    // Before: each extension decoded the delta the previous slice had just encoded (27 here).
    expect(extensions).toBeGreaterThanOrEqual(9);
    expect(recordsUnpacked() - before).toBe(0);
    expect(await count()).toBe(50);
    // What the memo holds for each stored delta is what its bytes decode to.
    const canonical = (groups: Groups) => [...groups].map(([key, p]) => encodeGroup(key, p)).sort();
    const deltas = [...store.items.values()].filter((r) => r.kind === "d");
    expect(deltas.length).toBeGreaterThanOrEqual(3);
    for (const r of deltas) expect(canonical(decodeGroups(r))).toEqual(canonical(unpackGroups(r.b)));
  });

  it("a rewriter's extension held on its way cannot undo the slices its claimant wrote since", async () => {
    const { store, environment, count, settle } = setup();
    const first = environment();
    await first(slice(0, 10));
    // The first environment claims 10..19 and extends its delta; that put is held.
    const releaseClaimant = store.hold("extendDelta");
    const claimant = first(slice(10, 10));
    await settle();
    // Another environment finds the claim unconfirmed and extends the delta itself; held too.
    const releaseRewriter = store.hold("extendDelta");
    const rewriter = environment()(slice(10, 10));
    await settle();
    // The claimant's extension lands; it confirms and goes on with 20..29.
    releaseClaimant();
    await claimant;
    await first(slice(20, 10));
    expect(await count()).toBe(30);
    // The rewriter's extension (0..19) lands last: refused, as the delta holds groups through 29.
    releaseRewriter();
    await expect(rewriter).rejects.toThrow(FenceConflictError);
    expect(await count()).toBe(30);
    expect(store.typeDeltas()).toMatchObject([{ offset: 0, t: 29, n: 30 }]);
  });

  it("a rewriter's new delta held on its way cannot undo its claimant's later extension of it", async () => {
    const { store, environment, count, settle } = setup();
    const first = environment();
    // The first environment claims 0..9; its delta put is held.
    const releaseClaimant = store.hold("putDeltas");
    const claimant = first(slice(0, 10));
    await settle();
    // Another environment finds the claim unconfirmed and the delta missing: it puts it; held too.
    const releaseRewriter = store.hold("putDeltasIfAbsent");
    const rewriter = environment()(slice(0, 10));
    await settle();
    // The claimant's put lands; it confirms and extends the delta with 10..19.
    releaseClaimant();
    await claimant;
    await first(slice(10, 10));
    expect(await count()).toBe(20);
    // The rewriter's put of the delta as it was (0..9) lands last: the key is taken, so it does
    // not; the rewriter's confirmation then finds the fence moved.
    releaseRewriter();
    await expect(rewriter).rejects.toThrow(FenceConflictError);
    expect(await count()).toBe(20);
    expect(store.typeDeltas()).toMatchObject([{ offset: 0, t: 19, n: 20 }]);
  });

  it("a claimant that died after extending: a new environment finds the extension landed and adds nothing", async () => {
    const { store, environment, count } = setup();
    const first = environment();
    await first(slice(0, 10));
    // Dies at its confirmation, after the extension landed.
    const putFence = store.putFence.bind(store);
    let fences = 0;
    store.putFence = async (change) => {
      if (change.fence.pending === undefined && fences++ === 0) throw new Error("crash");
      await putFence(change);
    };
    await expect(first(slice(10, 10))).rejects.toThrow("crash");
    expect(await count()).toBe(20);
    const outcome = await environment()(slice(10, 15));
    expect(outcome).toMatchObject({ rewrites: 1, extensionsRewritten: 0 });
    expect(await count()).toBe(25);
  });
});

import {
  addUnrolledHours,
  type Fence,
  type FenceChange,
  FenceConflictError,
  type FenceSnapshot,
  INITIAL_FENCE,
  lowestClosedBefore,
  type PartialKey,
  readPlan,
  type StoreChange,
  type WindowStore,
} from "../../../lib/adapters/window-store.ts";
import type { Granularity } from "../../../lib/stream/fold.ts";
import { type PartialRecord, recordBytes } from "../../../lib/stream/partial-items.ts";

/**
 * A WindowStore with DynamoDB's transaction semantics, in memory (the integration tests use
 * DynamoDB Local): a change applies whole or not at all, conditioned on the fence. `crashAt`
 * makes the n-th write (apply or discard) throw before writing, like a Lambda dying mid-batch.
 */
export class MemoryWindowStore implements WindowStore {
  readonly items = new Map<string, PartialRecord>();
  readonly fences = new Map<string, Fence>();
  applies = 0;
  crashAt = Number.POSITIVE_INFINITY;
  consumedWriteUnits = 0;
  constructor(readonly partitions = 3) {}

  async getFence(topic: string, partition: number): Promise<Fence> {
    return this.fences.get(`${topic}/${partition}`) ?? INITIAL_FENCE;
  }

  async apply(change: StoreChange): Promise<void> {
    this.#write();
    const key = `${change.topic}/${change.partition}`;
    this.#checkFence(change);
    for (const d of change.deletes) this.items.delete(`${d.pk}|${d.sk}`);
    for (const r of change.puts) {
      this.items.set(`${r.pk}|${r.sk}`, r);
      this.consumedWriteUnits += 2 * Math.ceil(recordBytes(r) / 1024);
    }
    this.fences.set(key, change.fence);
  }

  /** A conditional put of the fence alone. */
  async putFence(change: FenceChange): Promise<void> {
    this.#write();
    this.#checkFence(change);
    this.fences.set(`${change.topic}/${change.partition}`, change.fence);
    this.consumedWriteUnits += 1;
  }

  /** Plain puts of deltas (no condition, no transaction). */
  async putDeltas(puts: readonly PartialRecord[]): Promise<void> {
    this.#write();
    for (const r of puts) {
      if (!r.sk.includes("#d#")) throw new RangeError(`putDeltas takes deltas only, not ${r.sk}`);
      this.items.set(`${r.pk}|${r.sk}`, r);
      this.consumedWriteUnits += Math.ceil(recordBytes(r) / 1024);
    }
  }

  async missingDeltas(puts: readonly PartialRecord[]): Promise<PartialRecord[]> {
    return puts.filter((r) => !this.items.has(`${r.pk}|${r.sk}`));
  }

  /** Puts each delta whose key is free (a conditional put each). */
  async putDeltasIfAbsent(puts: readonly PartialRecord[]): Promise<void> {
    this.#write();
    for (const r of puts) {
      if (!r.sk.includes("#d#")) throw new RangeError(`putDeltasIfAbsent takes deltas only, not ${r.sk}`);
      this.consumedWriteUnits += Math.ceil(recordBytes(r) / 1024);
      if (!this.items.has(`${r.pk}|${r.sk}`)) this.items.set(`${r.pk}|${r.sk}`, r);
    }
  }

  /** A put over a delta, conditioned on the groups it holds (its `t`). */
  async extendDelta(put: PartialRecord, previous: { readonly through: number }): Promise<void> {
    this.#write();
    const stored = this.items.get(`${put.pk}|${put.sk}`);
    if (stored?.t !== previous.through) throw new FenceConflictError(`delta ${put.sk} moved`);
    this.items.set(`${put.pk}|${put.sk}`, put);
    this.consumedWriteUnits += Math.ceil(recordBytes(put) / 1024);
  }

  async getDelta(key: PartialKey): Promise<PartialRecord | undefined> {
    return this.items.get(`${key.pk}|${key.sk}`);
  }

  /** Counts a write, or dies at it (`crashAt`), before it changes anything. */
  #write(): void {
    if (this.applies >= this.crashAt) throw new Error("crash");
    this.applies++;
  }

  #checkFence(change: FenceChange): void {
    const stored = this.fences.get(`${change.topic}/${change.partition}`);
    if (change.expected.stored ? stored?.lastOffset !== change.expected.lastOffset : stored !== undefined)
      throw new FenceConflictError("the fence moved");
  }

  /** Plain deletes (no condition, no transaction): like `apply`, the crash point counts them. */
  async discard(deltas: readonly PartialKey[]): Promise<void> {
    this.#write();
    for (const d of deltas) {
      if (!d.sk.includes("#d#")) throw new RangeError(`discard takes deltas only, not ${d.sk}`);
      this.items.delete(`${d.pk}|${d.sk}`);
    }
  }

  async fenceSnapshot(topic: string, partitions: number): Promise<FenceSnapshot> {
    const byPartition = new Map<number, number>();
    const unrolledHours = new Map<string, Set<number>>();
    for (const [key, fence] of this.fences) {
      const [t, p] = key.split("/");
      if (t !== topic) continue;
      byPartition.set(Number(p), fence.closedBefore);
      addUnrolledHours(fence.dirty.keys(), unrolledHours);
    }
    return { closedBefore: lowestClosedBefore(byPartition, partitions), unrolledHours };
  }

  /** What DynamoDB's Queries of the plan return: items of the key within the sort-key range. */
  async read(ruleKey: string, granularity: Granularity, windowStarts: readonly number[], partition?: number) {
    const queries = readPlan(ruleKey, granularity, windowStarts, partition);
    const starts = new Set(windowStarts);
    return [...this.items.values()].filter(
      (r) => starts.has(r.ws) && queries.some((q) => r.pk === q.pk && r.sk >= q.lo && r.sk <= q.hi),
    );
  }
}

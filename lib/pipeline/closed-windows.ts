import type { FenceSnapshot } from "../adapters/window-store.ts";
import type { Granularity } from "../stream/fold.ts";
import type { Groups } from "../stream/partial.ts";

export interface ClosedWindowCacheOptions {
  /** Groups held at most, over every window (least recently used go first). @default 200_000 */
  readonly maxGroups?: number;
  /** How long a `closedBefore` answer is reused. @default 1_000 ms */
  readonly refreshMs?: number;
  /**
   * How old a `closedBefore` answer must be before it is used. A fence's `closedBefore` moves only
   * once its slice's deltas are written (the slice's confirmation), but a compaction's transaction
   * also rewrites windows, and a Query is read-committed per item, not isolated from a
   * transaction. Waiting a second is a margin for such writes in flight. @default 1_000 ms
   */
  readonly settleMs?: number;
  /**
   * How long a refresh may stay pending before a request reads again without it (see
   * `snapshot`). @default 10_000 ms
   */
  readonly abandonMs?: number;
  readonly now?: () => number;
}

/**
 * Merged windows that can no longer change, kept by an execution environment of GET /stats.
 *
 * An event-time window is closed for good once every source partition's watermark passed its
 * end (`Fence.closedBefore`): its events are late from then on and change no window, and a
 * compaction only rewrites the same figures in fewer items. A poll of the last hour then reads
 * only the few windows still open, where it read every window of the hour (in a busy hour, 360
 * compacted items and the open windows' deltas; a dashboard polling every second paid that in
 * read units each time).
 *
 * `closedBefore` is the lowest of the partitions' fences and only ever grows, so an answer a
 * second old is still a safe one: it leaves a window or two uncached, never caches an open one.
 * An answer is used only once it is `settleMs` old (see there).
 * Arrival-time rules (`late_events`) are never cached: their windows follow processing.
 */
export class ClosedWindowCache {
  readonly #windows = new Map<string, Groups>();
  #groups = 0;
  #closedBefore = Number.NEGATIVE_INFINITY;
  /** The newest settled answer (its own closedBefore and unrolled hours, from the same fences). */
  #settled: FenceSnapshot | undefined;
  #checkedAt = Number.NEGATIVE_INFINITY;
  #pending: Promise<void> | undefined;
  #pendingSince = Number.NEGATIVE_INFINITY;
  #generation = 0;
  readonly #abandonMs: number;
  /** Answers read and not yet settled, oldest first. */
  readonly #observed: { readonly value: FenceSnapshot; readonly at: number }[] = [];
  readonly #maxGroups: number;
  readonly #refreshMs: number;
  readonly #settleMs: number;
  readonly #now: () => number;

  constructor(
    private readonly source: () => Promise<FenceSnapshot>,
    options: ClosedWindowCacheOptions = {},
  ) {
    this.#maxGroups = options.maxGroups ?? 200_000;
    this.#refreshMs = options.refreshMs ?? 1_000;
    this.#settleMs = options.settleMs ?? 1_000;
    this.#abandonMs = options.abandonMs ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * The instant before which every event-time window is closed: the highest answer that is at
   * least `settleMs` old (answers are read at most every `refreshMs`).
   */
  async closedBefore(): Promise<number> {
    await this.snapshot();
    return this.#closedBefore;
  }

  /**
   * The newest answer at least `settleMs` old, its `closedBefore` raised to the highest settled
   * one; undefined before any answer settled (a reader then knows nothing of the fences).
   *
   * A due refresh is read in the background: an answer read now is used only `settleMs` later,
   * so a request that waited for it would get the answer it has already, one round trip later.
   * (It did: the GET /stats that fell due waited for the fences' Query before its own reads,
   * one request in seven to one in four under the bench's polling: its p95.) Only with
   * `settleMs` 0 is the new answer of use at once, and then it is awaited. A refresh still
   * pending after `abandonMs` is given up for a new one: in Lambda a request in flight when the
   * handler returned is frozen with the environment and may never complete.
   */
  async snapshot(): Promise<FenceSnapshot | undefined> {
    if (this.#now() - this.#checkedAt >= this.#refreshMs) {
      if (this.#pending && this.#now() - this.#pendingSince >= this.#abandonMs) this.#pending = undefined;
      if (!this.#pending) {
        // Concurrent requests share one read.
        const generation = ++this.#generation;
        this.#pendingSince = this.#now();
        this.#pending = this.source()
          .then((value) => {
            if (generation !== this.#generation) return; // abandoned: a newer read is in flight
            const at = this.#now();
            if (at - this.#checkedAt >= this.#refreshMs) {
              this.#observed.push({ value, at });
              this.#checkedAt = at;
            }
          })
          .finally(() => {
            if (generation === this.#generation) this.#pending = undefined;
          });
        // Readers go on with the settled answer; the next request after refreshMs reads again.
        if (this.#settleMs > 0) this.#pending.catch(() => {});
      }
      if (this.#settleMs <= 0) await this.#pending;
    }
    const now = this.#now();
    for (
      let first = this.#observed[0];
      first && now - first.at >= this.#settleMs;
      first = this.#observed[0]
    ) {
      this.#closedBefore = Math.max(this.#closedBefore, first.value.closedBefore);
      this.#settled = first.value;
      this.#observed.shift();
    }
    return this.#settled && { ...this.#settled, closedBefore: this.#closedBefore };
  }

  /** Waits for the refresh in flight, if any (for figures and tests: requests never wait for it). */
  async refreshed(): Promise<void> {
    await this.#pending?.catch(() => {});
  }

  /** The fences as they are now (not settled): for readers that need them before any settled. */
  read(): Promise<FenceSnapshot> {
    return this.source();
  }

  get(ruleKey: string, granularity: Granularity, windowStart: number): Groups | undefined {
    const key = `${ruleKey}|${granularity}|${windowStart}`;
    const hit = this.#windows.get(key);
    if (hit) {
      this.#windows.delete(key);
      this.#windows.set(key, hit);
    }
    return hit;
  }

  /** Keeps a closed window's merged groups (every group: later reads may want others). */
  set(ruleKey: string, granularity: Granularity, windowStart: number, groups: Groups): void {
    const key = `${ruleKey}|${granularity}|${windowStart}`;
    const old = this.#windows.get(key);
    if (old) this.#groups -= Math.max(1, old.size);
    this.#windows.set(key, groups);
    this.#groups += Math.max(1, groups.size);
    while (this.#groups > this.#maxGroups && this.#windows.size > 1) {
      const [oldest, value] = this.#windows.entries().next().value as [string, Groups];
      this.#windows.delete(oldest);
      this.#groups -= Math.max(1, value.size);
    }
  }

  /** Windows held (for tests and figures). */
  get size(): number {
    return this.#windows.size;
  }
}

import type { Granularity } from "../stream/fold.ts";
import type { Groups } from "../stream/partial.ts";

export interface ClosedWindowCacheOptions {
  /** Groups held at most, over every window (least recently used go first). @default 200_000 */
  readonly maxGroups?: number;
  /** How long a `closedBefore` answer is reused. @default 1_000 ms */
  readonly refreshMs?: number;
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
 * Arrival-time rules (`late_events`) are never cached: their windows follow processing.
 */
export class ClosedWindowCache {
  readonly #windows = new Map<string, Groups>();
  #groups = 0;
  #closedBefore = Number.NEGATIVE_INFINITY;
  #checkedAt = Number.NEGATIVE_INFINITY;
  #pending: Promise<number> | undefined;
  readonly #maxGroups: number;
  readonly #refreshMs: number;
  readonly #now: () => number;

  constructor(
    private readonly source: () => Promise<number>,
    options: ClosedWindowCacheOptions = {},
  ) {
    this.#maxGroups = options.maxGroups ?? 200_000;
    this.#refreshMs = options.refreshMs ?? 1_000;
    this.#now = options.now ?? Date.now;
  }

  /** The instant before which every event-time window is closed (refreshed at most every `refreshMs`). */
  async closedBefore(): Promise<number> {
    if (this.#now() - this.#checkedAt < this.#refreshMs) return this.#closedBefore;
    // Concurrent requests share one read.
    this.#pending ??= this.source().finally(() => {
      this.#pending = undefined;
    });
    const value = await this.#pending;
    this.#closedBefore = Math.max(this.#closedBefore, value);
    this.#checkedAt = this.#now();
    return this.#closedBefore;
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

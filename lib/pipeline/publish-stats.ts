import { BoundedRequests } from "../adapters/kafka-batches.ts";
import type { WindowStore } from "../adapters/window-store.ts";
import { type Granularity, type WindowRef, windowKey } from "../stream/fold.ts";
import type { PackedGroups } from "../stream/partial.ts";
import { mergeRecordGroups, packedGroupsOf } from "../stream/partial-items.ts";
import { type StatsRecord, statsRecordsFor } from "./stats-messages.ts";

export interface ChangedWindow {
  readonly ref: WindowRef;
  readonly groups: Set<string>;
  /** the latest write among the changes (for the publish lag) */
  writtenAt: number;
}

/**
 * The groups each delta item held when this environment last published it (by key). A slice may
 * extend a delta in place (lib/pipeline/aggregate-batch.ts, `OpenDeltas`): the new image then
 * holds every group the window's delta gathered, and only those whose value differs from the last
 * image changed. An item not seen before (a new delta, or a cold start) changed in every group it
 * holds, which at worst republishes unchanged values. Images are remembered only once their
 * batch is published (`remember`): a batch that failed and is retried compares with the same
 * images again. Bounded by the groups held and their bytes (an evicted item counts as not seen).
 */
export class SeenDeltas {
  readonly #byKey = new Map<string, PackedGroups>();
  #groups = 0;
  #bytes = 0;
  /**
   * @param maxGroups groups held at most (a few tens of MB of short keys)
   * @param maxBytes their bytes (`PackedGroups.bytes`) at most: 200,000 groups of 2,000-character
   *   page URLs would be 400 MB, past the function's 512 MB
   */
  constructor(
    private readonly maxGroups = 200_000,
    private readonly maxBytes = 64 * 1024 * 1024,
  ) {}

  get(key: string): PackedGroups | undefined {
    return this.#byKey.get(key);
  }

  remember(images: ReadonlyMap<string, PackedGroups>): void {
    for (const [key, groups] of images) {
      const before = this.#byKey.get(key);
      if (before) {
        this.#byKey.delete(key);
        this.#groups -= before.size;
        this.#bytes -= before.bytes;
      }
      this.#byKey.set(key, groups);
      this.#groups += groups.size;
      this.#bytes += groups.bytes;
    }
    for (const [oldest, held] of this.#byKey) {
      if ((this.#groups <= this.maxGroups && this.#bytes <= this.maxBytes) || this.#byKey.size === 1) break;
      this.#byKey.delete(oldest);
      this.#groups -= held.size;
      this.#bytes -= held.bytes;
    }
  }
}

/**
 * The groups of `groups` whose value differs from `before` (all of them without it), compared by
 * their stored encodings: an extended per-user delta holds thousands of groups of which a slice
 * changed a few, and neither image is decoded to find them.
 */
function changedGroups(groups: PackedGroups, before: PackedGroups | undefined): Iterable<string> {
  if (!before) return groups.keys();
  const changed: string[] = [];
  for (const group of groups.keys()) if (!groups.sameGroup(group, before)) changed.push(group);
  return changed;
}

/**
 * The windows and groups that stream records of delta items changed. Compacted items (which
 * change no value), hourly roll-ups (not republished) and removals are ignored. With `seen`, a
 * delta's groups are compared with its previous image (an extended delta: the one before it in
 * these images, or the last one published); without, all its groups changed. `latest`: each
 * delta's last image here, for `SeenDeltas.remember` once published.
 */
export function changedWindowsOf(
  images: readonly (Record<string, unknown> | undefined)[],
  seen?: SeenDeltas,
): ChangedWindow[] & { latest: Map<string, PackedGroups> } {
  const out = new Map<string, ChangedWindow>();
  const latest = new Map<string, PackedGroups>();
  for (const image of images) {
    if (image?.kind !== "d" || image.g !== "m") continue;
    // Every delta the aggregator writes has these: one without is misread (e.g. binary attributes
    // still base64), and skipping it would silently publish nothing. Throwing retries the batch,
    // then sends it to the mapping's on-failure destination.
    if (
      typeof image.rule !== "string" ||
      !(image.b instanceof Uint8Array) ||
      typeof image.pk !== "string" ||
      typeof image.sk !== "string"
    ) {
      throw new TypeError(
        `stream image of delta ${String(image.pk)} ${String(image.sk)} lacks rule, key or packed groups (b: ${typeof image.b})`,
      );
    }
    const ref: WindowRef = {
      ruleKey: image.rule,
      granularity: image.g as Granularity,
      windowStart: Number(image.ws),
    };
    const key = windowKey(ref);
    let window = out.get(key);
    if (!window) {
      window = { ref, groups: new Set(), writtenAt: 0 };
      out.set(key, window);
    }
    // Memoized by key and content: the read that follows finds this very item unpacked.
    const groups = packedGroupsOf({ pk: image.pk, sk: image.sk, b: image.b });
    const itemKey = `${image.pk}|${image.sk}`;
    const before = seen ? (latest.get(itemKey) ?? seen.get(itemKey)) : undefined;
    for (const group of changedGroups(groups, before)) window.groups.add(group);
    latest.set(itemKey, groups);
    window.writtenAt = Math.max(window.writtenAt, Number(image.at ?? 0));
  }
  // A window none of whose groups changed (a stream record delivered again) publishes nothing.
  return Object.assign(
    [...out.values()].filter((w) => w.groups.size > 0),
    { latest },
  );
}

export interface PublishDeps {
  readonly store: WindowStore;
  readonly maxMessageBytes: number;
  /** One produce request (acks=all), awaited before the next is composed. */
  readonly send: (messages: StatsRecord[]) => Promise<void>;
  readonly now?: () => number;
}

/**
 * Reads each changed window (all partitions, strongly consistent) and publishes its changed groups.
 * The reads run together; each message's `updated_at` is taken right after its window's read, as
 * the value it carries is as of then. Messages are then composed window after window, and each
 * produce request is sent as soon as it is full, so the messages held are never more than one
 * request (`maxMessageBytes`). A stream batch of long group keys (500 delta chunks of
 * 2,000-character page URLs; each group's message holds its key three times) makes hundreds of MB
 * of messages: held all at once, they took the function past its memory.
 */
export async function publishChangedWindows(
  windows: readonly ChangedWindow[],
  deps: PublishDeps,
): Promise<number> {
  const now = deps.now ?? Date.now;
  const reads = await Promise.all(
    windows.map(async (w) => {
      const records = await deps.store.read(w.ref.ruleKey, w.ref.granularity, [w.ref.windowStart]);
      return { records, readAt: now() };
    }),
  );
  const requests = new BoundedRequests<StatsRecord>(deps.maxMessageBytes);
  let published = 0;
  for (const [i, w] of windows.entries()) {
    const { records, readAt } = reads[i] as (typeof reads)[number];
    const merged = mergeRecordGroups(records, w.ref.windowStart, w.groups);
    for (const m of statsRecordsFor(w.ref, merged, w.groups, w.writtenAt, readAt)) {
      published++;
      const full = requests.add(m);
      if (full) await deps.send(full);
    }
  }
  const last = requests.flush();
  if (last) await deps.send(last);
  return published;
}

import { chunkByBytes } from "../adapters/kafka-batches.ts";
import type { WindowStore } from "../adapters/window-store.ts";
import { type Granularity, type WindowRef, windowKey } from "../stream/fold.ts";
import { decodeGroups, mergeRecordGroups } from "../stream/partial-items.ts";
import { statsMessagesFor } from "./stats-messages.ts";

export interface ChangedWindow {
  readonly ref: WindowRef;
  readonly groups: Set<string>;
  /** the latest write among the changes (for the publish lag) */
  writtenAt: number;
}

/**
 * The windows and groups that stream records of delta items changed. Compacted items (which
 * change no value), hourly roll-ups (not republished) and removals are ignored.
 */
export function changedWindowsOf(images: readonly (Record<string, unknown> | undefined)[]): ChangedWindow[] {
  const out = new Map<string, ChangedWindow>();
  for (const image of images) {
    if (image?.kind !== "d" || image.g !== "m") continue;
    if (typeof image.rule !== "string" || !(image.b instanceof Uint8Array)) continue;
    if (typeof image.pk !== "string" || typeof image.sk !== "string") continue;
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
    // Memoized by key and content: the read that follows finds this very item decoded.
    for (const group of decodeGroups({ pk: image.pk, sk: image.sk, b: image.b }).keys())
      window.groups.add(group);
    window.writtenAt = Math.max(window.writtenAt, Number(image.at ?? 0));
  }
  return [...out.values()];
}

export interface PublishDeps {
  readonly store: WindowStore;
  readonly maxMessageBytes: number;
  readonly send: (messages: { key: string; value: string }[]) => Promise<void>;
  readonly now?: () => number;
}

/** Reads each changed window (all partitions, strongly consistent) and publishes its changed groups. */
export async function publishChangedWindows(
  windows: readonly ChangedWindow[],
  deps: PublishDeps,
): Promise<number> {
  const messages: { key: string; value: string }[] = [];
  await Promise.all(
    windows.map(async (w) => {
      const records = await deps.store.read(w.ref.ruleKey, w.ref.granularity, [w.ref.windowStart]);
      const merged = mergeRecordGroups(records, w.ref.windowStart, w.groups);
      for (const m of statsMessagesFor(w.ref, merged, w.groups, w.writtenAt, (deps.now ?? Date.now)()))
        messages.push({ key: m.window_id, value: JSON.stringify(m) });
    }),
  );
  for (const chunk of chunkByBytes(messages, deps.maxMessageBytes)) await deps.send(chunk);
  return messages.length;
}

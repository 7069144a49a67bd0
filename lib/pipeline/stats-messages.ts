import { GRANULARITY_MS, type Granularity } from "../stream/fold.ts";
import type { Groups } from "../stream/partial.ts";
import { figures, isOtherGroup } from "../stream/read.ts";

/**
 * The message on `analytics.stats` (docs/stats-topic.md): the merged value of one window of one
 * rule and group, as of `updated_at`. Keyed by `window_id`; later messages supersede earlier ones.
 */
export interface StatsMessage {
  schema: "tidemark.stats.v1";
  window_id: string;
  rule_id: string;
  group: string;
  granularity: Granularity;
  window_start: string;
  window_end: string;
  count: number;
  unique_users?: number;
  sum?: number;
  avg?: number;
  min?: number;
  max?: number;
  /** when the aggregate that triggered this message was written (publish lag = topic time − this) */
  written_at: string;
  updated_at: string;
}

/** The rule id of a storage key (`rule@v3` → `rule`). */
export const ruleIdOf = (ruleKey: string) => ruleKey.replace(/@v\d+$/, "");

export const windowId = (ruleKey: string, group: string, granularity: Granularity, windowStart: number) =>
  `${ruleKey}#${group}#${granularity}#${windowStart}`;

/** One message per changed group of one window, from the window's merged groups. */
export function statsMessagesFor(
  window: { ruleKey: string; granularity: Granularity; windowStart: number },
  merged: Groups,
  changedGroups: Iterable<string>,
  writtenAt: number,
  now: number,
): StatsMessage[] {
  const out: StatsMessage[] = [];
  for (const group of changedGroups) {
    if (isOtherGroup(group)) continue;
    const p = merged.get(group);
    if (!p) continue;
    const { values: _values, field_partial: _partial, ...f } = figures(p);
    out.push({
      schema: "tidemark.stats.v1",
      window_id: windowId(window.ruleKey, group, window.granularity, window.windowStart),
      rule_id: ruleIdOf(window.ruleKey),
      group,
      granularity: window.granularity,
      window_start: new Date(window.windowStart).toISOString(),
      window_end: new Date(window.windowStart + GRANULARITY_MS[window.granularity]).toISOString(),
      ...f,
      written_at: new Date(writtenAt).toISOString(),
      updated_at: new Date(now).toISOString(),
    });
  }
  return out;
}

/**
 * Splits messages into produce requests whose record batches stay under the topic's maximum
 * message size (a Kafka "message" limit applies to the whole record batch of a partition).
 * Overhead per record is bounded generously; a single message above the limit is an error the
 * caller must route to its dead-letter path, not retry forever.
 */
export function chunkByBytes<T extends { key: string; value: string }>(
  messages: readonly T[],
  maxBytes: number,
): T[][] {
  const PER_RECORD = 64;
  const BATCH_OVERHEAD = 128;
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = BATCH_OVERHEAD;
  for (const m of messages) {
    const size = Buffer.byteLength(m.key) + Buffer.byteLength(m.value) + PER_RECORD;
    if (size + BATCH_OVERHEAD > maxBytes) throw new MessageTooLargeError(m.key, size);
    if (bytes + size > maxBytes && current.length > 0) {
      out.push(current);
      current = [];
      bytes = BATCH_OVERHEAD;
    }
    current.push(m);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

export class MessageTooLargeError extends Error {
  override name = "MessageTooLargeError";
  constructor(
    readonly key: string,
    readonly bytes: number,
  ) {
    super(`message ${key} is ${bytes} bytes, above the topic's maximum`);
  }
}

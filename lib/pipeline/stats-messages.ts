import { GRANULARITY_MS, type Granularity } from "../stream/fold.ts";
import type { Groups } from "../stream/partial.ts";
import { type Figures, figures, isOtherGroup } from "../stream/read.ts";
import { groupText } from "../stream/rules.ts";

/**
 * The message on `analytics.stats` (docs/stats-topic.md): the merged value of one window of one
 * rule and group, as of `updated_at`. Keyed by `window_id`; per key, the greatest `updated_at`
 * holds the latest value. The figures are those of GET /stats (lib/stream/read.ts).
 */
export interface StatsMessage extends Omit<Figures, "values" | "field_partial"> {
  schema: "tidemark.stats.v1";
  window_id: string;
  rule_id: string;
  group: string;
  granularity: Granularity;
  window_start: string;
  window_end: string;
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
      // The value as sent (a key may carry an escape: lib/stream/rules.ts, `groupKey`).
      group: groupText(group),
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

/** A message of `analytics.stats` as produced: key `window_id`, value the message's JSON, both UTF-8. */
export interface StatsRecord {
  readonly key: Buffer;
  readonly value: Buffer;
}

/**
 * Characters `JSON.stringify` may write otherwise than as themselves: quote, backslash, control
 * characters (C0 and, needlessly but harmlessly, DEL and C1) and lone surrogates (ES2019).
 */
const NEEDS_ESCAPE = /["\\\p{Cc}\p{Cs}]/u;
/** `s` as JSON writes it between quotes. */
const escaped = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s).slice(1, -1) : s);

/**
 * The messages of `statsMessagesFor`, encoded for the topic (`JSON.stringify` of each message,
 * byte for byte), composed without building them: a group key may be a 2,000-character page URL,
 * and it is three times in its message (the key, `window_id` and `group`). Each key is escaped
 * for JSON once, where stringifying the message escaped it twice; what the window's messages share
 * (rule, window, times) is written once per window; the value is encoded to UTF-8 once, where the
 * producer measured a string twice and the request cutter once more. `window_id`'s parts are
 * joined by `#`, so no surrogate pair spans two of them and escaping them apart is escaping the
 * whole.
 */
export function* statsRecordsFor(
  window: { ruleKey: string; granularity: Granularity; windowStart: number },
  merged: Groups,
  changedGroups: Iterable<string>,
  writtenAt: number,
  now: number,
): Generator<StatsRecord> {
  const { ruleKey, granularity, windowStart } = window;
  const head = `{"schema":"tidemark.stats.v1","window_id":"${escaped(ruleKey)}#`;
  const middle = `#${granularity}#${windowStart}","rule_id":${JSON.stringify(ruleIdOf(ruleKey))},"group":`;
  const windowStartText = new Date(windowStart).toISOString();
  const windowEndText = new Date(windowStart + GRANULARITY_MS[granularity]).toISOString();
  const writtenAtText = new Date(writtenAt).toISOString();
  const updatedAtText = new Date(now).toISOString();
  for (const group of changedGroups) {
    if (isOtherGroup(group)) continue;
    const p = merged.get(group);
    if (!p) continue;
    const { values: _values, field_partial: _partial, ...f } = figures(p);
    const rest = JSON.stringify({
      granularity,
      window_start: windowStartText,
      window_end: windowEndText,
      ...f,
      written_at: writtenAtText,
      updated_at: updatedAtText,
    });
    const key = escaped(group);
    const text = groupText(group);
    const groupJson = text === group ? `"${key}"` : JSON.stringify(text);
    yield {
      key: Buffer.from(windowId(ruleKey, group, granularity, windowStart)),
      value: Buffer.from(`${head}${key}${middle}${groupJson},${rest.slice(1)}`),
    };
  }
}

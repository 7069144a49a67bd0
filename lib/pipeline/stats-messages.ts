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

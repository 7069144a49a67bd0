import type { WindowItem } from "../stream/fold.ts";
import { GRANULARITY_MS } from "../stream/fold.ts";
import { figures, isOtherGroup, mergeByWindowAndGroup } from "../stream/read.ts";

/**
 * The message on `analytics.stats` (docs/stats-topic.md): the merged value of one window of one
 * rule and group, as of `updated_at`. Keyed by `window_id`; later messages supersede earlier ones.
 */
export interface StatsMessage {
  schema: "tidemark.stats.v1";
  window_id: string;
  rule_id: string;
  group: string;
  granularity: string;
  window_start: string;
  window_end: string;
  count: number;
  unique_users?: number;
  sum?: number;
  avg?: number;
  min?: number;
  max?: number;
  updated_at: string;
}

/** One message per (window, group) of the given items; `groups` limits which groups (changed ones). */
export function statsMessagesFor(
  items: readonly WindowItem[],
  now: number,
  changedGroups?: ReadonlySet<string>,
): StatsMessage[] {
  const byPk = new Map<string, WindowItem[]>();
  for (const i of items) byPk.set(i.pk, [...(byPk.get(i.pk) ?? []), i]);
  const out: StatsMessage[] = [];
  for (const [pk, parts] of byPk) {
    const first = parts[0];
    if (!first) continue;
    const merged = mergeByWindowAndGroup(parts).get(first.windowStart) ?? new Map();
    for (const [group, m] of merged) {
      if (isOtherGroup(group)) continue;
      if (changedGroups && !changedGroups.has(`${pk}\u0000${group}`)) continue;
      out.push({
        schema: "tidemark.stats.v1",
        window_id: `${pk}#${group}`,
        rule_id: first.ruleId,
        group,
        granularity: first.granularity,
        window_start: new Date(first.windowStart).toISOString(),
        window_end: new Date(first.windowStart + GRANULARITY_MS[first.granularity]).toISOString(),
        ...figures(m),
        updated_at: new Date(now).toISOString(),
      });
    }
  }
  return out;
}

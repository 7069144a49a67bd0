import type { StoredPartial } from "../adapters/aggregate-store.ts";

/**
 * The message on `analytics.stats` (documented in docs/stats-topic.md): the merged value of one
 * window of one rule and group, as of `updated_at`. Keyed by `window_id`; later messages for the
 * same key supersede earlier ones.
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
  sum?: number;
  avg?: number;
  min?: number;
  max?: number;
  updated_at: string;
}

const WINDOW_MS: Record<string, number> = { m: 60_000, h: 3_600_000 };

export function statsMessagesFor(partials: readonly StoredPartial[], now: number): StatsMessage[] {
  const byWindow = new Map<string, StoredPartial[]>();
  for (const p of partials) {
    const list = byWindow.get(p.pk) ?? [];
    list.push(p);
    byWindow.set(p.pk, list);
  }
  const out: StatsMessage[] = [];
  for (const [pk, parts] of byWindow) {
    const first = parts[0];
    if (!first) continue;
    const granularity = String(first.attributes.granularity ?? "m");
    const start = Number(first.attributes.window_start);
    let count = 0;
    let sum: number | undefined;
    let min: number | undefined;
    let max: number | undefined;
    for (const p of parts) {
      count += p.value.count;
      if (p.value.sum !== undefined) sum = (sum ?? 0) + p.value.sum;
      if (p.value.min !== undefined) min = min === undefined ? p.value.min : Math.min(min, p.value.min);
      if (p.value.max !== undefined) max = max === undefined ? p.value.max : Math.max(max, p.value.max);
    }
    out.push({
      schema: "tidemark.stats.v1",
      window_id: pk,
      rule_id: String(first.attributes.rule_id ?? ""),
      group: String(first.attributes.group ?? ""),
      granularity,
      window_start: new Date(start).toISOString(),
      window_end: new Date(start + (WINDOW_MS[granularity] ?? 60_000)).toISOString(),
      count,
      ...(sum !== undefined ? { sum, avg: count > 0 ? sum / count : 0 } : {}),
      ...(min !== undefined ? { min } : {}),
      ...(max !== undefined ? { max } : {}),
      updated_at: new Date(now).toISOString(),
    });
  }
  return out;
}

import { type GroupPartial, type Groups, mergeGroups, OTHER_GROUP, statsMean, statsSum } from "./partial.ts";

/**
 * The read side: the merged partials of every source partition (and of several windows, for
 * larger tumbling or sliding windows) as figures. Counts, min, max and sums merge exactly (a sum
 * is rounded once, when read); unique counts merge their sketches (a union), so uniques over 5 minutes are not
 * the sum of five one-minute uniques.
 */

/** Every window's groups merged into one set of groups (e.g. the last 15 minutes). */
export function mergeWindows(perWindow: Iterable<Groups>): Groups {
  const out: Groups = new Map();
  for (const groups of perWindow) mergeGroups(out, groups);
  return out;
}

export interface Figures {
  count: number;
  unique_users?: number;
  sum?: number;
  /**
   * The sum rounds beyond ±MAX_VALUE (≈ ±1.8e308), which JSON cannot write (it would be `null`):
   * `sum` is left out; avg, min and max stand (avg's sign is the sum's).
   */
  sum_out_of_range?: true;
  avg?: number;
  min?: number;
  max?: number;
  /** events that carried the numeric field (the divisor of avg) */
  values?: number;
  /** the field's statistics may be partial: more numeric properties than a window tracks */
  field_partial?: true;
}

/**
 * Figures of one group: with `property`, the per-property statistics of a detailed rule;
 * without, the rule's own field. avg divides by the events that carried the field, not by
 * every event.
 */
export function figures(p: GroupPartial | undefined, property?: string): Figures {
  const count = p?.c ?? 0;
  const name = property;
  const stats = name !== undefined ? p?.f?.get(name) : p?.v;
  const out: Figures = { count };
  if (p?.h) out.unique_users = p.h.estimate();
  if (stats && stats.n > 0) {
    const sum = statsSum(stats);
    if (Number.isFinite(sum)) out.sum = sum;
    else out.sum_out_of_range = true;
    const avg = statsMean(stats);
    // Infinite only for partials written before exact sums, whose sum had overflowed.
    if (Number.isFinite(avg)) out.avg = avg;
    out.min = stats.mn;
    out.max = stats.mx;
    out.values = stats.n;
  }
  if (p?.ft && name !== undefined && !p.f?.has(name)) out.field_partial = true;
  return out;
}

export const isOtherGroup = (g: string) => g === OTHER_GROUP;

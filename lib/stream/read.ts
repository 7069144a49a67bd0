import {
  type FieldStats,
  GRANULARITY_MS,
  type Granularity,
  type GroupPartial,
  OTHER_GROUP,
  type WindowItem,
  windowPk,
} from "./fold.ts";
import { HyperLogLog } from "./hll.ts";

/**
 * The read side: merges the partials of every source partition (and of several windows, for
 * larger tumbling or sliding windows) into figures. Counts, sums, min and max merge exactly;
 * unique counts merge their sketches (a union), so uniques over 5 minutes are not the sum of
 * five one-minute uniques.
 */
export interface Merged {
  count: number;
  sum?: number;
  min?: number;
  max?: number;
  hll?: HyperLogLog;
  fields: Record<string, FieldStats>;
}

export const emptyMerged = (): Merged => ({ count: 0, fields: {} });

export function mergeInto(target: Merged, p: GroupPartial): Merged {
  target.count += p.c;
  if (p.s !== undefined) target.sum = (target.sum ?? 0) + p.s;
  if (p.mn !== undefined) target.min = target.min === undefined ? p.mn : Math.min(target.min, p.mn);
  if (p.mx !== undefined) target.max = target.max === undefined ? p.mx : Math.max(target.max, p.mx);
  if (p.h) {
    const h = HyperLogLog.deserialize(p.h);
    target.hll = target.hll ? target.hll.merge(h) : h;
  }
  for (const [name, f] of Object.entries(p.f ?? {})) {
    const t = target.fields[name];
    if (!t) target.fields[name] = { ...f };
    else {
      t.c += f.c;
      t.s += f.s;
      t.mn = Math.min(t.mn, f.mn);
      t.mx = Math.max(t.mx, f.mx);
    }
  }
  return target;
}

/** Window starts covering `[from, to]` at a granularity. */
export function windowStarts(from: number, to: number, granularity: Granularity): number[] {
  const size = GRANULARITY_MS[granularity];
  const out: number[] = [];
  for (let t = Math.floor(from / size) * size; t <= to; t += size) out.push(t);
  return out;
}

export function windowKeys(ruleId: string, granularity: Granularity, starts: readonly number[]): string[] {
  return starts.map((s) => windowPk(ruleId, granularity, s));
}

/** Per window start, per group: the merged partials of all source partitions. */
export function mergeByWindowAndGroup(
  items: readonly WindowItem[],
  onlyGroup?: string,
): Map<number, Map<string, Merged>> {
  const out = new Map<number, Map<string, Merged>>();
  for (const item of items) {
    let groups = out.get(item.windowStart);
    if (!groups) {
      groups = new Map();
      out.set(item.windowStart, groups);
    }
    for (const [group, partial] of Object.entries(item.groups)) {
      if (onlyGroup !== undefined && group !== onlyGroup) continue;
      let merged = groups.get(group);
      if (!merged) {
        merged = emptyMerged();
        groups.set(group, merged);
      }
      mergeInto(merged, partial);
    }
  }
  return out;
}

/** Everything of the given windows folded per group (e.g. the last 15 minutes). */
export function mergeByGroup(items: readonly WindowItem[]): Map<string, Merged> {
  const out = new Map<string, Merged>();
  for (const groups of mergeByWindowAndGroup(items).values()) {
    for (const [group, m] of groups) {
      const target = out.get(group) ?? emptyMerged();
      target.count += m.count;
      if (m.sum !== undefined) target.sum = (target.sum ?? 0) + m.sum;
      if (m.min !== undefined) target.min = target.min === undefined ? m.min : Math.min(target.min, m.min);
      if (m.max !== undefined) target.max = target.max === undefined ? m.max : Math.max(target.max, m.max);
      if (m.hll) target.hll = target.hll ? target.hll.merge(m.hll) : m.hll.clone();
      for (const [name, f] of Object.entries(m.fields)) {
        const t = target.fields[name];
        target.fields[name] = t
          ? { c: t.c + f.c, s: t.s + f.s, mn: Math.min(t.mn, f.mn), mx: Math.max(t.mx, f.mx) }
          : { ...f };
      }
      out.set(group, target);
    }
  }
  return out;
}

export function figures(m: Merged | undefined, field?: string) {
  const count = m?.count ?? 0;
  const fieldName = field?.startsWith("properties.") ? field.slice("properties.".length) : undefined;
  const f = fieldName ? m?.fields[fieldName] : undefined;
  const sum = f ? f.s : m?.sum;
  const n = f ? f.c : count;
  return {
    count,
    ...(m?.hll ? { unique_users: m.hll.estimate() } : {}),
    ...(sum !== undefined ? { sum, avg: n > 0 ? sum / n : 0 } : {}),
    ...((f ? f.mn : m?.min) !== undefined ? { min: f ? f.mn : m?.min } : {}),
    ...((f ? f.mx : m?.max) !== undefined ? { max: f ? f.mx : m?.max } : {}),
  };
}

export const isOtherGroup = (g: string) => g === OTHER_GROUP;

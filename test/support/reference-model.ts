import type { AcceptedEvent } from "../../lib/contract/event.ts";

/**
 * The reference model of issue 8: what GET /stats must answer, computed the plain way from the
 * partition logs, with none of the pipeline's machinery (no sketches, no deltas, no fences, no
 * floating-point partials). It states the documented semantics (docs/stream-processing.md) once:
 *
 * - Records of a partition are taken in offset order. A record whose `event_id` already appeared
 *   at a lower offset of the same partition, seen by the same execution environment, is a
 *   duplicate and changes nothing. An execution environment ("container") that starts when the
 *   partition's committed fence is F sees every record above F, so a record at offset o is a
 *   duplicate iff an earlier copy sits at an offset in (F, o), F being the fence at which the
 *   container that committed o started (`containerStarts`).
 * - Watermark per partition: the highest `min(timestamp, received_at)` of the records processed
 *   before; a record is late iff its minute window ends at or before that minus the allowed
 *   lateness. Late records count only in `late_events`, placed by arrival minute.
 * - On-time records count in every built-in rule, placed by event time.
 *
 * Sums are exact (rationals as scaled BigInts); unique counts are exact sets.
 */
export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const ALLOWED_LATENESS_MS = 2 * MINUTE;

export interface LogRecord {
  readonly partition: number;
  readonly offset: number;
  readonly event: AcceptedEvent;
}

export interface Processed {
  readonly event: AcceptedEvent;
  readonly late: boolean;
}

/** Which records count, and which of those are late (see the module comment). */
export function processLogs(
  logs: ReadonlyMap<number, readonly LogRecord[]>,
  containerStarts: ReadonlyMap<number, readonly number[]>,
  allowedLatenessMs = ALLOWED_LATENESS_MS,
): Processed[] {
  const out: Processed[] = [];
  for (const [partition, log] of logs) {
    const starts = containerStarts.get(partition) ?? [-1];
    const sorted = [...log].sort((a, b) => a.offset - b.offset);
    let watermarkBase = Number.NEGATIVE_INFINITY;
    for (const r of sorted) {
      const startFence = Math.max(-1, ...starts.filter((f) => f < r.offset));
      const duplicate = sorted.some(
        (o) => o.event.event_id === r.event.event_id && o.offset > startFence && o.offset < r.offset,
      );
      if (duplicate) continue;
      const windowEnd = Math.floor(r.event.timestamp / MINUTE) * MINUTE + MINUTE;
      const late = windowEnd <= watermarkBase - allowedLatenessMs;
      out.push({ event: r.event, late });
      watermarkBase = Math.max(watermarkBase, Math.min(r.event.timestamp, r.event.received_at));
    }
  }
  return out;
}

// --- exact sums --------------------------------------------------------------------------------

/** Every finite double is an integer multiple of 2^-1074: `x · 2^1074` as an exact BigInt. */
export function scaled(x: number): bigint {
  if (!Number.isFinite(x)) throw new Error(`not finite: ${x}`);
  if (x === 0) return 0n;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const sign = bits >> 63n ? -1n : 1n;
  const exponent = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & 0xfffffffffffffn;
  // normal: (2^52 + f) · 2^(e - 1075); subnormal: f · 2^-1074
  const mantissa = exponent === 0 ? fraction : fraction | (1n << 52n);
  const shift = exponent === 0 ? 0 : exponent - 1;
  return sign * (mantissa << BigInt(shift));
}

/**
 * `m · 2^-1074` rounded to the nearest double, ties to even, written out bit by bit (no
 * floating-point operation rounds here): the 53 leading bits of m, rounded on what is dropped,
 * then the IEEE 754 fields. Magnitudes from 2^1024 − 2^970 (MAX_VALUE plus half an ulp, a tie
 * that goes to the even 2^1024) are ±Infinity.
 */
export function roundScaled(m: bigint): number {
  const negative = m < 0n;
  let mantissa = negative ? -m : m;
  // value = mantissa · 2^(shift − 1074); below 2^53 units it is exact (subnormal or the lowest binade).
  let shift = 0n;
  const length = BigInt(mantissa.toString(2).length);
  if (length > 53n) {
    shift = length - 53n;
    const dropped = mantissa & ((1n << shift) - 1n);
    const half = 1n << (shift - 1n);
    mantissa >>= shift;
    if (dropped > half || (dropped === half && (mantissa & 1n) === 1n)) mantissa += 1n;
    if (mantissa === 1n << 53n) {
      mantissa >>= 1n;
      shift += 1n;
    }
  }
  // A 53-bit mantissa has the implicit bit: biased exponent shift + 1. Fewer bits: subnormal (0).
  const biased = mantissa >= 1n << 52n ? shift + 1n : 0n;
  const bits = biased >= 2047n ? 2047n << 52n : (biased << 52n) | (mantissa & ((1n << 52n) - 1n));
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, (negative ? 1n << 63n : 0n) | bits);
  return view.getFloat64(0);
}

/** An exact sum of doubles. */
export class ExactSum {
  total = 0n;
  n = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  add(x: number): void {
    this.total += scaled(x);
    this.n++;
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
  }
  /** The double nearest the exact sum (ties to even); an exact zero is +0. */
  get value(): number {
    return roundScaled(this.total) + 0;
  }
  /**
   * The average: the correctly rounded sum divided by n (one more rounding); when the sum rounds
   * beyond ±MAX_VALUE, the exact sum divided by n (truncated far below an ulp), rounded.
   */
  get mean(): number {
    const sum = this.value;
    return Number.isFinite(sum) ? sum / this.n : roundScaled(this.total / BigInt(this.n));
  }
}

// --- the built-in rules, written out --------------------------------------------------------------

/** Group value of one path, as documented: absent → "", objects as JSON, anything else as a string. */
export const groupValue = (v: unknown): string =>
  v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);

const own = (o: unknown, key: string): unknown =>
  o !== null && typeof o === "object" && Object.hasOwn(o, key)
    ? (o as Record<string, unknown>)[key]
    : undefined;

export const amountOf = (e: AcceptedEvent): number | undefined => {
  const v = own(e.properties, "amount");
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
};

export interface ModelGroup {
  count: number;
  values: ExactSum;
  ids: Set<string>;
}

const newGroup = (): ModelGroup => ({ count: 0, values: new ExactSum(), ids: new Set() });

interface RuleModel {
  readonly matches: (e: AcceptedEvent) => boolean;
  readonly group: (e: AcceptedEvent) => string;
  readonly value?: (e: AcceptedEvent) => number | undefined;
  readonly counted?: (e: AcceptedEvent) => string | undefined;
  readonly arrival?: boolean;
  readonly late?: boolean;
}

const nonEmpty = (v: unknown) => (v === undefined || v === null || v === "" ? undefined : groupValue(v));

/** The built-in rules (lib/stream/rules.ts) as plain functions of an event; views read their source. */
export const MODEL_RULES: Record<string, RuleModel> = {
  events_by_type: {
    matches: () => true,
    group: (e) => e.event_type,
    value: amountOf,
    counted: (e) => nonEmpty(e.user_id),
  },
  unique_users: { matches: () => true, group: () => "", counted: (e) => nonEmpty(e.user_id) },
  active_users: { matches: () => true, group: () => "", counted: (e) => nonEmpty(e.user_id) },
  page_views_by_url: { matches: (e) => e.event_type === "page_view", group: (e) => groupValue(e.page_url) },
  active_sessions_per_user: {
    matches: () => true,
    group: (e) => e.user_id,
    counted: (e) => nonEmpty(e.session_id),
  },
  revenue_by_currency: {
    matches: (e) => e.event_type === "purchase_completed",
    group: (e) => groupValue(own(e.properties, "currency")),
    value: amountOf,
  },
  late_events: { matches: () => true, group: (e) => e.event_type, arrival: true, late: true },
};

export class ReferenceModel {
  constructor(readonly processed: readonly Processed[]) {}

  /**
   * Groups of a rule over the one-minute windows intersecting `[from, to)`, i.e. the events placed
   * in `[floor(from, 1m), ceil(to, 1m))` (reads have minute resolution; hourly roll-ups hold the
   * same events as their sixty minutes).
   */
  groups(ruleId: string, from: number, to: number): Map<string, ModelGroup> {
    const rule = MODEL_RULES[ruleId];
    if (!rule) throw new Error(`no model of rule ${ruleId}`);
    const lo = Math.floor(from / MINUTE) * MINUTE;
    const hi = Math.ceil(to / MINUTE) * MINUTE;
    const out = new Map<string, ModelGroup>();
    for (const { event, late } of this.processed) {
      if (late !== (rule.late ?? false) || !rule.matches(event)) continue;
      const at = rule.arrival ? event.received_at : event.timestamp;
      if (at < lo || at >= hi) continue;
      const key = rule.group(event);
      let g = out.get(key);
      if (!g) {
        g = newGroup();
        out.set(key, g);
      }
      g.count++;
      const v = rule.value?.(event);
      if (v !== undefined) g.values.add(v);
      const id = rule.counted?.(event);
      if (id !== undefined) g.ids.add(id);
    }
    return out;
  }

  /** One group of a rule over `[from, to)` (e.g. an event type in `events_by_type`). */
  group(ruleId: string, key: string, from: number, to: number): ModelGroup {
    return this.groups(ruleId, from, to).get(key) ?? newGroup();
  }

  /** Events of a rule over `[from, to)`, all groups. */
  count(ruleId: string, from: number, to: number): number {
    return [...this.groups(ruleId, from, to).values()].reduce((n, g) => n + g.count, 0);
  }
}

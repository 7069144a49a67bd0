import { parseDuration } from "../contract/api.ts";
import { HOUR_MS, MINUTE_MS, TTL_SECONDS } from "./fold.ts";
import type { AggregationRule } from "./rules.ts";
import { DEFAULT_SESSION_GAP_MS } from "./sessions.ts";

/**
 * Read planning: which stored windows answer a read, as a pure function of the range and `now`.
 *
 * Storage (lib/stream/fold.ts): every rule is folded into one-minute windows, kept
 * `TTL_SECONDS.m` (2 days), and hourly roll-ups, kept `TTL_SECONDS.h` (90 days). A window of size
 * `s` starting at `floor(t / s) * s` (epoch ms, UTC) holds the events of `[start, start + s)`.
 *
 * Semantics, everywhere:
 * - Ranges are half-open, `[from, to)`: an event at exactly `to` is not in the range.
 * - Resolution is one minute: a range is read as the minute windows that intersect it, so the
 *   windows cover `[floor(from, 1m), ceil(to, 1m))`. That is the normal case and not reported as
 *   a widening of the request beyond its resolution.
 * - Whole hours inside the range read the hourly roll-up (one window instead of sixty); only the
 *   partial hours at the edges read minutes. A plan is therefore at most
 *   `ceil(range / 1h) + 1` hours and `2 × 59` minutes (`maxPlanSize`).
 * - A partial hour whose minutes have expired (older than the minute retention less a safety
 *   margin) reads its hourly roll-up whole: the plan is widened to whole hours and says so
 *   (`coveredFrom`/`coveredTo`, `widenedToHours`, `notice`), rather than reading expired minute
 *   items as zeros.
 * - Ranges reaching beyond the hourly retention, or longer than a maximum, are rejected with a
 *   `ReadPlanError` (a 400 for the API), never answered partially.
 *
 * Every window of a plan is disjoint from every other, and together they tile
 * `[coveredFrom, coveredTo)` without a gap (test/unit/stream-read-plan.test.ts checks it with
 * property tests).
 */

/** Minute windows are readable this long after they start (their TTL; less `RETENTION_MARGIN_MS`). */
export const MINUTE_RETENTION_MS = TTL_SECONDS.m * 1000;
/** Hourly roll-ups are readable this long after they start (their TTL; less `RETENTION_MARGIN_MS`). */
export const HOUR_RETENTION_MS = TTL_SECONDS.h * 1000;
/**
 * A window is read only while it has at least this much of its retention left: an item expires at
 * `start + size + retention`, and clocks (ours, DynamoDB's TTL sweeper) and the read itself take
 * time. DynamoDB deletes expired items lazily, so an item past its TTL may or may not be there:
 * never rely on it.
 */
export const RETENTION_MARGIN_MS = 10 * MINUTE_MS;
/** Longest range a plan accepts by default (the hourly retention: 2,160 hourly windows). */
export const MAX_RANGE_MS = HOUR_RETENTION_MS;
/** Longest tumbling or sliding rule window (`window.size`). */
export const MAX_RULE_WINDOW_MS = 30 * 24 * HOUR_MS;
/** Longest session inactivity gap (`window.gap`): bounds how far back a session read looks. */
export const MAX_SESSION_GAP_MS = 2 * HOUR_MS;
/**
 * How long before a read's `from` a session may have begun and still be seen whole (see
 * `sessionLookback`). A key active without a gap for longer than this before `from` has its
 * session clipped: it is seen from the lookback on.
 */
export const SESSION_CARRY_MS = 2 * HOUR_MS;
/** Longest range of a session read (sessions need minute windows: 360 of them, plus the lookback). */
export const MAX_SESSION_RANGE_MS = 6 * HOUR_MS;

export type ReadPlanErrorCode =
  | "invalid_range"
  | "range_too_long"
  | "beyond_retention"
  | "invalid_window"
  | "gap_too_long";

/** A read that cannot be planned; its message is meant for the API client (map it to a 400). */
export class ReadPlanError extends Error {
  override readonly name = "ReadPlanError";
  constructor(
    readonly code: ReadPlanErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface PartialMinute {
  /** Start of the minute in progress at `now`. */
  readonly start: number;
  /** `now − start`: how much of it has happened (0 ≤ elapsedMs < 60,000). */
  readonly elapsedMs: number;
}

export interface ReadPlan {
  /** One-minute windows to read (window starts, ascending). */
  readonly minutes: readonly number[];
  /** Hourly roll-ups to read (window starts, ascending). */
  readonly hours: readonly number[];
  /** The windows tile exactly `[coveredFrom, coveredTo)`: report these as the answer's range. */
  readonly coveredFrom: number;
  readonly coveredTo: number;
  /**
   * True when an edge was widened to a whole hour because its minutes have expired (beyond the
   * one-minute resolution every plan has).
   */
  readonly widenedToHours: boolean;
  /** Why the range was widened, for the API answer; present exactly when `widenedToHours`. */
  readonly notice?: string;
  /**
   * The time the plan actually covers so far: `min(coveredTo, now) − coveredFrom`, at least 0.
   * A rate per second is `count / (elapsedMs / 1000)`: the minute in progress counts only its
   * elapsed part, and windows after `now` (which hold only events stamped ahead of the clock)
   * count nothing.
   */
  readonly elapsedMs: number;
  /** The minute in progress at `now`, when the plan covers it (read as a minute or in its hour). */
  readonly partialMinute?: PartialMinute;
}

export interface PlanOptions {
  /** @default MINUTE_RETENTION_MS */
  readonly minuteRetentionMs?: number;
  /** @default HOUR_RETENTION_MS */
  readonly hourRetentionMs?: number;
  /** @default RETENTION_MARGIN_MS */
  readonly marginMs?: number;
  /** Longest accepted range (`to − from`). @default MAX_RANGE_MS */
  readonly maxRangeMs?: number;
}

export interface RangeRequest extends PlanOptions {
  /** Inclusive start (epoch ms). */
  readonly from: number;
  /** Exclusive end (epoch ms). */
  readonly to: number;
  readonly now: number;
}

const floorTo = (t: number, size: number) => Math.floor(t / size) * size;
const ceilTo = (t: number, size: number) => Math.ceil(t / size) * size;
/** An instant for messages (ISO-8601 when Date can represent it). */
const iso = (t: number) => (Math.abs(t) <= 8.64e15 ? new Date(t).toISOString() : String(t));

/** Upper bound of a plan's windows for a range of `rangeMs` (any alignment, any age). */
export function maxPlanSize(rangeMs: number): { minutes: number; hours: number } {
  return { minutes: 2 * 59, hours: Math.ceil(rangeMs / HOUR_MS) + 1 };
}

/**
 * The windows answering `[from, to)`. Hour by hour over the hours the range touches: an hour the
 * range covers whole (at minute resolution) reads its roll-up; a partial hour reads its minutes
 * while they are all within the minute retention, else its roll-up (widening the plan to that
 * whole hour). Throws `ReadPlanError` for an empty or invalid range, a range longer than
 * `maxRangeMs`, or one starting in an hour whose roll-up has expired.
 */
export function planRange(request: RangeRequest): ReadPlan {
  const { from, to, now } = request;
  const minuteRetentionMs = request.minuteRetentionMs ?? MINUTE_RETENTION_MS;
  const hourRetentionMs = request.hourRetentionMs ?? HOUR_RETENTION_MS;
  const marginMs = request.marginMs ?? RETENTION_MARGIN_MS;
  const maxRangeMs = request.maxRangeMs ?? MAX_RANGE_MS;
  checkRange(from, to, now, maxRangeMs);
  const plan = tile(from, to, now, now - minuteRetentionMs + marginMs, minuteRetentionMs);
  const hourHorizon = now - hourRetentionMs + marginMs;
  // Hours ascend, so the first is the oldest; every minute read is within its retention by construction.
  if ((plan.hours[0] ?? Number.POSITIVE_INFINITY) < hourHorizon)
    throw new ReadPlanError(
      "beyond_retention",
      `from (${iso(from)}) is older than the hourly roll-ups, which are kept ${humanDuration(hourRetentionMs)}: ` +
        `ranges can start at ${iso(ceilTo(hourHorizon, HOUR_MS))} at the earliest`,
    );
  return plan;
}

function checkRange(from: number, to: number, now: number, maxRangeMs: number): void {
  if (![from, to, now].every(Number.isSafeInteger))
    throw new ReadPlanError("invalid_range", "from, to and now must be integer epoch milliseconds");
  if (from >= to)
    throw new ReadPlanError("invalid_range", `from (${iso(from)}) must be before to (${iso(to)})`);
  if (to - from > maxRangeMs)
    throw new ReadPlanError(
      "range_too_long",
      `the range is ${humanDuration(to - from)} long; at most ${humanDuration(maxRangeMs)} can be read at once`,
    );
}

/** Plans `[from, to)` (validated), minute windows being readable from `minuteHorizon` on. */
function tile(
  from: number,
  to: number,
  now: number,
  minuteHorizon: number,
  minuteRetentionMs: number,
): ReadPlan {
  const minutes: number[] = [];
  const hours: number[] = [];
  let coveredFrom = Number.NaN;
  let coveredTo = Number.NaN;
  for (let hour = floorTo(from, HOUR_MS); hour < to; hour += HOUR_MS) {
    // The part of this hour in the range, at minute resolution: [start, end).
    const start = floorTo(Math.max(from, hour), MINUTE_MS);
    const end = ceilTo(Math.min(to, hour + HOUR_MS), MINUTE_MS);
    const whole = start === hour && end === hour + HOUR_MS;
    // Minutes ascend, so the hour's minutes are all readable when its first one is.
    if (whole || start < minuteHorizon) {
      hours.push(hour);
      if (Number.isNaN(coveredFrom)) coveredFrom = hour;
      coveredTo = hour + HOUR_MS;
    } else {
      for (let m = start; m < end; m += MINUTE_MS) minutes.push(m);
      if (Number.isNaN(coveredFrom)) coveredFrom = start;
      coveredTo = end;
    }
  }
  const widenedToHours = coveredFrom < floorTo(from, MINUTE_MS) || coveredTo > ceilTo(to, MINUTE_MS);
  return {
    minutes,
    hours,
    coveredFrom,
    coveredTo,
    widenedToHours,
    ...(widenedToHours
      ? {
          notice:
            `one-minute windows are kept ${humanDuration(minuteRetentionMs)}: older parts of the range are ` +
            `read from whole hourly roll-ups, so the figures cover ${iso(coveredFrom)} to ${iso(coveredTo)}`,
        }
      : {}),
    ...progress(coveredFrom, coveredTo, now),
  };
}

/** `elapsedMs` and `partialMinute` of a plan covering `[coveredFrom, coveredTo)`. */
function progress(
  coveredFrom: number,
  coveredTo: number,
  now: number,
): Pick<ReadPlan, "elapsedMs" | "partialMinute"> {
  const current = floorTo(now, MINUTE_MS);
  return {
    elapsedMs: Math.max(0, Math.min(coveredTo, now) - coveredFrom),
    ...(current >= coveredFrom && current < coveredTo
      ? { partialMinute: { start: current, elapsedMs: now - current } }
      : {}),
  };
}

/**
 * "The last interval" (`GET /stats?interval=5m`): the windows intersecting
 * `[now − intervalMs, now)`, i.e. `planRange({from: now − intervalMs, to: now})`.
 *
 * Exact definition: the plan reads every minute window from `floor(now − interval, 1m)` to the
 * minute in progress, so it covers `[coveredFrom, now)` — the whole interval plus the part of
 * its oldest minute before `now − interval` (less than a minute: `now mod 1m` for whole-minute
 * intervals). The minute in progress is partial (`partialMinute.elapsedMs` of it has happened),
 * so the time actually covered is `elapsedMs = now − coveredFrom` (between the interval and the
 * interval plus one minute), and the rate per second is `count / (elapsedMs / 1000)`, never
 * `count / interval`. When `now` is on a minute boundary, no partial minute is read and
 * `elapsedMs` is exactly the interval. Intervals over an hour read their whole hours as hourly
 * roll-ups, like any range.
 */
export function planInterval(
  request: { readonly intervalMs: number; readonly now: number } & PlanOptions,
): ReadPlan {
  const { intervalMs, now, ...options } = request;
  if (!Number.isSafeInteger(intervalMs) || intervalMs <= 0)
    throw new ReadPlanError("invalid_range", "the interval must be a positive duration");
  return planRange({ ...options, from: now - intervalMs, to: now, now });
}

export type RuleWindow = AggregationRule["window"];

export type ParsedRuleWindow =
  | { readonly type: "tumbling"; readonly sizeMs: number }
  | { readonly type: "sliding"; readonly sizeMs: number; readonly slideMs: number }
  | { readonly type: "session"; readonly gapMs: number };

/**
 * A rule's window in milliseconds, validated (use it when a rule is created or updated, too):
 * tumbling `size` (default 1m); sliding `size` (required) and `slide` (default 1m, at most the
 * size); session `gap` (default 30m, at most `MAX_SESSION_GAP_MS`). Sizes are at most
 * `MAX_RULE_WINDOW_MS`. Throws `ReadPlanError` (`invalid_window`, `gap_too_long`).
 */
export function parseRuleWindow(window: RuleWindow): ParsedRuleWindow {
  const duration = (name: string, text: string | undefined, fallback: number | undefined): number => {
    const ms = text === undefined ? fallback : parseDuration(text);
    if (ms === undefined)
      throw new ReadPlanError(
        "invalid_window",
        text === undefined
          ? `a ${window.type} window needs a ${name}`
          : `window.${name} "${text}" is not a duration like 1m, 5m, 1h or 7d`,
      );
    return ms;
  };
  if (window.type === "session") {
    const gapMs = duration("gap", window.gap, DEFAULT_SESSION_GAP_MS);
    checkGap(gapMs);
    return { type: "session", gapMs };
  }
  const sizeMs = duration("size", window.size, window.type === "tumbling" ? MINUTE_MS : undefined);
  if (sizeMs > MAX_RULE_WINDOW_MS)
    throw new ReadPlanError(
      "invalid_window",
      `window.size is at most ${humanDuration(MAX_RULE_WINDOW_MS)} (hourly roll-ups are kept ${humanDuration(HOUR_RETENTION_MS)})`,
    );
  if (window.type === "tumbling") return { type: "tumbling", sizeMs };
  const slideMs = duration("slide", window.slide, MINUTE_MS);
  if (slideMs > sizeMs) throw new ReadPlanError("invalid_window", "window.slide must not exceed window.size");
  return { type: "sliding", sizeMs, slideMs };
}

function checkGap(gapMs: number): void {
  if (!Number.isSafeInteger(gapMs) || gapMs < MINUTE_MS)
    throw new ReadPlanError("invalid_window", "a session gap is at least one minute");
  if (gapMs > MAX_SESSION_GAP_MS)
    throw new ReadPlanError(
      "gap_too_long",
      `a session gap is at most ${humanDuration(MAX_SESSION_GAP_MS)}: a session read looks back one gap plus ` +
        `${humanDuration(SESSION_CARRY_MS)} over one-minute windows`,
    );
}

/**
 * The earliest instant a session read for `[from, …)` looks at: `floor(from − gap − SESSION_CARRY_MS, 1m)`.
 *
 * Sessions are derived from one-minute activity (lib/stream/sessions.ts): a session starts at the
 * first active minute after a silence of at least one gap. A read starting at `R` recognizes the
 * start of every session that began at or after `R + gap` (its leading silence is within the
 * read), so every session that began at or after `from − SESSION_CARRY_MS` is seen whole. A key
 * active without a gap since before that is seen from `R` on: its start and duration are clipped,
 * never its events inside `[from, to)`. The lookback is at most `MAX_SESSION_GAP_MS +
 * SESSION_CARRY_MS` (4 hours, 240 minute windows). Throws for a gap beyond `MAX_SESSION_GAP_MS`.
 */
export function sessionLookback(from: number, gapMs: number): number {
  checkGap(gapMs);
  return floorTo(from - gapMs - SESSION_CARRY_MS, MINUTE_MS);
}

export interface SessionReadPlan extends ReadPlan {
  /** The sessions asked for are those intersecting `[from, to)` (with `to` ≤ the read's end). */
  readonly from: number;
  readonly to: number;
  readonly gapMs: number;
}

/**
 * A session read over `[from, to)`: one-minute windows only (sessions need minute resolution) from
 * `sessionLookback(from, gapMs)` to `ceil(to, 1m)`. At most
 * `(MAX_SESSION_RANGE_MS + MAX_SESSION_GAP_MS + SESSION_CARRY_MS) / 1m + 1` = 601 windows.
 * Throws `ReadPlanError` for a gap beyond `MAX_SESSION_GAP_MS`, a range longer than
 * `maxRangeMs` (default `MAX_SESSION_RANGE_MS`) or a lookback reaching expired minutes.
 */
export function planSessionRange(request: RangeRequest & { readonly gapMs: number }): SessionReadPlan {
  const { from, to, now, gapMs } = request;
  const maxRangeMs = request.maxRangeMs ?? MAX_SESSION_RANGE_MS;
  const minuteRetentionMs = request.minuteRetentionMs ?? MINUTE_RETENTION_MS;
  const minuteHorizon = now - minuteRetentionMs + (request.marginMs ?? RETENTION_MARGIN_MS);
  checkRange(from, to, now, maxRangeMs);
  const readFrom = sessionLookback(from, gapMs);
  if (readFrom < minuteHorizon)
    throw new ReadPlanError(
      "beyond_retention",
      `sessions are computed from one-minute windows, kept ${humanDuration(minuteRetentionMs)}: a session ` +
        `read can start at ${iso(ceilTo(minuteHorizon, MINUTE_MS) + gapMs + SESSION_CARRY_MS)} at the earliest`,
    );
  // Every minute of the lookback is readable, so no hour is widened: tile in minutes only.
  const minutes: number[] = [];
  const coveredTo = ceilTo(to, MINUTE_MS);
  for (let m = readFrom; m < coveredTo; m += MINUTE_MS) minutes.push(m);
  return {
    minutes,
    hours: [],
    coveredFrom: readFrom,
    coveredTo,
    widenedToHours: false,
    ...progress(readFrom, coveredTo, now),
    from,
    to,
    gapMs,
  };
}

export type RuleWindowPlan =
  | (ReadPlan & {
      readonly type: "tumbling" | "sliding";
      /** The rule's current window `[from, to)`; read so far up to `now`. */
      readonly window: { readonly from: number; readonly to: number };
    })
  | (SessionReadPlan & { readonly type: "session" });

/**
 * The windows making up a rule's current window, for a read without a range (issue 8 item 8: a
 * rule's size and slide apply on read):
 *
 * - tumbling `size`: the current window `[floor(now, size), floor(now, size) + size)` (epoch
 *   aligned, UTC), read so far: `[floor(now, size), now)`. Tumbling 1h → the current hour so far.
 *   At the very instant a window starts it is empty: no windows, `elapsedMs` 0.
 * - sliding `size`/`slide`: the last `size`, from a slide boundary: `[floor(now − size, slide),
 *   now)`, which holds the whole of `[now − size, now)` and less than one slide more. Sliding
 *   5m/1m (active users) → the same windows as `planInterval` of 5 minutes.
 * - session `gap`: the open sessions, i.e. those active in `[now − gap, now)`:
 *   `planSessionRange({from: now − gap, to: now})`, looking back `sessionLookback`.
 *
 * The rate per second of any of them is `count / (elapsedMs / 1000)`.
 */
export function planRuleWindow(window: RuleWindow, now: number, options: PlanOptions = {}): RuleWindowPlan {
  const parsed = parseRuleWindow(window);
  if (parsed.type === "session") {
    const range = { from: now - parsed.gapMs, to: now, now, gapMs: parsed.gapMs };
    return {
      type: "session",
      ...planSessionRange({ ...options, maxRangeMs: MAX_SESSION_RANGE_MS, ...range }),
    };
  }
  if (parsed.type === "tumbling") {
    const from = floorTo(now, parsed.sizeMs);
    const window = { from, to: from + parsed.sizeMs };
    if (from === now)
      return {
        type: "tumbling",
        window,
        minutes: [],
        hours: [],
        coveredFrom: now,
        coveredTo: now,
        widenedToHours: false,
        elapsedMs: 0,
      };
    return { type: "tumbling", window, ...planRange({ ...options, from, to: now, now }) };
  }
  const from = floorTo(now - parsed.sizeMs, parsed.slideMs);
  return {
    type: "sliding",
    window: { from: now - parsed.sizeMs, to: now },
    ...planRange({ ...options, from, to: now, now }),
  };
}

/** `90 days`, `6 hours`, `30 minutes`, `1 minute 30 seconds`, for messages. */
function humanDuration(ms: number): string {
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [
    ["day", 86_400_000],
    ["hour", HOUR_MS],
    ["minute", MINUTE_MS],
    ["second", 1000],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n} ${unit}${n === 1 ? "" : "s"}`);
    rest -= n * size;
  }
  return parts.length > 0 ? parts.join(" ") : `${ms} ms`;
}

/**
 * Event time, not processing time: per source partition, the watermark is the highest event
 * time seen minus the allowed lateness. A one-minute window whose end is at or before the
 * watermark is closed; an event for a closed window is late: archived, counted as late and
 * published to `events.late`, but it changes no closed window.
 *
 * The state is saved only after a batch's aggregates are written, so a retried batch is
 * classified exactly as the first attempt was.
 */
export const DEFAULT_ALLOWED_LATENESS_MS = 2 * 60_000;
const MINUTE = 60_000;

export interface WatermarkState {
  /** Highest event time seen on the partition (epoch ms), -Infinity before any. */
  readonly maxEventTime: number;
  /** Highest offset folded into this state. */
  readonly lastOffset: number;
}

export const INITIAL_WATERMARK: WatermarkState = { maxEventTime: Number.NEGATIVE_INFINITY, lastOffset: -1 };

export function watermarkOf(state: WatermarkState, allowedLatenessMs = DEFAULT_ALLOWED_LATENESS_MS): number {
  return state.maxEventTime - allowedLatenessMs;
}

/** Late when the event's one-minute window had already closed. */
export function isLate(
  eventTime: number,
  state: WatermarkState,
  allowedLatenessMs = DEFAULT_ALLOWED_LATENESS_MS,
): boolean {
  const windowEnd = Math.floor(eventTime / MINUTE) * MINUTE + MINUTE;
  return windowEnd <= watermarkOf(state, allowedLatenessMs);
}

export function advance(state: WatermarkState, eventTime: number, offset: number): WatermarkState {
  return {
    maxEventTime: Math.max(state.maxEventTime, eventTime),
    lastOffset: Math.max(state.lastOffset, offset),
  };
}

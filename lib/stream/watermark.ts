/**
 * Event time, not processing time: per source partition, the watermark is the highest event
 * time seen minus the allowed lateness. A one-minute window whose end is at or before the
 * watermark is closed; an event for a closed window is late: archived, counted as late and
 * published to `events.late`, but it changes no closed window.
 *
 * An event's time only moves the watermark as far as its arrival (`received_at`): ingest accepts
 * timestamps up to 5 minutes ahead, and one such event must not make every correct event of the
 * partition late (issue 8.5). The state is saved in the fence that claims the batch's slice,
 * with the watermark before it, so a retried batch is classified exactly as the first attempt was.
 */
export const DEFAULT_ALLOWED_LATENESS_MS = 2 * 60_000;
const MINUTE = 60_000;

export function watermarkOf(maxEventTime: number, allowedLatenessMs = DEFAULT_ALLOWED_LATENESS_MS): number {
  return maxEventTime - allowedLatenessMs;
}

/**
 * Whether an event's one-minute window ends at or before `closedBefore`: late against a
 * watermark (`watermarkOf`), or against the highest one a partition has had, which keeps a
 * window closed for good whatever the allowed lateness is now.
 */
export function closedBy(eventTime: number, closedBefore: number): boolean {
  return Math.floor(eventTime / MINUTE) * MINUTE + MINUTE <= closedBefore;
}

/** The highest event time after an event, never beyond the event's arrival. */
export function advance(maxEventTime: number, eventTime: number, receivedAt: number): number {
  return Math.max(maxEventTime, Math.min(eventTime, receivedAt));
}

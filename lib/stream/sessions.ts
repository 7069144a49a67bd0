import { MINUTE_MS } from "./fold.ts";

/**
 * Session windows from one-minute base windows: a key's (usually a user's) session is a run of
 * active minutes with no silence as long as the inactivity gap (default 30 min); it closes once
 * the gap has passed without activity. Minute resolution: a session's start and end are the
 * minutes of its first and last events. Computing sessions at read time from the same
 * exactly-once base windows means a replay can never split or merge a session.
 */
export const DEFAULT_SESSION_GAP_MS = 30 * MINUTE_MS;

export interface Session {
  readonly key: string;
  /** First active minute (epoch ms). */
  readonly start: number;
  /** End of the last active minute (epoch ms). */
  readonly end: number;
  readonly events: number;
  /** Still open at `now`: the gap has not elapsed since its last activity. */
  readonly open: boolean;
}

/** `activity`: per key, per minute start, the events of that minute. */
export function sessionize(
  activity: ReadonlyMap<string, ReadonlyMap<number, number>>,
  gapMs: number,
  now: number,
): Session[] {
  const sessions: Session[] = [];
  for (const [key, minutes] of activity) {
    const starts = [...minutes.keys()].sort((a, b) => a - b);
    let start: number | undefined;
    let lastEnd = 0;
    let events = 0;
    for (const m of starts) {
      const count = minutes.get(m) ?? 0;
      if (count === 0) continue;
      if (start !== undefined && m - lastEnd >= gapMs) {
        sessions.push({ key, start, end: lastEnd, events, open: false });
        start = undefined;
      }
      if (start === undefined) {
        start = m;
        events = 0;
      }
      events += count;
      lastEnd = m + MINUTE_MS;
    }
    if (start !== undefined) sessions.push({ key, start, end: lastEnd, events, open: now - lastEnd < gapMs });
  }
  return sessions.sort((a, b) => a.start - b.start || a.key.localeCompare(b.key));
}

export function summarize(sessions: readonly Session[]) {
  const closed = sessions.filter((s) => !s.open);
  const totalMs = sessions.reduce((n, s) => n + (s.end - s.start), 0);
  const totalEvents = sessions.reduce((n, s) => n + s.events, 0);
  return {
    sessions: sessions.length,
    open_sessions: sessions.length - closed.length,
    closed_sessions: closed.length,
    avg_duration_seconds: sessions.length > 0 ? totalMs / sessions.length / 1000 : 0,
    avg_events_per_session: sessions.length > 0 ? totalEvents / sessions.length : 0,
  };
}

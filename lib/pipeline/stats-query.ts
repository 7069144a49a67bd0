import type { AggregateStore } from "../adapters/aggregate-store.ts";
import { eventsByTypeKey } from "./aggregate-batch.ts";

const MINUTE = 60_000;

export interface EventTypeStatsQuery {
  readonly event_type: string;
  readonly interval: string;
  readonly intervalMs: number;
}

export interface MinutePoint {
  minute: string;
  count: number;
}

/**
 * Live statistics for one event type over the last interval: the one-minute windows that
 * overlap `[now - interval, now]`, each merged across the partials of every source partition.
 */
export async function readEventTypeStats(store: AggregateStore, query: EventTypeStatsQuery, now: number) {
  const lastWindow = Math.floor(now / MINUTE) * MINUTE;
  const windows = Math.max(1, Math.ceil(query.intervalMs / MINUTE));
  const starts = Array.from({ length: windows }, (_, i) => lastWindow - (windows - 1 - i) * MINUTE);
  const partials = await store.readWindows(starts.map((s) => eventsByTypeKey(query.event_type, s)));
  const perWindow = new Map<number, number>(starts.map((s) => [s, 0]));
  for (const p of partials) {
    const start = Number(p.attributes.window_start);
    perWindow.set(start, (perWindow.get(start) ?? 0) + p.value.count);
  }
  const series: MinutePoint[] = starts.map((s) => ({
    minute: new Date(s).toISOString(),
    count: perWindow.get(s) ?? 0,
  }));
  const count = series.reduce((n, p) => n + p.count, 0);
  return {
    event_type: query.event_type,
    interval: query.interval,
    from: new Date(now - query.intervalMs).toISOString(),
    to: new Date(now).toISOString(),
    count,
    rate_per_second: count / (query.intervalMs / 1000),
    series,
  };
}

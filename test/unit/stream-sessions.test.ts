import { describe, expect, it } from "vitest";
import { parseDuration } from "../../lib/contract/api.ts";
import { MINUTE_MS } from "../../lib/stream/fold.ts";
import { DEFAULT_SESSION_GAP_MS, sessionize, summarize } from "../../lib/stream/sessions.ts";

const t0 = Date.UTC(2026, 10, 22, 8, 0);
const minutes = (...ms: [number, number][]) => new Map(ms.map(([m, c]) => [t0 + m * MINUTE_MS, c]));

describe("session windows", () => {
  it("closes a session after the inactivity gap and opens a new one", () => {
    const activity = new Map([["ann", minutes([0, 2], [10, 1], [45, 3], [50, 1])]]);
    const sessions = sessionize(activity, DEFAULT_SESSION_GAP_MS, t0 + 120 * MINUTE_MS);
    expect(sessions).toEqual([
      { key: "ann", start: t0, end: t0 + 11 * MINUTE_MS, events: 3, open: false },
      { key: "ann", start: t0 + 45 * MINUTE_MS, end: t0 + 51 * MINUTE_MS, events: 4, open: false },
    ]);
  });

  it("keeps a session open until the gap has elapsed", () => {
    const activity = new Map([
      ["ann", minutes([0, 1], [5, 1])],
      ["bob", minutes([1, 4])],
    ]);
    const now = t0 + 12 * MINUTE_MS;
    const sessions = sessionize(activity, parseDuration("10m") ?? 0, now);
    expect(sessions.map((s) => [s.key, s.open])).toEqual([
      ["ann", true],
      ["bob", false],
    ]);
    expect(summarize(sessions)).toMatchObject({
      sessions: 2,
      open_sessions: 1,
      closed_sessions: 1,
      avg_events_per_session: 3,
    });
  });
});

describe("session windows through GET /stats?rule_id=user_sessions", () => {
  it("reads sessions from the one-minute windows the aggregator wrote", async () => {
    const { MemoryWindowStore } = await import("./support/memory-window-store.ts");
    const { aggregateBatch, RecentEventIds } = await import("../../lib/pipeline/aggregate-batch.ts");
    const { readStats } = await import("../../lib/pipeline/stats-service.ts");
    const { BUILT_IN_RULES } = await import("../../lib/stream/rules.ts");
    const store = new MemoryWindowStore();
    const at = [0, 3, 50, 52, 53]; // minutes: one session, 47 quiet minutes, a second one
    const records = at.map((m, offset) => ({
      partition: 0,
      offset,
      event: {
        event_id: `s${offset}`,
        user_id: "ann",
        event_type: "click",
        timestamp: t0 + m * MINUTE_MS,
        received_at: t0,
      },
    }));
    await aggregateBatch("events.raw", records, {
      store,
      rules: BUILT_IN_RULES,
      recent: new RecentEventIds(),
      publishLate: async () => undefined,
      // The events' clock: a minute two days older than it is past its retention, not written.
      now: () => t0 + 60 * MINUTE_MS,
    });
    const now = t0 + 60 * MINUTE_MS;
    const stats = (await readStats(
      store,
      BUILT_IN_RULES,
      { kind: "rule", rule_id: "user_sessions", from: t0, to: now },
      now,
    )) as {
      sessions: number;
      open_sessions: number;
      count: number;
      series: { minute: string; count: number }[];
    };
    expect(stats).toMatchObject({ sessions: 2, open_sessions: 1, count: 5 });
    // The series counts sessions by the minute they started: minutes 0 and 50, none elsewhere.
    expect(stats.series).toHaveLength(60);
    expect(stats.series.filter((p) => p.count > 0)).toEqual([
      { minute: new Date(t0).toISOString(), seconds: 60, count: 1 },
      { minute: new Date(t0 + 50 * MINUTE_MS).toISOString(), seconds: 60, count: 1 },
    ]);
  });
});

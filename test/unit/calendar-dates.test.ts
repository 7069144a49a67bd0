import { describe, expect, it } from "vitest";
import { parseEventsQuery, parseStatsQuery } from "../../lib/contract/api.ts";
import { acceptedByHand, parseIngestBody } from "../../lib/contract/event.ts";

/**
 * Dates that do not exist (2026-02-29, 2026-04-31) are refused with a 400. `Date.parse` takes any
 * day 01–31 of any month and rolls it into the next month, so GET /events?from=2026-02-29 read
 * from March 1st, and an event stamped 2026-04-31 was counted on May 1st.
 */
const now = Date.UTC(2026, 10, 22, 12, 0, 0);
const retentionMs = 365 * 86_400_000;

describe("non-existent calendar dates", () => {
  it("are refused in GET /events from and to", () => {
    for (const query of [
      { from: "2026-02-29", to: "2026-03-02" },
      { from: "2026-04-31T00:00:00Z", to: "2026-05-02T00:00:00Z" },
      { from: "2026-06-01T00:00:00Z", to: "2026-06-31T00:00:00+02:00" },
      { from: "2100-02-29T00:00:00Z", to: "2100-03-02T00:00:00Z" },
    ]) {
      const parsed = parseEventsQuery({ user_id: "u1", ...query }, now);
      expect(parsed.ok, JSON.stringify(query)).toBe(false);
      expect(!parsed.ok && parsed.error.status).toBe(400);
      expect(!parsed.ok && parsed.error.message).toMatch(/calendar date/);
    }
  });

  it("are refused in GET /stats from and to", () => {
    const parsed = parseStatsQuery({ rule_id: "events_by_type", from: "2026-02-29T00:00:00Z" }, now);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error.status).toBe(400);
    expect(parseStatsQuery({ rule_id: "events_by_type", from: "2026-09-31", to: "2026-10-02" }, now).ok).toBe(
      false,
    );
  });

  it("are refused as event timestamps, by the schema and by the hot path", () => {
    const event = { user_id: "u1", event_type: "page_view", timestamp: "2026-02-29T10:00:00Z" };
    const result = parseIngestBody(JSON.stringify([event]), { now, retentionMs });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error.status).toBe(400);
    expect(!result.ok && result.error.details).toEqual({
      problems: [{ index: 0, field: "timestamp", message: expect.stringMatching(/calendar date/) }],
    });
    expect(acceptedByHand(event)).toBeUndefined();
  });

  it("real dates, leap days included, are still read as they are", () => {
    const leap = parseEventsQuery({ user_id: "u1", from: "2024-02-29", to: "2024-03-01" }, now);
    expect(leap.ok && leap.value.from).toBe(Date.UTC(2024, 1, 29));
    const last = parseStatsQuery({ rule_id: "r", from: "2026-04-30T23:00:00Z", to: "2026-05-01" }, now);
    expect(last.ok && last.value.kind === "rule" && last.value.to).toBe(Date.UTC(2026, 4, 1));
    const event = { user_id: "u1", event_type: "page_view", timestamp: "2026-04-30T23:59:59Z" };
    const result = parseIngestBody(JSON.stringify(event), { now, retentionMs });
    expect(result.ok && result.events[0]?.timestamp).toBe(Date.UTC(2026, 3, 30, 23, 59, 59));
    expect(parseEventsQuery({ user_id: "u1", from: String(now - 1000), to: String(now) }, now).ok).toBe(true);
  });
});

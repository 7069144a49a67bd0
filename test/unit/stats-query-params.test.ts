import { describe, expect, it } from "vitest";
import { parseStatsQuery } from "../../lib/contract/api.ts";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import { readStats } from "../../lib/pipeline/stats-service.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * GET /stats?event_type=page_view&from=…&to=… ignored from and to: it answered the last 5 minutes
 * (interval's default) with 200, so asking for yesterday's 10:00–11:00 gave today's figures. With
 * rule_id, event_type, interval, field and group_by were ignored the same way
 * (`rule_id=revenue_by_currency&interval=15m` answered the rule's own 1-minute window). An event
 * type is now read over [from, to) when a range is given, and a parameter that cannot apply is a
 * 400 naming it.
 */
const MIN = 60_000;
const HOUR = 60 * MIN;
const now = Date.UTC(2026, 11, 5, 19, 40, 30);

let seq = 0;
const pageView = (timestamp: number, amount: number): AcceptedEvent => ({
  event_id: `e${seq++}`,
  user_id: `u${seq}`,
  event_type: "page_view",
  timestamp,
  received_at: now - 10_000,
  properties: { amount },
});

async function storeWith(events: AcceptedEvent[]): Promise<MemoryWindowStore> {
  const store = new MemoryWindowStore();
  await aggregateBatch(
    "events.raw",
    events.map((event, offset) => ({ partition: 0, offset, event })),
    {
      store,
      rules: BUILT_IN_RULES,
      recent: new RecentEventIds(),
      publishLate: async () => undefined,
    },
  );
  return store;
}

function parsed(query: Record<string, string>) {
  const q = parseStatsQuery(query, now);
  if (!q.ok) throw new Error(`refused: ${q.error.message}`);
  return q.value;
}

describe("GET /stats?event_type= with from/to", () => {
  it("reads the range [from, to), not the last interval", async () => {
    // Two hours ago: 3 views in one minute; now: 2 views.
    const earlier = now - 2 * HOUR;
    const store = await storeWith([
      pageView(earlier + 1_000, 1),
      pageView(earlier + 2_000, 2),
      pageView(earlier + 3_000, 4),
      pageView(now - 20_000, 100),
      pageView(now - 10_000, 200),
    ]);
    const from = Math.floor(earlier / MIN) * MIN;
    const query = parsed({
      event_type: "page_view",
      field: "properties.amount",
      from: String(from),
      to: String(from + 10 * MIN),
    });
    const stats = (await readStats(store, BUILT_IN_RULES, query, now)) as Record<string, unknown>;
    expect(stats).toMatchObject({
      event_type: "page_view",
      from: new Date(from).toISOString(),
      to: new Date(from + 10 * MIN).toISOString(),
      count: 3,
      sum: 7,
      min: 1,
      max: 4,
    });
    expect(stats.interval).toBeUndefined();
    expect((stats.series as unknown[]).length).toBe(10);

    // Without a range, the last interval as before.
    const recent = (await readStats(store, BUILT_IN_RULES, parsed({ event_type: "page_view" }), now)) as {
      count: number;
      interval?: string;
    };
    expect(recent).toMatchObject({ count: 2, interval: "5m" });
  });

  it("takes from alone as [from, now)", () => {
    const q = parsed({ event_type: "page_view", from: String(now - 30 * MIN) });
    expect(q).toMatchObject({ kind: "event_type", from: now - 30 * MIN, to: now });
  });

  it("refuses interval with from/to, and a reversed range", () => {
    const both = parseStatsQuery({ event_type: "page_view", interval: "15m", from: String(now - HOUR) }, now);
    expect(both.ok).toBe(false);
    if (!both.ok) {
      expect(both.error).toMatchObject({ status: 400, code: "invalid_query" });
      expect(both.error.message).toContain("interval");
    }
    const reversed = parseStatsQuery(
      { event_type: "page_view", from: String(now), to: String(now - HOUR) },
      now,
    );
    expect(reversed.ok).toBe(false);
  });
});

describe("GET /stats?rule_id= with parameters of an event type read", () => {
  for (const [name, value] of [
    ["event_type", "page_view"],
    ["interval", "15m"],
    ["field", "properties.amount"],
    ["group_by", "page_url"],
  ] as const) {
    it(`refuses ${name} (a rule has its own), naming it`, () => {
      for (const range of [{}, { from: String(now - HOUR) }]) {
        const q = parseStatsQuery({ rule_id: "revenue_by_currency", ...range, [name]: value }, now);
        expect(q.ok).toBe(false);
        if (q.ok) return;
        expect(q.error).toMatchObject({ status: 400, code: "invalid_query" });
        expect(q.error.message.startsWith(`${name}:`)).toBe(true);
      }
    });
  }

  it("still reads a rule with from/to, or its own window without", () => {
    expect(parsed({ rule_id: "revenue_by_currency" })).toEqual({
      kind: "rule",
      rule_id: "revenue_by_currency",
    });
    expect(parsed({ rule_id: "revenue_by_currency", from: String(now - HOUR) })).toEqual({
      kind: "rule",
      rule_id: "revenue_by_currency",
      from: now - HOUR,
      to: now,
    });
  });
});

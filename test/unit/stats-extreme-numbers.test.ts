import { describe, expect, it } from "vitest";
import { parseStatsQuery, StatsResponseSchema } from "../../lib/contract/api.ts";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import { statsMessagesFor } from "../../lib/pipeline/stats-messages.ts";
import { readStats } from "../../lib/pipeline/stats-service.ts";
import { addValue, type GroupPartial, newStats } from "../../lib/stream/partial.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * Numeric properties near a double's limit: each value is finite (POST /events refuses the
 * others), but their exact sum may round beyond ±1.8e308. GET /stats then answered `"sum": null`
 * and `"avg": null` (JSON's spelling of Infinity), although the average of 1e308 and 1e308 is
 * 1e308, and `null` is not the number the OpenAPI document promises. Now avg is the exact sum
 * divided by the count (always within min..max), and a sum beyond the range is left out, said so
 * by `sum_out_of_range: true`; the same on analytics.stats.
 */
const MIN = 60_000;
const now = Date.UTC(2026, 10, 24, 12, 30, 30);
const MAX = Number.MAX_VALUE;

let seq = 0;
const purchase = (amount: number): AcceptedEvent => ({
  event_id: `extreme-${seq++}`,
  user_id: "u1",
  event_type: "purchase_completed",
  timestamp: now - 10_000,
  received_at: now - 10_000,
  properties: { currency: "EUR", amount },
});

async function storeWith(amounts: readonly number[]) {
  const store = new MemoryWindowStore();
  await aggregateBatch(
    "events.raw",
    amounts.map((amount, offset) => ({ partition: 0, offset, event: purchase(amount) })),
    {
      store,
      rules: BUILT_IN_RULES,
      recent: new RecentEventIds(),
      publishLate: async () => {},
      now: () => now,
    },
  );
  return store;
}

/** GET /stats as the client sees it: the JSON text parsed back, checked against the schema. */
async function get(amounts: readonly number[], query: Record<string, string>) {
  const parsed = parseStatsQuery(query, now);
  if (!parsed.ok) throw new Error(parsed.error.message);
  const answer = await readStats(await storeWith(amounts), BUILT_IN_RULES, parsed.value, now);
  const text = JSON.stringify(answer);
  expect(text).not.toContain("null");
  return StatsResponseSchema.parse(JSON.parse(text));
}

const byType = { event_type: "purchase_completed", interval: "5m", field: "properties.amount" };
const byRule = { rule_id: "revenue_by_currency", from: String(now - 5 * MIN), to: String(now) };

describe("sums beyond a double's range in GET /stats", () => {
  it("by event type: avg is the true average, sum is left out and said to be out of range", async () => {
    const stats = await get([1e308, 1e308], byType);
    expect(stats).toMatchObject({ count: 2, avg: 1e308, min: 1e308, max: 1e308, sum_out_of_range: true });
    expect(stats.sum).toBeUndefined();
    const minute = stats.series.find((p) => p.count > 0);
    expect(minute).toMatchObject({ count: 2, min: 1e308, max: 1e308, sum_out_of_range: true });
    expect(minute?.sum).toBeUndefined();

    const negative = await get([-MAX, -MAX, -MAX], byType);
    expect(negative).toMatchObject({ avg: -MAX, sum_out_of_range: true });
  });

  it("by rule: each group's avg and the flag, no null", async () => {
    const stats = await get([MAX, MAX, 1], byRule);
    const [eur] = stats.groups ?? [];
    expect(eur).toMatchObject({ group: { "properties.currency": "EUR" }, count: 3, sum_out_of_range: true });
    expect(eur?.avg).toBeCloseTo((2 / 3) * MAX, -300);
    expect(eur?.sum).toBeUndefined();
  });

  it("a sum back within range after cancelling is exact, with no flag", async () => {
    const stats = await get([MAX, MAX, -MAX, 5e-324, -0], byType);
    expect(stats).toMatchObject({ sum: MAX, avg: MAX / 5, min: -MAX, max: MAX });
    expect(stats.sum_out_of_range).toBeUndefined();
  });

  it("analytics.stats messages carry no null either", () => {
    const stats = newStats(1e308);
    addValue(stats, 1e308);
    const [message] = statsMessagesFor(
      { ruleKey: "revenue_by_currency", granularity: "m", windowStart: now - 30_000 },
      new Map<string, GroupPartial>([["EUR", { c: 2, v: stats }]]),
      ["EUR"],
      now,
      now,
    );
    const text = JSON.stringify(message);
    expect(text).not.toContain("null");
    expect(JSON.parse(text)).toMatchObject({ count: 2, avg: 1e308, sum_out_of_range: true });
  });
});

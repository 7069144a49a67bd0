import { describe, expect, it } from "vitest";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import { statsMessagesFor } from "../../lib/pipeline/stats-messages.ts";
import { readStats } from "../../lib/pipeline/stats-service.ts";
import { type Groups, mergeGroups, OTHER_GROUP } from "../../lib/stream/partial.ts";
import { BUILT_IN_RULES, groupKey, splitGroupKey } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * A window counts its groups beyond the cap under an internal overflow group, "\u0000other". A
 * group value spelled the same way (a currency, a user id: any string of the contract) was that
 * group: merged into the overflow, and shown as `{other: "true"}`. It must be an ordinary group.
 */
const MIN = 60_000;
const now = Date.UTC(2026, 10, 24, 12, 30, 30);
const rule = (id: string) => {
  const r = BUILT_IN_RULES.find((x) => x.rule_id === id);
  if (!r) throw new Error(id);
  return r;
};
const revenue = rule("revenue_by_currency");
const hostile = "\u0000other";

let seq = 0;
const purchase = (currency: string, amount: number, user = "u1"): AcceptedEvent => ({
  event_id: `overflow-${seq++}`,
  user_id: user,
  session_id: `s-${user}`,
  event_type: "purchase_completed",
  timestamp: now - 10_000,
  received_at: now - 10_000,
  properties: { currency, amount },
});

describe("a group value spelled like the overflow group", () => {
  it("is its own group key, and reads back as the value", () => {
    const key = groupKey(revenue, purchase(hostile, 1));
    expect(key).not.toBe(OTHER_GROUP);
    expect(splitGroupKey(revenue, key)).toEqual({ "properties.currency": hostile });
    // NULs before "other" are values too, each distinct.
    const twice = groupKey(revenue, purchase(`\u0000${hostile}`, 1));
    expect(new Set([key, twice, OTHER_GROUP]).size).toBe(3);
    expect(splitGroupKey(revenue, twice)).toEqual({ "properties.currency": `\u0000${hostile}` });
  });

  it("leaves every other group's key as it was stored", () => {
    for (const value of ["EUR", "", "other", "\u0000", "\u0000othe", "\u0000other\u0000", "x\u0000other"])
      expect(groupKey(revenue, purchase(value, 1))).toBe(value);
  });

  it("is not merged into the overflow of a full window", () => {
    const into: Groups = new Map([["EUR", { c: 1 }]]);
    const more: Groups = new Map([
      [groupKey(revenue, purchase(hostile, 1)), { c: 2 }],
      ["USD", { c: 3 }],
    ]);
    mergeGroups(into, more, 2);
    // The cap sends USD to the overflow; the hostile value keeps its own group.
    expect(into.get(OTHER_GROUP)?.c).toBe(3);
  });

  it("is an ordinary group in GET /stats and on analytics.stats", async () => {
    const store = new MemoryWindowStore();
    const events = [purchase(hostile, 5, hostile), purchase("EUR", 7)];
    await aggregateBatch(
      "events.raw",
      events.map((event, offset) => ({ partition: 0, offset, event })),
      {
        store,
        rules: BUILT_IN_RULES,
        recent: new RecentEventIds(),
        publishLate: async () => {},
        now: () => now,
      },
    );
    const stats = (await readStats(
      store,
      BUILT_IN_RULES,
      { kind: "rule", rule_id: "revenue_by_currency", from: now - 5 * MIN, to: now },
      now,
    )) as { groups: { group: Record<string, string>; sum?: number }[] };
    expect(stats.groups).toContainEqual(
      expect.objectContaining({ group: { "properties.currency": hostile }, sum: 5 }),
    );
    expect(stats.groups.some((g) => g.group.other === "true")).toBe(false);

    // A user whose id is spelled so has a session like any other.
    const sessions = (await readStats(
      store,
      BUILT_IN_RULES,
      { kind: "rule", rule_id: "user_sessions", from: now - 5 * MIN, to: now },
      now,
    )) as { groups: { group: Record<string, string> }[] };
    expect(sessions.groups.map((g) => g.group.user_id).sort()).toEqual([hostile, "u1"]);

    const key = groupKey(revenue, events[0] as AcceptedEvent);
    const [message] = statsMessagesFor(
      { ruleKey: "revenue_by_currency", granularity: "m", windowStart: now - 30_000 },
      new Map([[key, { c: 1 }]]),
      [key],
      now,
      now,
    );
    expect(message?.group).toBe(hostile);
  });
});

import { describe, expect, it } from "vitest";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import { readStats } from "../../lib/pipeline/stats-service.ts";
import { type Groups, mergeGroups, OTHER_GROUP } from "../../lib/stream/partial.ts";
import { decodeGroups, MAX_GROUP_KEY_CHARS_PER_WINDOW } from "../../lib/stream/partial-items.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * A window kept up to 100,000 groups per source partition whatever their keys' length: distinct
 * long page URLs (up to 2,048 characters each) made a minute of page_views_by_url hundreds of
 * megabytes a partition, written as deltas and compacted into hundreds of 400 KB items. The keys'
 * characters are bounded too; groups beyond are counted under the overflow group, never dropped.
 */
const now = Date.UTC(2026, 11, 5, 12, 30, 30);
const url = (i: number) => `https://shop.example/p/${String(i).padStart(6, "0")}?${"q".repeat(1_960)}`;
const pageView = (i: number): AcceptedEvent => ({
  event_id: `budget-${i}`,
  user_id: `u${i % 50}`,
  session_id: `s${i % 50}`,
  event_type: "page_view",
  timestamp: now - 5_000,
  received_at: now - 5_000,
  page_url: url(i),
});

describe("the characters of a window's group keys", () => {
  it("are bounded when groups merge: the rest is counted under the overflow group", () => {
    const into: Groups = new Map([["a".repeat(1_000), { c: 1 }]]);
    const more: Groups = new Map(Array.from({ length: 9 }, (_, i) => [`${i}`.repeat(1_000), { c: 2 }]));
    mergeGroups(into, more, 100, 4_500);
    expect(into.size).toBe(5); // 4 keys of 1,000 characters, and the overflow
    expect(into.get(OTHER_GROUP)?.c).toBe(12);
    expect([...into.values()].reduce((n, p) => n + p.c, 0)).toBe(19);
  });

  it("hold a batch of distinct long URLs to the window's budget, counting every event", async () => {
    const store = new MemoryWindowStore(1);
    const pageViews = BUILT_IN_RULES.filter((r) => r.rule_id === "page_views_by_url");
    const events = Array.from({ length: 1_500 }, (_, i) => pageView(i)); // 3 million characters of URLs
    await aggregateBatch(
      "events.raw",
      events.map((event, offset) => ({ partition: 0, offset, event })),
      {
        store,
        rules: pageViews,
        recent: new RecentEventIds(),
        publishLate: async () => undefined,
        now: () => now,
      },
    );
    const stored = [...store.items.values()].filter((r) => r.rule.startsWith("page_views_by_url"));
    expect(stored.length).toBeGreaterThan(0);
    const groups: Groups = new Map();
    for (const r of stored) mergeGroups(groups, decodeGroups(r));
    expect(groups.get(OTHER_GROUP)?.c).toBeGreaterThan(0);
    let keyChars = 0;
    for (const key of groups.keys()) keyChars += key.length;
    expect(keyChars).toBeLessThanOrEqual(MAX_GROUP_KEY_CHARS_PER_WINDOW + OTHER_GROUP.length);

    const stats = (await readStats(
      store,
      pageViews,
      { kind: "rule", rule_id: "page_views_by_url", from: now - 60_000, to: now },
      now,
    )) as { count: number; groups: { group: Record<string, string>; count: number }[] };
    expect(stats.count).toBe(1_500);
    expect(stats.groups.some((g) => g.group.other === "true")).toBe(true);
  });
});

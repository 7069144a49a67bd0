import { describe, expect, it } from "vitest";
import { changedWindowsOf } from "../../lib/pipeline/publish-stats.ts";
import { foldRecords, type SourcedEvent } from "../../lib/stream/fold.ts";
import {
  encodePartial,
  mergeRecordGroups,
  mergeRecords,
  type PartialRecord,
} from "../../lib/stream/partial-items.ts";
import { figures } from "../../lib/stream/read.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";

const minute = Date.UTC(2026, 10, 24, 10, 30);

/** Delta records of a few batches over two partitions, as the aggregator writes them. */
function deltaRecords(): PartialRecord[] {
  const out: PartialRecord[] = [];
  let n = 0;
  for (let batch = 0; batch < 6; batch++) {
    const partition = batch % 2;
    const events: SourcedEvent[] = Array.from({ length: 300 }, (_, i) => {
      n++;
      return {
        partition,
        offset: batch * 1_000 + i,
        event: {
          event_id: `e${n}`,
          user_id: `user-${(n * 7919) % 700}`,
          session_id: `s-${n % 90}`,
          event_type: ["page_view", "click", "purchase"][n % 3] ?? "click",
          timestamp: minute + (n % 50) * 1_000,
          page_url: `https://shop.example/p/${n % 40}`,
          properties: { amount: (n % 17) * 1.25, currency: n % 2 ? "EUR" : "USD" },
          received_at: minute + 60_000,
        },
      };
    });
    for (const delta of foldRecords(events, BUILT_IN_RULES).values()) {
      if (delta.ref.granularity !== "m") continue;
      out.push(...encodePartial(delta.ref, partition, "d", batch * 1_000, delta.groups, minute));
    }
  }
  return out;
}

describe("stats publisher", () => {
  const records = deltaRecords();

  it("merges just the changed groups, to the same figures as merging the whole window", () => {
    for (const ruleKey of new Set(records.map((r) => r.rule))) {
      const window = records.filter((r) => r.rule === ruleKey);
      const whole = mergeRecords(window).get(minute);
      expect(whole, ruleKey).toBeDefined();
      const keys = [...(whole?.keys() ?? [])];
      const wanted = new Set(keys.filter((_, i) => i % 3 === 0));
      wanted.add("no-such-group");
      const picked = mergeRecordGroups(window, minute, wanted);
      expect([...picked.keys()].sort(), ruleKey).toEqual([...wanted].filter((k) => whole?.has(k)).sort());
      for (const [key, partial] of picked) {
        const reference = whole?.get(key);
        expect(reference).toBeDefined();
        if (reference) expect(figures(partial), `${ruleKey} ${key}`).toEqual(figures(reference));
      }
    }
  });

  it("names the windows and groups that stream images of delta items changed", () => {
    const images = records.map((r) => ({ ...r }) as Record<string, unknown>);
    const windows = changedWindowsOf([...images, undefined, { kind: "c", g: "m" }]);
    const perUser = windows.find((w) => w.ref.ruleKey === "active_sessions_per_user");
    expect(perUser?.groups.size).toBe(700);
    expect(windows.find((w) => w.ref.ruleKey === "events_by_type")?.groups).toEqual(
      new Set(["page_view", "click", "purchase"]),
    );
  });
});

import { afterEach, describe, expect, it } from "vitest";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import type { AggregationRule } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * The key budget of a window (a2db2d6) made each compaction's merge quadratic: every record it
 * merged (a compacted partial's chunks, up to 60 deltas) re-counted the characters of every group
 * merged so far, so compacting a minute of 100,000 users walked their keys once per record
 * (about 3× the merge's CPU). The budget is kept as the groups are merged.
 */
const now = Date.UTC(2026, 11, 5, 12, 30, 30);
const perUser: AggregationRule = {
  rule_id: "per_user",
  event_type: "*",
  metric: "count",
  group_by: ["user_id"],
  window: { type: "tumbling", size: "1m" },
  active: true,
};
const view = (i: number, user: string): AcceptedEvent => ({
  event_id: `cost-${i}`,
  user_id: user,
  event_type: "page_view",
  timestamp: now - 5_000,
  received_at: now - 5_000,
});

/** Counts the keys every Map's keys() hands out while it is installed. */
function countMapKeys(): { readonly count: () => number; readonly restore: () => void } {
  const original = Map.prototype.keys;
  let n = 0;
  Map.prototype.keys = function* keys(this: Map<unknown, unknown>) {
    for (const key of original.call(this)) {
      n++;
      yield key;
    }
  } as typeof original;
  return { count: () => n, restore: () => void (Map.prototype.keys = original) };
}

let counter: ReturnType<typeof countMapKeys> | undefined;
afterEach(() => counter?.restore());

describe("the key budget's cost in a compaction", () => {
  it("walks a window's group keys a bounded number of times, not once per merged record", async () => {
    const store = new MemoryWindowStore(1);
    const deps = {
      store,
      rules: [perUser],
      recent: new RecentEventIds(),
      publishLate: async () => undefined,
      now: () => now,
    };
    const users = 20_000;
    let offset = 0;
    // One slice with every user of the minute, then single events until the window is compacted.
    await aggregateBatch(
      "events.raw",
      Array.from({ length: users }, (_, i) => ({
        partition: 0,
        offset: offset++,
        event: view(i, `user-${i}`),
      })),
      deps,
    );
    counter = countMapKeys();
    let compactions = 0;
    for (let i = 0; i < 40 && compactions === 0; i++) {
      const outcome = await aggregateBatch(
        "events.raw",
        [{ partition: 0, offset: offset, event: view(users + i, `user-${i}`) }],
        deps,
      );
      offset++;
      compactions += outcome.compactions;
    }
    expect(compactions).toBeGreaterThan(0);
    // Linear: a few walks of the window's groups (decoding, budget, encoding), not one per record.
    expect(counter.count()).toBeLessThan(4 * users);
  });
});

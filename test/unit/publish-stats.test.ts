import { describe, expect, it, vi } from "vitest";
import { changedWindowsOf, SeenDeltas } from "../../lib/pipeline/publish-stats.ts";
import { foldRecords, type SourcedEvent } from "../../lib/stream/fold.ts";
import { HyperLogLog } from "../../lib/stream/hll.ts";
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
function deltaRecords(minute = Date.UTC(2026, 10, 24, 10, 30)): PartialRecord[] {
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

  it("names only the groups an extended delta changed since its last image published", () => {
    const ref = { ruleKey: "events_by_type", granularity: "m" as const, windowStart: minute };
    /** An image of the same delta item (offset 500) holding `counts` per event type. */
    const image = (counts: Record<string, number>, through: number) => {
      const groups = new Map(Object.entries(counts).map(([type, c]) => [type, { c }]));
      const [record] = encodePartial(ref, 0, "d", 500, groups, minute, true, through);
      return { ...record } as Record<string, unknown>;
    };
    const changed = (images: Record<string, unknown>[], seen?: SeenDeltas) => {
      const windows = changedWindowsOf(images, seen);
      return { windows, groups: [...(windows[0]?.groups ?? [])].sort() };
    };
    const seen = new SeenDeltas();
    const first = changed([image({ click: 1, view: 1 }, 509)], seen);
    expect(first.groups).toEqual(["click", "view"]);
    seen.remember(first.windows.latest);
    // The next slice extended the delta: click and buy changed, view did not.
    const extended = image({ click: 2, view: 1, buy: 1 }, 519);
    expect(changed([extended], seen).groups).toEqual(["buy", "click"]);
    // Not remembered (its batch failed to publish): the retry names the same groups.
    const retried = changed([extended], seen);
    expect(retried.groups).toEqual(["buy", "click"]);
    seen.remember(retried.windows.latest);
    // Delivered again after it was published: nothing changed, no window to publish.
    expect(changed([extended], seen).windows).toHaveLength(0);
    // Two extensions in one batch: each compared with the one before it.
    const twice = changed(
      [image({ click: 3, view: 1, buy: 1 }, 529), image({ click: 3, view: 2, buy: 1 }, 539)],
      seen,
    );
    expect(twice.groups).toEqual(["click", "view"]);
    // Without what was published before (a cold start), every group of the image.
    expect(changed([extended]).groups).toEqual(["buy", "click", "view"]);
  });

  /** Sketches built from stored text while `read` runs: what decoding a group costs. */
  const sketchesDecodedBy = (read: () => void): number => {
    const fromText = vi.spyOn(HyperLogLog, "fromText");
    try {
      read();
      return fromText.mock.calls.length;
    } finally {
      fromText.mockRestore();
    }
  };

  it("decodes only the groups a reader wants, not every group of the window's items", () => {
    // A minute of its own: no record of it was decoded (and memoized) by another test.
    const start = Date.UTC(2026, 10, 24, 11, 0);
    const window = deltaRecords(start).filter((r) => r.rule === "active_sessions_per_user");
    expect(window.length).toBeGreaterThan(1);
    const oneUser = new Set(["user-7"]);
    // One group of each of the window's items, where a per-user window holds 700.
    expect(sketchesDecodedBy(() => mergeRecordGroups(window, start, oneUser))).toBeLessThanOrEqual(
      window.length,
    );
    expect(sketchesDecodedBy(() => mergeRecords(window, oneUser))).toBe(0); // decoded once, kept
    const whole = mergeRecords(window).get(start);
    expect(figures(mergeRecordGroups(window, start, oneUser).get("user-7") ?? { c: 0 })).toEqual(
      figures(whole?.get("user-7") ?? { c: -1 }),
    );
  });

  it("finds the groups an extended delta changed without decoding either image", () => {
    const start = Date.UTC(2026, 10, 24, 11, 1);
    const ref = { ruleKey: "active_sessions_per_user", granularity: "m" as const, windowStart: start };
    const users = (n: number, extra: Record<string, number>) =>
      new Map(
        [...Array.from({ length: n }, (_, i) => [`user-${i}`, 1] as const), ...Object.entries(extra)].map(
          ([user, sessions]) => {
            const h = new HyperLogLog();
            for (let s = 0; s < sessions; s++) h.add(`${user}-session-${s}`);
            return [user, { c: sessions, h }];
          },
        ),
      );
    const image = (groups: ReturnType<typeof users>, through: number) => {
      const [record] = encodePartial(ref, 0, "d", 500, groups, start, true, through);
      return { ...record } as Record<string, unknown>;
    };
    const seen = new SeenDeltas();
    seen.remember(changedWindowsOf([image(users(500, {}), 509)], seen).latest);
    const extended = image(users(500, { "user-3": 2, "user-900": 1 }), 519);
    let windows: ReturnType<typeof changedWindowsOf> = Object.assign([], { latest: new Map() });
    expect(sketchesDecodedBy(() => (windows = changedWindowsOf([extended], seen)))).toBe(0);
    expect([...(windows[0]?.groups ?? [])].sort()).toEqual(["user-3", "user-900"]);
  });
});

import { describe, expect, it, vi } from "vitest";
import type { WindowStore } from "../../lib/adapters/window-store.ts";
import { changedWindowsOf, publishChangedWindows, SeenDeltas } from "../../lib/pipeline/publish-stats.ts";
import { statsMessagesFor, statsRecordsFor } from "../../lib/pipeline/stats-messages.ts";
import { HyperLogLog } from "../../lib/stream/hll.ts";
import {
  addValue,
  type GroupPartial,
  type Groups,
  groupsDecodedSoFar,
  newStats,
} from "../../lib/stream/partial.ts";
import { encodePartial, type PartialRecord } from "../../lib/stream/partial-items.ts";

/**
 * The stats publisher and windows of long group keys: a per-page window holds up to ~1,000 page
 * URLs of 2,000 characters per partition (MAX_GROUP_KEY_CHARS_PER_WINDOW), and each group's
 * message carries its key three times (Kafka key, `window_id`, `group`). A stream batch of such
 * deltas made hundreds of MB of messages; the publisher built all of them (stringifying every
 * message, which escaped each key twice) before sending the first, and took a function of 512 MB
 * past its memory and timeout (docs/performance.md, session 18).
 */
const KEY_CHARS = 2_000;
const url = (window: number, i: number) => {
  const head = `https://shop.example/search/${window}-${i}?q=`;
  return head + "x".repeat(KEY_CHARS - head.length);
};

/** Delta records of `windows` minutes from `start`, each holding `groups` URLs over 2 partitions. */
function longKeyDeltas(start: number, windows: number, groups: number): PartialRecord[] {
  const out: PartialRecord[] = [];
  for (let w = 0; w < windows; w++)
    for (let p = 0; p < 2; p++) {
      const held: Groups = new Map();
      for (let i = p; i < groups; i += 2) held.set(url(w, i), { c: 1 + (i % 4) });
      const ref = {
        ruleKey: "page_views_by_url",
        granularity: "m" as const,
        windowStart: start + w * 60_000,
      };
      out.push(...encodePartial(ref, p, "d", 100 * w, held, start, true, 100 * w + 99));
    }
  return out;
}

const storeOf = (records: readonly PartialRecord[]) =>
  ({
    read: async (_rule: string, _g: string, starts: readonly number[]) =>
      records.filter((r) => starts.includes(r.ws)).map((r) => ({ ...r, b: new Uint8Array(r.b) })),
  }) as unknown as WindowStore;

describe("stats publisher, windows of long group keys", () => {
  it("escapes each key once and sends each produce request as soon as it is full", async () => {
    const start = Date.UTC(2026, 10, 24, 13, 0);
    const windows = 3;
    const groups = 60;
    const records = longKeyDeltas(start, windows, groups);
    const changed = changedWindowsOf(records.map((r) => ({ ...r })));
    expect(changed.map((w) => w.groups.size)).toEqual([groups, groups, groups]);
    const decodedBefore = groupsDecodedSoFar();
    const requests: { messages: number; decodedSoFar: number }[] = [];
    // What JSON escaping went over: every character JSON.stringify wrote while publishing.
    const stringify = vi.spyOn(JSON, "stringify");
    let published: number;
    let escapedChars = 0;
    try {
      published = await publishChangedWindows(changed, {
        store: storeOf(records),
        // A window's messages (~6 KB each) fill several requests.
        maxMessageBytes: 64 * 1024,
        now: () => start + 60_000,
        send: async (messages) => {
          requests.push({ messages: messages.length, decodedSoFar: groupsDecodedSoFar() - decodedBefore });
        },
      });
    } finally {
      for (const r of stringify.mock.results) if (typeof r.value === "string") escapedChars += r.value.length;
      stringify.mockRestore();
    }
    expect(published).toBe(windows * groups);
    expect(requests.reduce((n, r) => n + r.messages, 0)).toBe(windows * groups);
    // Once per key (a quarter of the key as slack for the rest of the message): stringifying
    // each message escaped every key twice, 2 × 2,000 characters a message.
    expect(escapedChars).toBeLessThan(windows * groups * KEY_CHARS * 1.25);
    // The first request leaves before the other windows are merged: the publisher holds one
    // request of messages, not the batch's. Composing them all first had decoded every window.
    expect(requests.length).toBeGreaterThan(windows * 2);
    expect(requests[0]?.decodedSoFar).toBeLessThanOrEqual(groups);
  });

  it("produces exactly the bytes of JSON.stringify of each message, hostile keys too", () => {
    const window = {
      ruleKey: "rule-é@v2",
      granularity: "m" as const,
      windowStart: Date.UTC(2026, 10, 24, 13, 5),
    };
    const sketch = new HyperLogLog();
    for (let i = 0; i < 50; i++) sketch.add(`u${i}`);
    const big = newStats(1e308);
    addValue(big, 1e308);
    const fractional = newStats(0.1);
    addValue(fractional, -2.5e-7);
    const partials: GroupPartial[] = [
      { c: 1 },
      { c: 2, h: sketch },
      { c: 2, v: big },
      { c: 3, v: fractional, h: sketch },
    ];
    const keys = [
      "page_view",
      url(9, 1),
      '"quoted" \\ back\\slash',
      "nul\u0000 and \u001f and \u007f",
      "lone \ud800 high",
      "lone \udc00 low",
      "pair \ud83d\ude00 ok",
      "\u2028\u2029 line separators",
      "__proto__",
      "\u0000\u0000other", // a value spelled as the overflow group, escaped with one more NUL
      "ünïcødé ✓ 日本",
      "",
    ];
    const merged: Groups = new Map(keys.map((k, i) => [k, partials[i % partials.length] as GroupPartial]));
    const wanted = [...keys, "\u0000other", "not-merged"];
    const now = window.windowStart + 61_000;
    const expected = statsMessagesFor(window, merged, wanted, now - 500, now);
    const produced = [...statsRecordsFor(window, merged, wanted, now - 500, now)];
    expect(produced).toHaveLength(keys.length);
    expect(produced.map((m) => m.value.toString("utf8"))).toEqual(expected.map((m) => JSON.stringify(m)));
    for (const [i, m] of produced.entries()) {
      // Byte for byte: a lone surrogate is written as kafkajs wrote the string (U+FFFD in UTF-8).
      expect(m.value.equals(Buffer.from(JSON.stringify(expected[i])))).toBe(true);
      expect(m.key.equals(Buffer.from(expected[i]?.window_id ?? ""))).toBe(true);
    }
  });

  it("publishes the messages statsMessagesFor describes, each window's as of its read", async () => {
    const start = Date.UTC(2026, 10, 24, 13, 10);
    const records = longKeyDeltas(start, 2, 10);
    const changed = changedWindowsOf(records.map((r) => ({ ...r })));
    const sent: unknown[] = [];
    let clock = start + 60_000;
    await publishChangedWindows(changed, {
      store: storeOf(records),
      maxMessageBytes: 1024 * 1024,
      now: () => clock++,
      send: async (messages) => {
        for (const m of messages) sent.push(JSON.parse(m.value.toString("utf8")));
      },
    });
    const updated = new Set(sent.map((m) => (m as { updated_at: string }).updated_at));
    expect(updated.size).toBe(2); // one read each
    const expected = changed.flatMap((w, i) =>
      statsMessagesFor(
        w.ref,
        new Map([...w.groups].map((g) => [g, { c: 1 + (Number(g.split("-")[1]?.split("?")[0]) % 4) }])),
        w.groups,
        w.writtenAt,
        start + 60_000 + i,
      ),
    );
    expect(sent).toEqual(expected);
  });

  it("remembers published images up to a number of bytes, not only of groups", () => {
    const start = Date.UTC(2026, 10, 24, 13, 20);
    // Three delta chunks of ~125 groups of 2,000-character keys: about 256 KB each.
    const images = [0, 1, 2].map((w) => longKeyDeltas(start + w * 60_000, 1, 500)[0] as PartialRecord);
    const seen = new SeenDeltas(200_000, 600_000);
    for (const image of images) seen.remember(changedWindowsOf([{ ...image }], seen).latest);
    const held = images.map((r) => seen.get(`${r.pk}|${r.sk}`) !== undefined);
    // ~375 groups are far below 200,000, but ~770 KB of them are not below 600 KB: the oldest goes
    // (its next image then names all its groups, as after a cold start).
    expect(held).toEqual([false, true, true]);
  });
});

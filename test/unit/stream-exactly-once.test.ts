import { describe, expect, it } from "vitest";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import type { SourcedEvent } from "../../lib/stream/fold.ts";
import { HLL_STANDARD_ERROR } from "../../lib/stream/hll.ts";
import { mergeRecords } from "../../lib/stream/partial-items.ts";
import { figures, mergeWindows } from "../../lib/stream/read.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/** Seeded PRNG (mulberry32): the same stream every run. */
function rng(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const base = Date.UTC(2026, 10, 22, 10, 0, 0);
const types = ["page_view", "click", "purchase_completed"];

function stream(n: number, seed: number): SourcedEvent[] {
  const r = rng(seed);
  const offsets = new Map<number, number>();
  const out: SourcedEvent[] = [];
  for (let i = 0; i < n; i++) {
    const user = `u${Math.floor(r() * 400)}`;
    const partition = Number(user.slice(1)) % 3;
    const offset = offsets.get(partition) ?? 0;
    offsets.set(partition, offset + 1);
    const event: AcceptedEvent = {
      event_id: `e${i}`,
      user_id: user,
      session_id: `s${Math.floor(r() * 900)}`,
      event_type: types[Math.floor(r() * types.length)] ?? "click",
      // ordered in time with jitter below the allowed lateness: nothing is late
      timestamp: base + i * 100 + Math.floor(r() * 30_000),
      page_url: `/p${Math.floor(r() * 20)}`,
      properties: { amount: Math.round(r() * 10_000) / 100, currency: r() < 0.5 ? "EUR" : "USD" },
      received_at: base + i * 100,
    };
    out.push({ partition, offset, event });
  }
  return out;
}

function reference(records: readonly SourcedEvent[]) {
  const byType = new Map<
    string,
    { count: number; sum: number; min: number; max: number; users: Set<string> }
  >();
  for (const { event } of records) {
    const t = byType.get(event.event_type) ?? {
      count: 0,
      sum: 0,
      min: Infinity,
      max: -Infinity,
      users: new Set(),
    };
    const amount = event.properties?.amount as number;
    t.count++;
    t.sum += amount;
    t.min = Math.min(t.min, amount);
    t.max = Math.max(t.max, amount);
    t.users.add(event.user_id);
    byType.set(event.event_type, t);
  }
  return byType;
}

/** A rule's groups over every stored window of a granularity, merged as readers merge them. */
function merged(store: MemoryWindowStore, rule: string, g: "m" | "h" = "m") {
  const records = [...store.items.values()].filter((r) => r.rule === rule && r.g === g);
  return mergeWindows(mergeRecords(records).values());
}

async function totals(store: MemoryWindowStore) {
  return merged(store, "events_by_type");
}

const deps = (store: MemoryWindowStore, late: SourcedEvent[] = []) => ({
  store,
  rules: BUILT_IN_RULES,
  recent: new RecentEventIds(),
  publishLate: async (l: readonly SourcedEvent[]) => {
    late.push(...l);
  },
});

function batches(records: readonly SourcedEvent[], size: number): SourcedEvent[][] {
  const out: SourcedEvent[][] = [];
  for (let i = 0; i < records.length; i += size) out.push(records.slice(i, i + size));
  return out;
}

async function expectMatchesReference(store: MemoryWindowStore, records: readonly SourcedEvent[]) {
  const ref = reference(records);
  const got = await totals(store);
  for (const [type, r] of ref) {
    const f = figures(got.get(type), "amount");
    expect(f.count, type).toBe(r.count);
    expect(f.sum).toBeCloseTo(r.sum, 6);
    expect(f.min).toBe(r.min);
    expect(f.max).toBe(r.max);
    expect(Math.abs((f.unique_users ?? 0) - r.users.size) / r.users.size).toBeLessThan(
      3 * HLL_STANDARD_ERROR,
    );
  }
}

describe("exactly-once effect on aggregates", () => {
  const records = stream(6_000, 42);

  it("matches a reference computed from the input", async () => {
    const store = new MemoryWindowStore();
    for (const b of batches(records, 500)) await aggregateBatch("events.raw", b, deps(store));
    await expectMatchesReference(store, records);
  });

  it("merges only the groups a reader asks for, each exactly as the full merge has it", async () => {
    const store = new MemoryWindowStore();
    for (const b of batches(records, 500)) await aggregateBatch("events.raw", b, deps(store));
    const stored = [...store.items.values()].filter((r) => r.rule === "events_by_type" && r.g === "m");
    const full = mergeRecords(stored);
    const only = mergeRecords(stored, new Set(["click", "no_such_type"]));
    expect([...only.keys()]).toEqual([...full.keys()]);
    for (const [start, groups] of only) {
      expect([...groups.keys()]).toEqual(full.get(start)?.has("click") ? ["click"] : []);
      expect(figures(groups.get("click"), "amount")).toEqual(
        figures(full.get(start)?.get("click"), "amount"),
      );
    }
    expect(mergeWindows(only.values()).get("click")?.c).toBe(
      records.filter((r) => r.event.event_type === "click").length,
    );
  });

  it("ignores duplicated event_ids (same batch and later batches)", async () => {
    const store = new MemoryWindowStore();
    const d = deps(store);
    const withDuplicates: SourcedEvent[] = [];
    const next = new Map<number, number>();
    for (const r of records) {
      const copies = r.event.event_id.endsWith("7") ? 2 : 1;
      for (let c = 0; c < copies; c++) {
        const offset = next.get(r.partition) ?? 0;
        next.set(r.partition, offset + 1);
        withDuplicates.push({ ...r, offset });
      }
    }
    for (const b of batches(withDuplicates, 333)) await aggregateBatch("events.raw", b, d);
    await expectMatchesReference(store, records);
  });

  it("changes no number when batches are replayed, with other boundaries", async () => {
    const store = new MemoryWindowStore();
    for (const b of batches(records, 500)) await aggregateBatch("events.raw", b, deps(store));
    const before = JSON.stringify([...store.items.entries()].sort());
    for (const b of batches(records, 777)) await aggregateBatch("events.raw", b, deps(store));
    expect(JSON.stringify([...store.items.entries()].sort())).toBe(before);
    await expectMatchesReference(store, records);
  });

  it("ends with the reference numbers when the handler crashes mid-batch and the batch is retried", async () => {
    const store = new MemoryWindowStore();
    for (const [i, b] of batches(records, 500).entries()) {
      if (i % 3 === 1) {
        store.crashAt = store.applies + 2; // dies after committing some of this batch's slices
        await expect(aggregateBatch("events.raw", b, deps(store))).rejects.toThrow("crash");
        store.crashAt = Number.POSITIVE_INFINITY;
      }
      await aggregateBatch("events.raw", b, deps(store));
    }
    await expectMatchesReference(store, records);
  });
});

describe("late events", () => {
  it("leave closed windows unchanged, are counted as late and published", async () => {
    const store = new MemoryWindowStore();
    const late: SourcedEvent[] = [];
    const ev = (offset: number, ts: number): SourcedEvent => ({
      partition: 0,
      offset,
      event: { event_id: `l${offset}`, user_id: "u", event_type: "click", timestamp: ts, received_at: ts },
    });
    // Processed as they arrive (a minute two days older than the clock is past its retention, and
    // the aggregator does not write it).
    const asTheyArrive = { ...deps(store, late), now: () => base + 10 * 60_000 };
    await aggregateBatch("events.raw", [ev(0, base), ev(1, base + 10 * 60_000)], asTheyArrive);
    const window = async () =>
      figures(
        mergeRecords([...store.items.values()].filter((r) => r.rule === "events_by_type" && r.g === "m"))
          .get(base)
          ?.get("click"),
      ).count;
    expect(await window()).toBe(1);
    // 10 minutes behind the newest event: its window closed (watermark = max - 2 min).
    await aggregateBatch("events.raw", [ev(2, base + 5_000)], asTheyArrive);
    expect(await window()).toBe(1);
    expect(late.map((l) => l.offset)).toEqual([2]);
    expect(merged(store, "late_events").get("click")?.c).toBe(1);
    // Within the allowed lateness still counts.
    await aggregateBatch("events.raw", [ev(3, base + 9 * 60_000)], asTheyArrive);
    expect(late).toHaveLength(1);
  });
});

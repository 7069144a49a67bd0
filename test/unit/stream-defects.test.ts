import { describe, expect, it } from "vitest";
import type { RulesStore } from "../../lib/adapters/rules-store.ts";
import { readPlan } from "../../lib/adapters/window-store.ts";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import { RulesService } from "../../lib/pipeline/rules-service.ts";
import { readStats } from "../../lib/pipeline/stats-service.ts";
import type { SourcedEvent } from "../../lib/stream/fold.ts";
import { type AggregationRule, BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * Regression tests for the wrong-number and data-loss defects of issue 8, each through the
 * pipeline's public entry points (aggregateBatch → store → readStats), as a user would see them.
 * Every one of these failed on the stream core before the delta-item rewrite.
 */
const MIN = 60_000;
const now = Date.UTC(2026, 10, 24, 12, 30, 30);

type Stats = Record<string, unknown> & {
  count: number;
  sum?: number;
  avg?: number;
  late_events?: number;
  granularity?: string;
  sessions?: number;
  groups?: { group: Record<string, string>; count: number; avg?: number; sum?: number; unique?: number }[];
};

let seq = 0;
function ev(partial: Partial<AcceptedEvent> & { timestamp?: number }): AcceptedEvent {
  const ts = partial.timestamp ?? now - 10_000;
  return {
    event_id: `e${seq++}`,
    user_id: "u1",
    event_type: "page_view",
    received_at: Math.max(ts, now - 10_000),
    ...partial,
    timestamp: ts,
  };
}

function sourced(events: readonly AcceptedEvent[], partition = 0, firstOffset = 0): SourcedEvent[] {
  return events.map((event, i) => ({ partition, offset: firstOffset + i, event }));
}

function deps(
  store: MemoryWindowStore,
  rules: readonly AggregationRule[] = BUILT_IN_RULES,
  late: SourcedEvent[] = [],
) {
  return {
    store,
    rules,
    recent: new RecentEventIds(),
    publishLate: async (l: readonly SourcedEvent[]) => {
      late.push(...l);
    },
    // The events' clock: a minute two days older than the wall clock is past its retention,
    // and the aggregator does not write it.
    now: () => now,
  };
}

const byType = (
  store: MemoryWindowStore,
  event_type: string,
  extra: Record<string, unknown> = {},
  rules = BUILT_IN_RULES,
) =>
  readStats(
    store,
    rules,
    { kind: "event_type", event_type, interval: "5m", intervalMs: 5 * MIN, group_by: [], ...extra },
    now,
  ) as Promise<Stats>;
const byRule = (
  store: MemoryWindowStore,
  rules: readonly AggregationRule[],
  rule_id: string,
  from: number,
  to: number,
  at = now,
) => readStats(store, rules, { kind: "rule", rule_id, from, to }, at) as Promise<Stats>;

describe("issue 8: hostile keys", () => {
  it("8.1 counts groups named __proto__ and constructor, and pollutes nothing", async () => {
    const store = new MemoryWindowStore();
    const events = ["__proto__", "constructor", "__proto__"].map((v) =>
      ev({
        user_id: v,
        event_type: "purchase_completed",
        page_url: v,
        properties: { amount: 10, currency: v },
      }),
    );
    await aggregateBatch("events.raw", sourced(events), deps(store));
    await aggregateBatch(
      "events.raw",
      sourced([ev({ event_type: "purchase_completed", properties: { amount: 1, currency: "EUR" } })], 0, 3),
      deps(store),
    );
    const stats = await byType(store, "purchase_completed", { field: "properties.amount" });
    expect(stats.count).toBe(4);
    expect(stats.sum).toBe(31);
    const revenue = await byType(store, "purchase_completed", { group_by: ["properties.currency"] });
    const sums = (revenue.groups ?? []).map((g) => [g.group["properties.currency"], g.sum]);
    expect(sums).toEqual([
      ["__proto__", 20],
      ["constructor", 10],
      ["EUR", 1],
    ]);
    expect(({} as Record<string, unknown>).c).toBeUndefined();
  });

  it("8.17 keeps a group whose value contains NUL, with its unique count", async () => {
    const store = new MemoryWindowStore();
    const rule: AggregationRule = {
      rule_id: "uniq_by_url",
      event_type: "page_view",
      metric: "unique",
      field: "user_id",
      group_by: ["page_url"],
      window: { type: "tumbling", size: "1m" },
      active: true,
    };
    const rules = [...BUILT_IN_RULES, rule];
    const events = ["a", "b", "c"].map((u) => ev({ user_id: u, page_url: "/x\u0000y" }));
    await aggregateBatch("events.raw", sourced(events), deps(store, rules));
    const stats = await byRule(store, rules, "uniq_by_url", now - 5 * MIN, now);
    expect(stats.groups?.[0]).toMatchObject({ group: { page_url: "/x\u0000y" }, count: 3, unique: 3 });
  });

  it("8.17 tracks more than 32 numeric properties", async () => {
    const store = new MemoryWindowStore();
    const properties = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`p${i}`, i]));
    await aggregateBatch("events.raw", sourced([ev({ event_type: "wide", properties })]), deps(store));
    const stats = await byType(store, "wide", { field: "properties.p39" });
    expect(stats.sum).toBe(39);
  });
});

describe("issue 8: wrong numbers", () => {
  it("8.4 a replay of a committed batch on a fresh container does not count its trailing duplicates again", async () => {
    const store = new MemoryWindowStore();
    const a = ev({ event_type: "dup_probe" });
    const b = ev({ event_type: "dup_probe" });
    const batch = sourced([a, b, { ...a }]);
    await aggregateBatch("events.raw", batch, deps(store));
    expect((await byType(store, "dup_probe")).count).toBe(2);
    await aggregateBatch("events.raw", batch, deps(store)); // new RecentEventIds: a fresh container
    expect((await byType(store, "dup_probe")).count).toBe(2);
  });

  it("8.5 one event from the future does not make the partition's correct events late", async () => {
    const store = new MemoryWindowStore();
    const late: SourcedEvent[] = [];
    const future = ev({ event_type: "skew", timestamp: now + 4 * MIN, received_at: now - 5_000 });
    const correct = [
      ev({ event_type: "skew", timestamp: now - 20_000 }),
      ev({ event_type: "skew", timestamp: now - 15_000 }),
    ];
    await aggregateBatch("events.raw", sourced([future, ...correct]), deps(store, BUILT_IN_RULES, late));
    expect(late).toHaveLength(0);
    expect((await byType(store, "skew")).late_events).toBe(0);
  });

  it("8.6 avg divides by the events that carry the field", async () => {
    const store = new MemoryWindowStore();
    const rule: AggregationRule = {
      rule_id: "avg_amount",
      event_type: "checkout",
      metric: "avg",
      field: "properties.amount",
      group_by: ["properties.currency"],
      window: { type: "tumbling", size: "1m" },
      active: true,
    };
    const rules = [...BUILT_IN_RULES, rule];
    const events = [
      ev({ event_type: "checkout", properties: { amount: 10, currency: "EUR" } }),
      ev({ event_type: "checkout", properties: { amount: 30, currency: "EUR" } }),
      ev({ event_type: "checkout", properties: { currency: "EUR" } }),
      ev({ event_type: "checkout", properties: { currency: "EUR" } }),
    ];
    await aggregateBatch("events.raw", sourced(events), deps(store, rules));
    const stats = await byRule(store, rules, "avg_amount", now - 5 * MIN, now);
    expect(stats.groups?.[0]).toMatchObject({ count: 4, sum: 40, avg: 20 });
  });

  it("8.7 group_by reads only a rule of the requested type and field", async () => {
    const store = new MemoryWindowStore();
    const events = [
      ev({ user_id: "ann", event_type: "page_view" }),
      ev({ user_id: "ann", event_type: "page_view" }),
      ev({ user_id: "ann", event_type: "click" }),
    ];
    await aggregateBatch("events.raw", sourced(events), deps(store));
    // No rule counts clicks by user: the built-in per-user rule counts every type.
    await expect(byType(store, "click", { group_by: ["user_id"] })).rejects.toThrow(/no active rule/);
    // revenue_by_currency sums properties.amount: it cannot answer for another field.
    await expect(
      byType(store, "purchase_completed", { group_by: ["properties.currency"], field: "properties.tax" }),
    ).rejects.toThrow(/no active rule/);
  });

  it("8.9 rule ranges are half-open: an event at `to` is not in [from, to)", async () => {
    const store = new MemoryWindowStore();
    const t0 = Math.floor(now / MIN) * MIN - 10 * MIN;
    const events = [
      ev({ event_type: "edge", timestamp: t0 + 30_000 }),
      ev({ event_type: "edge", timestamp: t0 + 2 * MIN + 5_000 }),
    ];
    await aggregateBatch("events.raw", sourced(events), deps(store));
    const stats = await byRule(store, BUILT_IN_RULES, "events_by_type", t0, t0 + 2 * MIN);
    expect(stats.count).toBe(1);
  });

  it("8.10 late events are counted by arrival, so interval=1m shows them", async () => {
    const store = new MemoryWindowStore();
    const late: SourcedEvent[] = [];
    const newest = ev({ event_type: "tardy", timestamp: now - 5_000, received_at: now - 5_000 });
    const tardy = ev({ event_type: "tardy", timestamp: now - 10 * MIN, received_at: now - 2_000 });
    await aggregateBatch("events.raw", sourced([newest, tardy]), deps(store, BUILT_IN_RULES, late));
    expect(late).toHaveLength(1);
    const stats = await readStats(
      store,
      BUILT_IN_RULES,
      { kind: "event_type", event_type: "tardy", interval: "1m", intervalMs: MIN, group_by: [] },
      now,
    );
    expect((stats as Stats).late_events).toBe(1);
  });

  it("8.11 a short range older than the minute retention reads the hourly roll-ups", async () => {
    const store = new MemoryWindowStore();
    const old = now - 3 * 86_400_000;
    await aggregateBatch(
      "events.raw",
      sourced([ev({ event_type: "old", timestamp: old, received_at: old })]),
      deps(store),
    );
    const stats = await byRule(store, BUILT_IN_RULES, "events_by_type", old - 10 * MIN, old + 10 * MIN);
    expect(stats.granularity).toBe("h");
    expect(stats.count).toBe(1);
  });

  it("8.12 sessions of users beyond 2,000 in a minute are not dropped", async () => {
    const store = new MemoryWindowStore();
    const events = Array.from({ length: 2_500 }, (_, i) =>
      ev({ user_id: `user-${i}`, session_id: `s-${i}`, event_type: "click" }),
    );
    await aggregateBatch("events.raw", sourced(events), deps(store));
    const stats = await byRule(store, BUILT_IN_RULES, "user_sessions", now - 30 * MIN, now);
    expect(stats.sessions).toBe(2_500);
  });
});

describe("issue 8: reads", () => {
  it("8.8 a rule read without a range applies the rule's window: active_users is the last 5 minutes", async () => {
    const store = new MemoryWindowStore();
    const early = ev({
      user_id: "early",
      event_type: "visit",
      timestamp: now - 30 * MIN,
      received_at: now - 30 * MIN,
    });
    const recent = ev({ user_id: "recent", event_type: "visit", timestamp: now - 60_000 });
    await aggregateBatch("events.raw", sourced([early, recent]), deps(store));
    const stats = (await readStats(
      store,
      BUILT_IN_RULES,
      { kind: "rule", rule_id: "active_users" },
      now,
    )) as Stats & {
      unique_users?: number;
    };
    expect(stats.count).toBe(1);
    expect(stats.unique_users).toBe(1);
  });

  it("8.14 interval=24h with group_by is a bounded number of queries", async () => {
    const store = new MemoryWindowStore();
    await aggregateBatch(
      "events.raw",
      sourced([ev({ event_type: "page_view", page_url: "/a" })]),
      deps(store),
    );
    let queries = 0;
    const read = store.read.bind(store);
    store.read = async (ruleKey, granularity, starts, partition) => {
      queries += readPlan(ruleKey, granularity, starts, partition).length;
      return read(ruleKey, granularity, starts, partition);
    };
    const stats = await byType(store, "page_view", {
      interval: "24h",
      intervalMs: 1_440 * MIN,
      group_by: ["page_url"],
    });
    expect(stats.count).toBe(1);
    // 3 rules × (hours: ≤ 2 day buckets + minutes: ≤ 2 hour buckets), whatever the partitions
    expect(queries).toBeLessThanOrEqual(12);
  });
});

describe("issue 8.13: rule versions", () => {
  it("an update that changes what is stored does not read the old windows under the new definition", async () => {
    const table = new Map<string, AggregationRule>();
    const rulesStore: RulesStore = {
      list: async () => [...table.values()],
      get: async (id) => table.get(id),
      create: async (r) => void table.set(r.rule_id, r),
      replace: async (r) => void table.set(r.rule_id, r),
    };
    const service = new RulesService(rulesStore);
    const body = {
      rule_id: "checkout_by",
      event_type: "checkout",
      metric: "count",
      group_by: ["properties.currency"],
      window: { type: "tumbling", size: "1m" },
    };
    expect((await service.create(body)).ok).toBe(true);
    const store = new MemoryWindowStore();
    const rulesNow = async () => [...BUILT_IN_RULES, ...(await rulesStore.list())];
    const checkout = (currency: string, country: string) =>
      ev({ event_type: "checkout", properties: { currency, country } });
    await aggregateBatch(
      "events.raw",
      sourced([checkout("EUR", "FR"), checkout("USD", "US")]),
      deps(store, await rulesNow()),
    );
    const updated = await service.update("checkout_by", { ...body, group_by: ["properties.country"] });
    expect(updated.ok && updated.value.version).toBe(2);
    await aggregateBatch("events.raw", sourced([checkout("EUR", "DE")], 0, 2), deps(store, await rulesNow()));
    const stats = await byRule(store, await rulesNow(), "checkout_by", now - 5 * MIN, now);
    expect(stats.groups?.map((g) => [g.group["properties.country"], g.count])).toEqual([["DE", 1]]);
    // A change of window only keeps the version (and the data).
    const renamed = await service.update("checkout_by", {
      ...body,
      group_by: ["properties.country"],
      window: { type: "tumbling", size: "5m" },
    });
    expect(renamed.ok && renamed.value.version).toBe(2);
  });
});

/** Every method by which a WindowStore writes. */
const WRITES = new Set(["apply", "putFence", "putDeltas", "discard"]);

describe("issue 8.16: events.late after the commit", () => {
  it("publishes a late event once when the handler dies at its first write and the batch is retried", async () => {
    const store = new MemoryWindowStore();
    const late: SourcedEvent[] = [];
    await aggregateBatch(
      "events.raw",
      sourced([ev({ event_type: "l", timestamp: now - 5_000 })]),
      deps(store, BUILT_IN_RULES, late),
    );
    const batch = sourced([ev({ event_type: "l", timestamp: now - 20 * MIN })], 0, 1);
    // Dies at the first write of the next invocation, whatever the store calls it.
    let armed = true;
    const crashing = new Proxy(store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (armed && WRITES.has(String(prop)) && typeof value === "function")
          return () => {
            armed = false;
            return Promise.reject(new Error("crash"));
          };
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    await expect(aggregateBatch("events.raw", batch, deps(crashing, BUILT_IN_RULES, late))).rejects.toThrow(
      "crash",
    );
    await aggregateBatch("events.raw", batch, deps(store, BUILT_IN_RULES, late));
    expect(late.map((l) => l.offset)).toEqual([1]);
  });
});

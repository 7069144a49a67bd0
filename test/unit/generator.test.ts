import { describe, expect, it } from "vitest";
import { EventInputSchema, parseIngestBody } from "../../lib/contract/event.ts";
import { parseDurationMs, parseGeneratorArgs } from "../../scripts/generator/options.ts";
import { LatencyHistogram, Pacer } from "../../scripts/generator/pacing.ts";
import { EVENT_TYPES, type GeneratedEvent, TrafficModel } from "../../scripts/generator/traffic.ts";

const NOW = Date.parse("2026-11-24T12:00:00Z");

/** `count` events, one millisecond apart (the clock the runner would pass). */
function generate(options: ConstructorParameters<typeof TrafficModel>[0], count: number): GeneratedEvent[] {
  const model = new TrafficModel(options);
  return Array.from({ length: count }, (_, i) => model.next(NOW + i));
}

describe("traffic model", () => {
  it("produces events that the ingest contract accepts, in batches of 10,000", () => {
    const events = generate({ seed: 1, users: 500, lateRatio: 0.1, duplicateRatio: 0.1 }, 10_000);
    for (const { event } of events) expect(EventInputSchema.safeParse(event).success).toBe(true);
    const parsed = parseIngestBody(JSON.stringify({ events: events.map((e) => e.event) }), {
      now: NOW + 10_000,
      retentionMs: 7 * 86_400_000,
    });
    expect(parsed.ok).toBe(true);
  });

  it("covers the whole funnel with amounts, currencies, products and client metadata", () => {
    const events = generate({ seed: 2, users: 200 }, 20_000).map((g) => g.event);
    expect(new Set(events.map((e) => e.event_type))).toEqual(new Set(EVENT_TYPES));
    const purchases = events.filter((e) => e.event_type === "purchase_completed");
    expect(purchases.length).toBeGreaterThan(20);
    for (const p of purchases) {
      expect(p.properties?.amount).toBeTypeOf("number");
      expect(p.properties?.amount).toBeGreaterThan(0);
      expect(p.properties?.currency).toMatch(/^[A-Z]{3}$/);
    }
    expect(new Set(purchases.map((p) => p.properties?.currency)).size).toBeGreaterThan(3);
    for (const v of events.filter((e) => e.event_type === "product_view"))
      expect(v.properties?.product_id).toMatch(/^p-\d+$/);
    for (const e of events) {
      expect(e.page_url).toMatch(/^https:\/\/shop\.example\//);
      expect(e.metadata).toMatchObject({
        platform: expect.stringMatching(/^(web|ios|android)$/),
        user_agent: expect.any(String),
        country: expect.stringMatching(/^[A-Z]{2}$/),
      });
    }
    expect(new Set(events.map((e) => e.user_id)).size).toBe(200);
  });

  it("keeps each session in funnel order: a landing page view first, cart before checkout, checkout before purchase", () => {
    const events = generate({ seed: 3, users: 300 }, 30_000).map((g) => g.event);
    const sessions = new Map<string, typeof events>();
    for (const e of events) {
      const id = e.session_id as string;
      sessions.set(id, [...(sessions.get(id) ?? []), e]);
    }
    expect(sessions.size).toBeGreaterThan(1000);
    for (const session of sessions.values()) {
      expect(session[0]?.event_type).toBe("page_view");
      expect(new Set(session.map((e) => e.user_id)).size).toBe(1);
      const times = session.map((e) => Date.parse(e.timestamp as string));
      expect(times).toEqual([...times].sort((a, b) => a - b));
      session.forEach((e, i) => {
        const before = session.slice(0, i).map((b) => b.event_type);
        if (e.event_type === "add_to_cart") {
          expect(session[i - 1]?.event_type).toMatch(/^(product_view|add_to_cart)$/);
          expect(before).toContain("product_view");
        }
        if (e.event_type === "checkout") expect(before).toContain("add_to_cart");
        if (e.event_type === "purchase_completed") {
          expect(session[i - 1]?.event_type).toBe("checkout");
          expect(e.properties?.amount).toBe(session[i - 1]?.properties?.amount);
          expect(i).toBe(session.length - 1); // the purchase ends the session
        }
      });
    }
  });

  it("honours the late and duplicate ratios", () => {
    const events = generate({ seed: 4, users: 1000, lateRatio: 0.05, duplicateRatio: 0.1 }, 50_000);
    const late = events.filter((g) => g.kind === "late");
    const duplicates = events.filter((g) => g.kind === "duplicate");
    expect(late.length / events.length).toBeCloseTo(0.05, 2);
    expect(duplicates.length / events.length).toBeCloseTo(0.1, 2);
    // Late: older than the 2 min allowed lateness, relative to when they are sent.
    const sentAt = new Map(events.map((g, i) => [g, NOW + i]));
    for (const g of late) {
      const age = (sentAt.get(g) as number) - Date.parse(g.event.timestamp as string);
      expect(age).toBeGreaterThan(2 * 60_000);
      expect(age).toBeLessThanOrEqual(10 * 60_000);
    }
    for (const g of events.filter((e) => e.kind === "on_time")) {
      const age = (sentAt.get(g) as number) - Date.parse(g.event.timestamp as string);
      expect(age).toBeLessThan(2 * 60_000);
    }
    // Duplicates resend an earlier event unchanged; everything else has a fresh id.
    const firsts = new Map<string, GeneratedEvent>();
    for (const g of events) {
      const id = g.event.event_id as string;
      if (g.kind === "duplicate") expect(firsts.get(id)?.event).toEqual(g.event);
      else {
        expect(firsts.has(id)).toBe(false);
        firsts.set(id, g);
      }
    }
    expect(generate({ seed: 4, users: 10 }, 5000).filter((g) => g.kind !== "on_time")).toEqual([]);
  });

  it("is deterministic for a seed, and another seed gives other events and ids", () => {
    const a = generate({ seed: 42, users: 100, lateRatio: 0.1, duplicateRatio: 0.1 }, 2000);
    const b = generate({ seed: 42, users: 100, lateRatio: 0.1, duplicateRatio: 0.1 }, 2000);
    const c = generate({ seed: 43, users: 100, lateRatio: 0.1, duplicateRatio: 0.1 }, 2000);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    const ids = new Set(a.map((g) => g.event.event_id));
    expect(c.some((g) => ids.has(g.event.event_id))).toBe(false);
  });

  it("prefixes event types and rejects impossible ratios", () => {
    const events = generate({ seed: 5, users: 10, eventTypePrefix: "run1_" }, 100);
    for (const { event } of events) expect(event.event_type).toMatch(/^run1_/);
    expect(() => new TrafficModel({ seed: 1, users: 10, lateRatio: 0.6, duplicateRatio: 0.5 })).toThrow(
      RangeError,
    );
    expect(() => new TrafficModel({ seed: 1, users: 0 })).toThrow(RangeError);
  });
});

describe("pacer", () => {
  it("paces a steady stream at the rate, after at most one capacity of burst", () => {
    const pacer = new Pacer(2000, 200, 0);
    let now = 0;
    let sent = 0;
    // Batches of 100 as fast as the pacer allows, for 10 s of simulated time.
    while (now < 10_000) {
      now += pacer.take(100, now);
      sent += 100;
    }
    expect(sent).toBeGreaterThanOrEqual(20_000);
    expect(sent).toBeLessThanOrEqual(20_000 + 200 + 100);
  });

  it("banks at most its capacity while idle", () => {
    const pacer = new Pacer(1000, 100, 0);
    expect(pacer.take(100, 60_000)).toBe(0); // a minute idle still only buys 100
    expect(pacer.take(100, 60_000)).toBe(100);
    expect(pacer.take(50, 60_150)).toBe(0);
  });
});

describe("latency histogram", () => {
  it("reports percentiles within 2 %", () => {
    const h = new LatencyHistogram();
    for (let ms = 1; ms <= 1000; ms++) h.record(ms);
    expect(h.count).toBe(1000);
    expect(h.percentile(50)).toBeGreaterThanOrEqual(500);
    expect(h.percentile(50)).toBeLessThanOrEqual(510);
    expect(h.percentile(99)).toBeGreaterThanOrEqual(990);
    expect(h.percentile(99)).toBeLessThanOrEqual(1000);
    expect(h.max).toBe(1000);
    expect(new LatencyHistogram().percentile(50)).toBeNaN();
  });
});

describe("generator options", () => {
  it("parses the documented command line", () => {
    const parsed = parseGeneratorArgs(
      ["--rate", "2000", "--users", "5000", "--duration", "10m", "--late-ratio", "0.01"],
      { PORT: "3400", TIDEMARK_API_KEY: "k1" },
    );
    expect(parsed).toEqual({
      ok: true,
      options: expect.objectContaining({
        rate: 2000,
        users: 5000,
        durationMs: 600_000,
        url: "http://localhost:3400",
        apiKey: "k1",
        lateRatio: 0.01,
        duplicateRatio: 0,
        batch: 100,
        typePrefix: "",
      }),
    });
    const noDuration = parseGeneratorArgs(["--url", "https://x.example/prod/", "--api-key", "k2"], {});
    expect(noDuration.ok && noDuration.options).toMatchObject({
      durationMs: undefined,
      url: "https://x.example/prod",
      apiKey: "k2",
    });
  });

  it("rejects bad values with the flag's name", () => {
    const bad = (args: string[]) => {
      const parsed = parseGeneratorArgs(args, {});
      return parsed.ok ? "" : parsed.message;
    };
    expect(bad(["--rate", "-5"])).toMatch(/--rate/);
    expect(bad(["--duration", "soon"])).toMatch(/--duration: not a duration/);
    expect(bad(["--late-ratio", "0.7", "--duplicate-ratio", "0.5"])).toMatch(/add up to more than 1/);
    expect(bad(["--type-prefix", "Run"])).toMatch(/--type-prefix/);
    expect(bad(["--batch", "10001"])).toMatch(/--batch/);
    expect(bad(["--nope"])).toMatch(/nope/);
    expect(parseDurationMs("90s")).toBe(90_000);
    expect(parseDurationMs("1.5h")).toBe(5_400_000);
    expect(parseDurationMs("250ms")).toBe(250);
    expect(parseDurationMs("30")).toBe(30_000);
  });
});

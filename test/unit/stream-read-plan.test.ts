import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HOUR_MS, MINUTE_MS } from "../../lib/stream/fold.ts";
import {
  HOUR_RETENTION_MS,
  MAX_RANGE_MS,
  MAX_SESSION_GAP_MS,
  MAX_SESSION_RANGE_MS,
  MINUTE_RETENTION_MS,
  maxPlanSize,
  planInterval,
  planRange,
  planRuleWindow,
  planSessionRange,
  RETENTION_MARGIN_MS,
  type ReadPlan,
  ReadPlanError,
  SESSION_CARRY_MS,
  sessionLookback,
} from "../../lib/stream/read-plan.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";

/** Fixed seed so CI is reproducible; FAST_CHECK_SEED explores others. */
const FC = { seed: Number(process.env.FAST_CHECK_SEED ?? 20261124), numRuns: 2_000 } as const;
const DAY_MS = 24 * HOUR_MS;
const floorTo = (t: number, size: number) => Math.floor(t / size) * size;
const ceilTo = (t: number, size: number) => Math.ceil(t / size) * size;
const at = (iso: string) => Date.parse(iso);

/** The planned windows as [start, end), ascending. */
function windows(plan: ReadPlan): [number, number][] {
  return [
    ...plan.minutes.map((s): [number, number] => [s, s + MINUTE_MS]),
    ...plan.hours.map((s): [number, number] => [s, s + HOUR_MS]),
  ].sort((a, b) => a[0] - b[0]);
}

/** The windows tile [coveredFrom, coveredTo): no gap, no overlap, each aligned to its size. */
function expectTiling(plan: ReadPlan): void {
  // One assertion per plan (not per window): thousands of plans of hundreds of windows run.
  const problems: string[] = [];
  for (const m of plan.minutes) if (m % MINUTE_MS !== 0) problems.push(`minute ${m} unaligned`);
  for (const h of plan.hours) if (h % HOUR_MS !== 0) problems.push(`hour ${h} unaligned`);
  let edge = plan.coveredFrom;
  for (const [start, end] of windows(plan)) {
    if (start !== edge)
      problems.push(`${start < edge ? "overlap" : "gap"} at ${new Date(start).toISOString()}`);
    edge = end;
  }
  if (edge !== plan.coveredTo) problems.push(`windows end at ${edge}, not at coveredTo ${plan.coveredTo}`);
  expect(problems).toEqual([]);
}

const containing = (plan: ReadPlan, t: number) => windows(plan).filter(([s, e]) => s <= t && t < e).length;

/** `now` anywhere in 2020–2030, at any millisecond. */
const nowArb = fc.integer({ min: at("2020-01-01T00:00:00Z"), max: at("2030-01-01T00:00:00Z") });
/** Instants snapped (or not) to minutes and hours, so aligned edges are common. */
const snap = (t: number, how: number) =>
  how === 0 ? t : how === 1 ? floorTo(t, MINUTE_MS) : floorTo(t, HOUR_MS);
/** Lengths from a millisecond to beyond the maximum range, weighted towards every scale. */
const lengthArb = fc.oneof(
  fc.integer({ min: 1, max: 2 * HOUR_MS }),
  fc.integer({ min: 1, max: 3 * DAY_MS }),
  fc.integer({ min: 1, max: MAX_RANGE_MS + DAY_MS }),
);
/** A range [from, to) ending anywhere from 92 days ago to a day ahead of `now`. */
const rangeArb = fc
  .record({
    now: nowArb,
    endOffset: fc.integer({ min: -92 * DAY_MS, max: DAY_MS }),
    length: lengthArb,
    snapFrom: fc.integer({ min: 0, max: 2 }),
    snapTo: fc.integer({ min: 0, max: 2 }),
    probe: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  })
  .map(({ now, endOffset, length, snapFrom, snapTo, probe }) => {
    const to = snap(now + endOffset, snapTo);
    const from = snap(to - length, snapFrom);
    return { now, from, to: from < to ? to : from + 1, probe };
  });

describe("planRange: half-open [from, to), hours inside, minutes at the edges", () => {
  const now = at("2026-11-24T10:30:20.000Z");

  it("excludes `to`: [10:00, 10:05) is five minutes, not six", () => {
    const plan = planRange({ from: at("2026-11-24T10:00:00Z"), to: at("2026-11-24T10:05:00Z"), now });
    expect(plan.minutes.map((m) => new Date(m).toISOString().slice(11, 16))).toEqual([
      "10:00",
      "10:01",
      "10:02",
      "10:03",
      "10:04",
    ]);
    expect(plan.hours).toEqual([]);
    expect(plan).toMatchObject({ widenedToHours: false, elapsedMs: 5 * MINUTE_MS });
    expect(plan.partialMinute).toBeUndefined();
  });

  it("reads a recent 24-hour range as 23 hourly roll-ups and 61 edge minutes, not 1,440 minutes", () => {
    const plan = planRange({ from: now - DAY_MS, to: now, now });
    expect(plan.hours).toHaveLength(23);
    expect(plan.hours[0]).toBe(at("2026-11-23T11:00:00Z"));
    expect(plan.minutes).toHaveLength(30 + 31);
    expect(plan.coveredFrom).toBe(at("2026-11-23T10:30:00Z"));
    expect(plan.coveredTo).toBe(at("2026-11-24T10:31:00Z"));
    expect(plan.partialMinute).toEqual({ start: at("2026-11-24T10:30:00Z"), elapsedMs: 20_000 });
    expect(plan.elapsedMs).toBe(DAY_MS + 20_000);
    expectTiling(plan);
  });

  it("reads a whole aligned hour as its roll-up", () => {
    const plan = planRange({ from: at("2026-11-24T08:00:00Z"), to: at("2026-11-24T09:00:00Z"), now });
    expect(plan).toMatchObject({ minutes: [], hours: [at("2026-11-24T08:00:00Z")], widenedToHours: false });
  });

  it("reads a short range older than the minute retention from its hourly roll-up, widened and said so", () => {
    // Issue 8 item 11: 10 minutes three days ago used to read expired minute items as zeros.
    const from = at("2026-11-21T10:20:00Z");
    const plan = planRange({ from, to: from + 10 * MINUTE_MS, now });
    expect(plan.minutes).toEqual([]);
    expect(plan.hours).toEqual([at("2026-11-21T10:00:00Z")]);
    expect(plan).toMatchObject({
      coveredFrom: at("2026-11-21T10:00:00Z"),
      coveredTo: at("2026-11-21T11:00:00Z"),
      widenedToHours: true,
    });
    expect(plan.notice).toContain("2026-11-21T10:00:00.000Z to 2026-11-21T11:00:00.000Z");
  });

  it("widens only the expired edge of a range straddling the minute retention", () => {
    const from = now - MINUTE_RETENTION_MS - 20 * MINUTE_MS; // 2026-11-22T10:10:20
    const to = now - MINUTE_RETENTION_MS + 3 * HOUR_MS + 17 * MINUTE_MS; // 2026-11-22T13:47:20
    const plan = planRange({ from, to, now });
    expect(plan.coveredFrom).toBe(at("2026-11-22T10:00:00Z")); // the expired head hour, whole
    expect(plan.coveredTo).toBe(at("2026-11-22T13:48:00Z")); // the recent tail, to the minute
    expect(plan.hours).toEqual([10, 11, 12].map((h) => at(`2026-11-22T${h}:00:00Z`)));
    expect(plan.minutes).toHaveLength(48);
    expect(plan.widenedToHours).toBe(true);
    expectTiling(plan);
  });

  it("reads an 89-day range as hourly roll-ups plus at most two edges of minutes", () => {
    const plan = planRange({ from: now - 89 * DAY_MS, to: now, now });
    expect(plan.hours.length).toBeLessThanOrEqual(89 * 24 + 1);
    expect(plan.minutes).toHaveLength(31); // only the current hour's minutes; the old head is an hour
    expect(plan.coveredFrom).toBe(at("2026-08-27T10:00:00Z"));
    expectTiling(plan);
  });

  it("rejects ranges beyond the hourly retention, too long, empty or invalid, with a typed error", () => {
    const reject = (request: Parameters<typeof planRange>[0], code: string, message: RegExp) => {
      let error: unknown;
      try {
        planRange(request);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ReadPlanError);
      expect(error).toMatchObject({ code });
      expect((error as Error).message).toMatch(message);
    };
    reject({ from: now - 91 * DAY_MS, to: now - 90 * DAY_MS, now }, "beyond_retention", /kept 90 days/);
    reject(
      { from: now - HOUR_RETENTION_MS, to: now - 80 * DAY_MS, now },
      "beyond_retention",
      /at the earliest/,
    );
    reject({ from: now - 2 * DAY_MS, to: now, now, maxRangeMs: DAY_MS }, "range_too_long", /at most 1 day/);
    reject({ from: now - 100 * DAY_MS, to: now, now }, "range_too_long", /at most 90 days/);
    reject({ from: now, to: now, now }, "invalid_range", /must be before/);
    reject({ from: Number.NaN, to: now, now }, "invalid_range", /integer epoch milliseconds/);
  });

  it("property: windows tile the covered range, which holds [from, to), widened only where minutes expired", () => {
    fc.assert(
      fc.property(rangeArb, ({ now, from, to, probe }) => {
        const minuteHorizon = now - MINUTE_RETENTION_MS + RETENTION_MARGIN_MS;
        const hourHorizon = now - HOUR_RETENTION_MS + RETENTION_MARGIN_MS;
        let plan: ReadPlan;
        try {
          plan = planRange({ from, to, now });
        } catch (e) {
          // Rejected only when the range is too long or really reaches past the hourly retention.
          expect(e).toBeInstanceOf(ReadPlanError);
          const code = (e as ReadPlanError).code;
          if (code === "range_too_long") expect(to - from).toBeGreaterThan(MAX_RANGE_MS);
          else {
            expect(code).toBe("beyond_retention");
            expect(floorTo(from, HOUR_MS)).toBeLessThan(hourHorizon);
          }
          return;
        }
        expectTiling(plan);
        // Every instant of [from, to) is in exactly one window (a sampled one, and both ends).
        const t = from + Math.floor(probe * (to - from));
        for (const instant of [from, t, to - 1]) expect(containing(plan, instant)).toBe(1);
        // The cover holds the range at minute resolution, and is widened beyond it only to whole
        // hours whose minutes have expired.
        expect(plan.coveredFrom).toBeLessThanOrEqual(floorTo(from, MINUTE_MS));
        expect(plan.coveredTo).toBeGreaterThanOrEqual(ceilTo(to, MINUTE_MS));
        if (plan.coveredFrom < floorTo(from, MINUTE_MS)) {
          expect(plan.coveredFrom).toBe(floorTo(from, HOUR_MS));
          expect(floorTo(from, MINUTE_MS)).toBeLessThan(minuteHorizon);
        }
        if (plan.coveredTo > ceilTo(to, MINUTE_MS)) {
          expect(plan.coveredTo).toBe(ceilTo(to, HOUR_MS));
          expect(Math.max(from, floorTo(to - 1, HOUR_MS))).toBeLessThan(minuteHorizon);
        }
        expect(plan.widenedToHours).toBe(
          plan.coveredFrom < floorTo(from, MINUTE_MS) || plan.coveredTo > ceilTo(to, MINUTE_MS),
        );
        expect(plan.notice !== undefined).toBe(plan.widenedToHours);
        // Nothing read has expired (or is about to).
        expect(plan.minutes.filter((m) => m < minuteHorizon)).toEqual([]);
        expect(plan.hours.filter((h) => h < hourHorizon)).toEqual([]);
        // An hour is read either because the range holds it whole or because its minutes expired.
        const unexplained = plan.hours.filter(
          (h) =>
            !(h >= floorTo(from, MINUTE_MS) && h + HOUR_MS <= ceilTo(to, MINUTE_MS)) &&
            floorTo(Math.max(from, h), MINUTE_MS) >= minuteHorizon,
        );
        expect(unexplained).toEqual([]);
        // Bounded fan-out.
        const bound = maxPlanSize(to - from);
        expect(plan.minutes.length).toBeLessThanOrEqual(bound.minutes);
        expect(plan.hours.length).toBeLessThanOrEqual(bound.hours);
        // Time covered so far, and the minute in progress.
        expect(plan.elapsedMs).toBe(Math.max(0, Math.min(plan.coveredTo, now) - plan.coveredFrom));
        const current = floorTo(now, MINUTE_MS);
        if (current >= plan.coveredFrom && current < plan.coveredTo)
          expect(plan.partialMinute).toEqual({ start: current, elapsedMs: now - current });
        else expect(plan.partialMinute).toBeUndefined();
      }),
      FC,
    );
  });

  it("property: a range starting after the hourly horizon and within the maximum length is always planned", () => {
    fc.assert(
      fc.property(
        nowArb,
        fc.integer({ min: 0, max: 89 * DAY_MS }),
        fc.integer({ min: 1, max: MAX_RANGE_MS }),
        (now, age, length) => {
          const from = Math.max(now - age, ceilTo(now - HOUR_RETENTION_MS + RETENTION_MARGIN_MS, HOUR_MS));
          expect(() => planRange({ from, to: from + length, now })).not.toThrow();
        },
      ),
      { ...FC, numRuns: 300 },
    );
  });
});

describe("planInterval: the last interval, with the minute in progress partial", () => {
  const now = at("2026-11-24T10:30:20.000Z");

  it("reads 5 whole minutes and the elapsed 20 s of the current one, and says how much time that is", () => {
    const plan = planInterval({ intervalMs: 5 * MINUTE_MS, now });
    expect(plan.minutes).toEqual([25, 26, 27, 28, 29, 30].map((m) => at(`2026-11-24T10:${m}:00Z`)));
    expect(plan.partialMinute).toEqual({ start: at("2026-11-24T10:30:00Z"), elapsedMs: 20_000 });
    // A rate divides by 5 min 20 s, the time the windows hold, not by 5 min nor by 6.
    expect(plan.elapsedMs).toBe(5 * MINUTE_MS + 20_000);
    expect(plan.coveredFrom).toBe(at("2026-11-24T10:25:00Z"));
  });

  it("reads exactly the interval when now is on a minute boundary", () => {
    const aligned = at("2026-11-24T10:30:00Z");
    const plan = planInterval({ intervalMs: 5 * MINUTE_MS, now: aligned });
    expect(plan.minutes).toEqual([25, 26, 27, 28, 29].map((m) => at(`2026-11-24T10:${m}:00Z`)));
    expect(plan.partialMinute).toBeUndefined();
    expect(plan.elapsedMs).toBe(5 * MINUTE_MS);
  });

  it("reads interval=24h in 84 windows instead of 1,440 minute windows per group", () => {
    const plan = planInterval({ intervalMs: DAY_MS, now });
    expect(plan.minutes.length + plan.hours.length).toBe(84);
  });

  it("rejects a non-positive interval", () => {
    expect(() => planInterval({ intervalMs: 0, now })).toThrow(ReadPlanError);
  });

  it("property: covers the whole interval plus less than a minute, elapsedMs = now − coveredFrom", () => {
    fc.assert(
      fc.property(nowArb, fc.integer({ min: 1, max: MINUTE_RETENTION_MS - HOUR_MS }), (now, intervalMs) => {
        const plan = planInterval({ intervalMs, now });
        expectTiling(plan);
        expect(plan.coveredFrom).toBeLessThanOrEqual(now - intervalMs);
        expect(plan.coveredFrom).toBeGreaterThan(now - intervalMs - MINUTE_MS);
        expect(plan.coveredTo).toBe(ceilTo(now, MINUTE_MS));
        expect(plan.elapsedMs).toBe(now - plan.coveredFrom);
        expect(plan.partialMinute !== undefined).toBe(now % MINUTE_MS !== 0);
        const bound = maxPlanSize(intervalMs);
        expect(plan.minutes.length).toBeLessThanOrEqual(bound.minutes);
        expect(plan.hours.length).toBeLessThanOrEqual(bound.hours);
      }),
      FC,
    );
  });
});

describe("planRuleWindow: a rule's size and slide apply on read", () => {
  const now = at("2026-11-24T10:30:20.000Z");
  const rule = (id: string) => {
    const r = BUILT_IN_RULES.find((x) => x.rule_id === id);
    if (!r) throw new Error(`no built-in rule ${id}`);
    return r;
  };

  it("active_users (sliding 5m/1m) reads the last 5 minutes, like interval=5m", () => {
    const plan = planRuleWindow(rule("active_users").window, now);
    expect(plan.type).toBe("sliding");
    expect(plan.minutes).toEqual(planInterval({ intervalMs: 5 * MINUTE_MS, now }).minutes);
    expect(plan.elapsedMs).toBe(5 * MINUTE_MS + 20_000);
  });

  it("page_views_by_url (sliding 15m/1m) reads 15 minutes and the current one", () => {
    const plan = planRuleWindow(rule("page_views_by_url").window, now);
    expect(plan.minutes).toHaveLength(16);
    expect(plan.coveredFrom).toBe(at("2026-11-24T10:15:00Z"));
  });

  it("a sliding window starts on a slide boundary: 15m sliding by 5m", () => {
    const plan = planRuleWindow({ type: "sliding", size: "15m", slide: "5m" }, now);
    expect(plan.coveredFrom).toBe(at("2026-11-24T10:15:00Z"));
    expect(plan.elapsedMs).toBe(15 * MINUTE_MS + 20_000);
  });

  it("tumbling 1m reads the current minute so far; tumbling 1h the current hour so far", () => {
    const minute = planRuleWindow(rule("events_by_type").window, now);
    expect(minute).toMatchObject({ minutes: [at("2026-11-24T10:30:00Z")], hours: [], elapsedMs: 20_000 });
    const hour = planRuleWindow({ type: "tumbling", size: "1h" }, now);
    expect(hour.minutes).toHaveLength(31);
    expect(hour.minutes[0]).toBe(at("2026-11-24T10:00:00Z"));
    expect(hour.type === "tumbling" && hour.window).toEqual({
      from: at("2026-11-24T10:00:00Z"),
      to: at("2026-11-24T11:00:00Z"),
    });
    expect(hour.elapsedMs).toBe(30 * MINUTE_MS + 20_000);
  });

  it("tumbling 1d reads its whole hours as roll-ups; 7d is bounded too", () => {
    const day = planRuleWindow({ type: "tumbling", size: "1d" }, now);
    expect(day.hours).toHaveLength(10);
    expect(day.minutes).toHaveLength(31);
    const week = planRuleWindow({ type: "tumbling", size: "7d" }, now);
    expect(week.hours.length + week.minutes.length).toBeLessThanOrEqual(7 * 24 + 59);
    expectTiling(week);
  });

  it("a tumbling window that starts exactly now is empty", () => {
    const plan = planRuleWindow({ type: "tumbling", size: "1h" }, at("2026-11-24T10:00:00Z"));
    expect(plan).toMatchObject({ minutes: [], hours: [], elapsedMs: 0 });
  });

  it("user_sessions (gap 30m) reads the open sessions' minutes, looking back gap + carry", () => {
    const plan = planRuleWindow(rule("user_sessions").window, now);
    expect(plan.type).toBe("session");
    expect(plan.hours).toEqual([]);
    expect(plan.minutes[0]).toBe(sessionLookback(now - 30 * MINUTE_MS, 30 * MINUTE_MS));
    expect(plan.minutes).toHaveLength(30 + 30 + 120 + 1); // the gap, lookback (gap + carry), current
    expectTiling(plan);
  });

  it("rejects bad windows: a 7-day session gap, a sliding window without size, slide > size", () => {
    const code = (window: Parameters<typeof planRuleWindow>[0]) => {
      try {
        planRuleWindow(window, now);
      } catch (e) {
        return e instanceof ReadPlanError ? e.code : "other";
      }
      return "none";
    };
    expect(code({ type: "session", gap: "7d" })).toBe("gap_too_long");
    expect(code({ type: "sliding" })).toBe("invalid_window");
    expect(code({ type: "sliding", size: "5m", slide: "10m" })).toBe("invalid_window");
    expect(code({ type: "tumbling", size: "5x" })).toBe("invalid_window");
    expect(code({ type: "tumbling", size: "60d" })).toBe("invalid_window");
  });

  it("every built-in rule plans within bounds", () => {
    for (const r of BUILT_IN_RULES) {
      const plan = planRuleWindow(r.window, now);
      expectTiling(plan);
      expect(plan.minutes.length + plan.hours.length).toBeLessThanOrEqual(400);
    }
  });
});

describe("sessions: bounded gap and lookback", () => {
  const now = at("2026-11-24T10:30:20.000Z");

  it("looks back one gap plus SESSION_CARRY_MS, and at most MAX_SESSION_GAP_MS + SESSION_CARRY_MS", () => {
    const from = at("2026-11-24T09:00:30Z");
    expect(sessionLookback(from, 30 * MINUTE_MS)).toBe(at("2026-11-24T06:30:00Z"));
    expect(from - sessionLookback(from, MAX_SESSION_GAP_MS)).toBeLessThan(
      MAX_SESSION_GAP_MS + SESSION_CARRY_MS + MINUTE_MS,
    );
    expect(() => sessionLookback(from, 7 * DAY_MS)).toThrow(/at most 2 hours/);
  });

  it("property: a session read is minutes only, contiguous, bounded, and sees whole every session begun since from − carry", () => {
    fc.assert(
      fc.property(
        nowArb,
        fc.integer({ min: 0, max: DAY_MS }),
        fc.integer({ min: 1, max: MAX_SESSION_RANGE_MS }),
        fc.integer({ min: 1, max: MAX_SESSION_GAP_MS / MINUTE_MS }),
        (now, age, length, gapMinutes) => {
          const gapMs = gapMinutes * MINUTE_MS;
          const from = now - age;
          const plan = planSessionRange({ from, to: from + length, now, gapMs });
          expectTiling(plan);
          expect(plan.hours).toEqual([]);
          // A session begun at s ≥ from − carry has its leading silence of one gap inside the read.
          expect(plan.coveredFrom + gapMs).toBeLessThanOrEqual(from - SESSION_CARRY_MS);
          expect(plan.coveredTo).toBe(ceilTo(from + length, MINUTE_MS));
          expect(plan.minutes.length).toBeLessThanOrEqual(
            (MAX_SESSION_RANGE_MS + MAX_SESSION_GAP_MS + SESSION_CARRY_MS) / MINUTE_MS + 1,
          );
        },
      ),
      { ...FC, numRuns: 500 },
    );
  });

  it("rejects session reads reaching expired minutes or over 6 hours", () => {
    expect(() =>
      planSessionRange({ from: now - 3 * DAY_MS, to: now - 3 * DAY_MS + HOUR_MS, now, gapMs: MINUTE_MS }),
    ).toThrow(/one-minute windows/);
    expect(() => planSessionRange({ from: now - 7 * HOUR_MS, to: now, now, gapMs: MINUTE_MS })).toThrow(
      /at most 6 hours/,
    );
  });
});

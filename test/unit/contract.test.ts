import { describe, expect, it } from "vitest";
import { parseEventsQuery, parseStatsQuery } from "../../lib/contract/api.ts";
import { MAX_EVENT_BYTES, parseIngestBody, parseStoredEvent } from "../../lib/contract/event.ts";
import { uuidv7 } from "../../lib/contract/uuidv7.ts";

const now = Date.UTC(2026, 10, 22, 12, 0, 0);
const retentionMs = 365 * 86_400_000;
const parse = (body: unknown) =>
  parseIngestBody(typeof body === "string" ? body : JSON.stringify(body), { now, retentionMs });
const valid = { user_id: "u1", event_type: "page_view", timestamp: now };

function problems(result: ReturnType<typeof parse>) {
  if (result.ok) throw new Error("expected a rejection");
  return (result.error.details as { problems: { index: number; field: string; message: string }[] }).problems;
}

describe("event contract", () => {
  it("accepts one event, an array, and an {events} envelope", () => {
    for (const body of [valid, [valid, valid], { events: [valid, valid, valid] }]) {
      const result = parse(body);
      expect(result.ok).toBe(true);
    }
    const envelope = parse({ events: [valid, valid, valid] });
    expect(envelope.ok && envelope.events).toHaveLength(3);
  });

  it("normalises ISO-8601 with zone, epoch seconds and epoch milliseconds to epoch ms", () => {
    const result = parse([
      { ...valid, timestamp: "2026-11-22T13:00:00+01:00" },
      { ...valid, timestamp: now / 1000 },
      { ...valid, timestamp: now },
    ]);
    expect(result.ok && result.events.map((e) => e.timestamp)).toEqual([now, now, now]);
  });

  it("generates time-ordered UUIDv7 event ids when absent and keeps given ones", () => {
    const result = parse([valid, valid, { ...valid, event_id: "mine-1" }]);
    if (!result.ok) throw new Error("rejected");
    const [a, b, c] = result.events;
    expect(a?.event_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a?.event_id).not.toBe(b?.event_id);
    expect(c?.event_id).toBe("mine-1");
    expect(uuidv7(1000) < uuidv7(2000)).toBe(true);
  });

  it("adds received_at and serializes each event once", () => {
    const result = parse(valid);
    if (!result.ok) throw new Error("rejected");
    expect(result.events[0]?.received_at).toBe(now);
    expect(JSON.parse(result.serialized[0] ?? "")).toEqual(result.events[0]);
  });

  it("rejects an ISO timestamp without a zone", () => {
    expect(problems(parse({ ...valid, timestamp: "2026-11-22T12:00:00" }))[0]).toMatchObject({
      index: 0,
      field: "timestamp",
    });
  });

  it("rejects timestamps more than 5 minutes ahead or older than the retention horizon", () => {
    const p = problems(
      parse([
        { ...valid, timestamp: now + 6 * 60_000 },
        { ...valid, timestamp: now - retentionMs - 1 },
      ]),
    );
    expect(p).toEqual([
      { index: 0, field: "timestamp", message: "is more than 5 minutes in the future" },
      { index: 1, field: "timestamp", message: "is older than the retention horizon (365 days)" },
    ]);
    expect(parse({ ...valid, timestamp: now + 4 * 60_000 }).ok).toBe(true);
  });

  it("rejects unknown fields by name instead of dropping them", () => {
    const p = problems(parse({ ...valid, colour: "red" }));
    expect(p[0]?.field).toBe("colour");
    expect(p[0]?.message).toContain("unknown field 'colour'");
  });

  it("lists every problem of a batch by index and field, and accepts nothing", () => {
    const result = parse([
      valid,
      { ...valid, user_id: "" },
      { event_type: "Bad Type", timestamp: "x" },
      valid,
    ]);
    expect(result.ok).toBe(false);
    const p = problems(result);
    expect(p.map((x) => `${x.index}:${x.field}`)).toEqual([
      "1:user_id",
      "2:user_id",
      "2:event_type",
      "2:timestamp",
    ]);
    expect(p.find((x) => x.index === 2 && x.field === "user_id")?.message).toBe("is required");
  });

  it("says 'is required' only for a field that was not sent, and how a timestamp is written", () => {
    const { timestamp: _t, ...untimed } = valid;
    const p = problems(parse([{ ...valid, user_id: 42 }, untimed, { ...valid, timestamp: true }]));
    expect(p).toEqual([
      { index: 0, field: "user_id", message: expect.stringContaining("expected string, received number") },
      { index: 1, field: "timestamp", message: "is required" },
      {
        index: 2,
        field: "timestamp",
        message: expect.stringContaining("UNIX epoch seconds or milliseconds"),
      },
    ]);
  });

  it("rejects wrong types, non-object properties and over-long strings", () => {
    const p = problems(
      parse([
        { ...valid, user_id: 42 },
        { ...valid, properties: [1, 2] },
        { ...valid, page_url: "x".repeat(2049) },
        { ...valid, session_id: "s".repeat(129) },
      ]),
    );
    expect(p.map((x) => `${x.index}:${x.field}`)).toEqual([
      "0:user_id",
      "1:properties",
      "2:page_url",
      "3:session_id",
    ]);
  });

  it("rejects an event larger than 32 KiB serialized", () => {
    const big = { ...valid, properties: { blob: "x".repeat(MAX_EVENT_BYTES) } };
    const p = problems(parse([valid, big]));
    expect(p).toHaveLength(1);
    expect(p[0]).toMatchObject({ index: 1, field: "(event)" });
    expect(p[0]?.message).toContain("at most 32768");
  });

  it("rejects more than 10,000 events, invalid JSON, an empty batch and a non-object body", () => {
    const many = parse(Array.from({ length: 10_001 }, () => valid));
    expect(!many.ok && many.error).toMatchObject({ status: 400, code: "too_many_events" });
    expect(parse(Array.from({ length: 10_000 }, () => valid)).ok).toBe(true);
    const bad = parse("{not json");
    expect(!bad.ok && bad.error).toMatchObject({ status: 400, code: "invalid_json" });
    expect(!parse([]).ok).toBe(true);
    expect(!parse("42").ok).toBe(true);
    expect(parseIngestBody(undefined, { now, retentionMs }).ok).toBe(false);
  });

  it("reads stored events back and flags records that are not events", () => {
    expect(parseStoredEvent(JSON.stringify({ ...valid, event_id: "e", received_at: now })).ok).toBe(true);
    expect(parseStoredEvent("garbage")).toMatchObject({ ok: false });
    expect(parseStoredEvent(JSON.stringify({ event_id: "e" }))).toMatchObject({
      ok: false,
      reason: "user_id missing",
    });
  });
});

describe("query parameters", () => {
  it("GET /events needs user_id or event_type, defaults to the last hour and bounds the range", () => {
    expect(parseEventsQuery({}, now).ok).toBe(false);
    const q = parseEventsQuery({ event_type: "click" }, now);
    expect(q.ok && q.value).toMatchObject({ from: now - 3_600_000, to: now, limit: 100 });
    const iso = parseEventsQuery(
      { user_id: "u", from: "2026-11-20T00:00:00Z", to: String(now), limit: "5" },
      now,
    );
    expect(iso.ok && iso.value).toMatchObject({ from: Date.UTC(2026, 10, 20), to: now, limit: 5 });
    expect(parseEventsQuery({ user_id: "u", from: "2026-11-01T00:00:00Z" }, now)).toMatchObject({
      ok: false,
    });
    expect(parseEventsQuery({ user_id: "u", limit: "5000" }, now).ok).toBe(false);
    expect(parseEventsQuery({ user_id: "u", from: String(now), to: String(now - 1) }, now).ok).toBe(false);
  });

  it("GET /stats parses the interval and rejects unknown ones", () => {
    const q = parseStatsQuery(
      { event_type: "click", interval: "15m", group_by: "properties.country, page_url" },
      now,
    );
    expect(q.ok && q.value).toMatchObject({
      intervalMs: 15 * 60_000,
      group_by: ["properties.country", "page_url"],
    });
    expect(parseStatsQuery({ event_type: "click", interval: "7w" }, now).ok).toBe(false);
    expect(parseStatsQuery({ interval: "5m" }, now).ok).toBe(false);
  });
});

import { describe, expect, it } from "vitest";
import { buildEventsSql, decodeCursor, encodeCursor } from "../../lib/archive/events-sql.ts";
import {
  ARCHIVE_BLOCK_OFFSETS,
  archiveObjectKey,
  hoursBetween,
  partitionOf,
} from "../../lib/archive/layout.ts";

describe("archive layout", () => {
  it("puts an event under Hive partitions of its event time (UTC)", () => {
    const p = partitionOf("page_view", Date.UTC(2026, 10, 22, 23, 59, 59));
    expect(p).toEqual({ eventType: "page_view", dt: "2026-11-22", hour: "23" });
    const key = archiveObjectKey("events/", p, { topic: "events.raw", partition: 3, offset: 12_345 });
    expect(key).toBe(
      "events/event_type=page_view/dt=2026-11-22/hour=23/events.raw-3-0000000000000010000.ndjson.gz",
    );
  });

  it("names objects by source partition and offset block, whatever the batching", () => {
    const p = partitionOf("click", Date.UTC(2026, 0, 1, 5));
    const a = archiveObjectKey("events/", p, { topic: "events.raw", partition: 0, offset: 100 });
    const b = archiveObjectKey("events/", p, {
      topic: "events.raw",
      partition: 0,
      offset: ARCHIVE_BLOCK_OFFSETS - 1,
    });
    const c = archiveObjectKey("events/", p, { topic: "events.raw", partition: 1, offset: 100 });
    const d = archiveObjectKey("events/", p, {
      topic: "events.raw",
      partition: 0,
      offset: ARCHIVE_BLOCK_OFFSETS,
    });
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    expect(a).not.toBe(d);
  });

  it("lists every hour of a range, inclusive, across midnight", () => {
    const hours = hoursBetween(Date.UTC(2026, 0, 1, 22, 30), Date.UTC(2026, 0, 2, 1, 0));
    expect(hours).toEqual([
      { dt: "2026-01-01", hour: "22" },
      { dt: "2026-01-01", hour: "23" },
      { dt: "2026-01-02", hour: "00" },
      { dt: "2026-01-02", hour: "01" },
    ]);
  });
});

describe("GET /events SQL", () => {
  it("filters by range, partitions, user and type with positional parameters only", () => {
    const { sql, params } = buildEventsSql("events", {
      userId: "u'1",
      eventType: "click",
      from: Date.UTC(2026, 0, 1),
      to: Date.UTC(2026, 0, 2),
      limit: 50,
    });
    expect(sql).not.toContain("u'1");
    expect(sql).toContain("user_id = ?");
    expect(sql).toContain("event_type = ?");
    expect(sql).toContain('ORDER BY "timestamp" DESC, event_id DESC');
    expect(params).toEqual([
      Date.UTC(2026, 0, 1),
      Date.UTC(2026, 0, 2),
      "2026-01-01",
      "2026-01-02",
      "u'1",
      "click",
    ]);
  });

  it("continues after the cursor's keyset position", () => {
    const { sql, params } = buildEventsSql("events", {
      eventType: "click",
      from: 0,
      to: 10,
      limit: 5,
      after: { timestamp: 7, eventId: "e9" },
    });
    expect(sql).toContain('("timestamp" < ? OR ("timestamp" = ? AND event_id < ?))');
    expect(params.slice(-3)).toEqual([7, 7, "e9"]);
    expect(sql).toMatch(/\nLIMIT 5$/);
  });

  it("round-trips an opaque cursor and rejects a forged one", () => {
    const cursor = encodeCursor({ timestamp: 123, eventId: "abc" });
    expect(decodeCursor(cursor)).toEqual({ timestamp: 123, eventId: "abc" });
    expect(decodeCursor("not-a-cursor")).toBeUndefined();
    expect(decodeCursor(Buffer.from('{"a":1}').toString("base64url"))).toBeUndefined();
  });
});

describe("GET /events SQL without an event type", () => {
  it("reads the listed event types (Athena's injected projection needs them), and nothing when none", () => {
    const some = buildEventsSql("events", {
      userId: "u",
      eventTypes: ["click", "page_view"],
      from: 0,
      to: 1,
      limit: 5,
    });
    expect(some.sql).toContain("event_type IN (?, ?)");
    expect(some.params).toEqual([0, 1, "1970-01-01", "1970-01-01", "u", "click", "page_view"]);
    expect(() => buildEventsSql("events", { userId: "u", eventTypes: [], from: 0, to: 1, limit: 5 })).toThrow(
      RangeError,
    );
  });
});

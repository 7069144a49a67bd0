import { describe, expect, it } from "vitest";
import {
  AHEAD_OF_RECEIPT_MS,
  archiveObjectKey,
  isAheadOfReceipt,
  newestTimestampBound,
  partitionOf,
} from "../../lib/archive/layout.ts";
import { nextRound, pageIsFinal, readOrder } from "../../lib/archive/read-order.ts";
import { MAX_FUTURE_SKEW_MS } from "../../lib/contract/event.ts";

const HOUR_START = Date.UTC(2026, 10, 24, 15);
const p = partitionOf("page_view", HOUR_START + 60_000);
const key = (partition: number, offset: number, ahead = false) =>
  archiveObjectKey("events/", p, { topic: "events.raw", partition, offset }, ahead);

describe("events timestamped ahead of their receipt", () => {
  it("are archived in objects of their own, past AHEAD_OF_RECEIPT_MS", () => {
    const received_at = HOUR_START + 10_000;
    expect(isAheadOfReceipt({ timestamp: received_at + AHEAD_OF_RECEIPT_MS, received_at })).toBe(false);
    expect(isAheadOfReceipt({ timestamp: received_at + AHEAD_OF_RECEIPT_MS + 1, received_at })).toBe(true);
    expect(isAheadOfReceipt({ timestamp: received_at - 3_600_000, received_at })).toBe(false);
    expect(key(2, 7_501, true)).toBe(
      "events/event_type=page_view/dt=2026-11-24/hour=15/events.raw-2-0000000000000007500-ahead.ndjson.gz",
    );
  });
});

describe("the newest timestamp an archive object can hold", () => {
  const written = HOUR_START + 600_000;

  it("is its LastModified plus the listing's and the clocks' slack plus AHEAD_OF_RECEIPT_MS", () => {
    expect(newestTimestampBound(key(0, 0), written)).toBe(written + 2_000 + AHEAD_OF_RECEIPT_MS);
  });

  it("allows the contract's whole future skew in an -ahead object", () => {
    expect(newestTimestampBound(key(0, 0, true), written)).toBe(written + 2_000 + MAX_FUTURE_SKEW_MS);
  });

  it("never passes the end of the object's hour partition", () => {
    const late = HOUR_START + 3_599_000;
    expect(newestTimestampBound(key(0, 0), late)).toBe(HOUR_START + 3_600_000 - 1);
    expect(newestTimestampBound(key(0, 0, true), late)).toBe(HOUR_START + 3_600_000 - 1);
  });

  it("is unbounded for names this layout does not write, or without LastModified", () => {
    expect(newestTimestampBound("events/event_type=x/dt=2026-11-24/hour=15/other.json", written)).toBe(
      Number.POSITIVE_INFINITY,
    );
    expect(newestTimestampBound(key(0, 0), undefined)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("the order GET /events reads an hour's objects in", () => {
  const objects = [
    { key: key(0, 0), etag: "a", lastModifiedMs: HOUR_START + 100_000 },
    { key: key(1, 0), etag: "b", lastModifiedMs: HOUR_START + 300_000 },
    { key: key(0, 0, true), etag: "c", lastModifiedMs: HOUR_START + 100_000 },
    { key: key(2, 0), etag: "d", lastModifiedMs: HOUR_START + 300_000 },
    { key: "events/event_type=page_view/dt=2026-11-24/hour=15/foreign.ndjson.gz", etag: "e" },
  ];

  it("is newest bound first, ties by key, and leaves out objects older than the range", () => {
    const order = readOrder(objects, HOUR_START);
    expect(order.map((o) => o.etag)).toEqual(["e", "c", "b", "d", "a"]);
    const recent = readOrder(objects, HOUR_START + 200_000);
    expect(recent.map((o) => o.etag)).toEqual(["e", "c", "b", "d"]);
  });

  it("stops only on a full page strictly newer than every unread object", () => {
    const rows = (...ts: number[]) => ts.map((timestamp) => ({ timestamp }));
    expect(pageIsFinal(rows(30, 20), 2, 19)).toBe(true);
    expect(pageIsFinal(rows(30, 20), 2, 20)).toBe(false);
    expect(pageIsFinal(rows(30), 2, 10)).toBe(false);
    expect(pageIsFinal(rows(30), 2, undefined)).toBe(true);
  });

  it("reads next every object that can beat the page's last row, or twice as many", () => {
    const order = readOrder(objects, HOUR_START);
    const newestOf = (i: number) => order[i]?.newest ?? Number.NaN;
    // A full page whose last row is as new as the third object's bound: read up to it.
    expect(nextRound(order, 1, [{ timestamp: 1 }, { timestamp: newestOf(2) }], 2)).toBe(4);
    // A page not full yet: twice as many, at most all.
    expect(nextRound(order, 1, [{ timestamp: 1 }], 2)).toBe(2);
    expect(nextRound(order, 3, [], 2)).toBe(5);
  });
});

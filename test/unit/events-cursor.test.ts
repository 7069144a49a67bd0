import { describe, expect, it } from "vitest";
import { decodeCursor, encodeCursor } from "../../lib/archive/events-sql.ts";
import { parseEventsQuery } from "../../lib/contract/api.ts";

/**
 * GET /events must take back every `next_cursor` it gives. The cursor carries the last event id
 * as base64url of its UTF-8 bytes, and an id is up to 128 UTF-16 units: up to 384 bytes (3 per
 * unit of non-ASCII text), 512 base64url characters. The pattern allowed 200, so the cursor of
 * an event whose id is non-ASCII text (from 51 such characters) was refused with a 400.
 */
const now = Date.UTC(2026, 10, 22, 12, 0, 0);
const timestamp = now - 60_000;

describe("GET /events cursors", () => {
  it("round-trip for any event id the contract accepts", () => {
    const ids = [
      "e".repeat(128),
      "事".repeat(51),
      "事".repeat(128),
      "\uffff".repeat(128),
      "😀".repeat(64),
      "é-ü-ß-".repeat(21),
      "0198f1c2-7a3b-7c4d-8e5f-1a2b3c4d5e6f",
    ];
    for (const eventId of ids) {
      const cursor = encodeCursor({ timestamp, eventId });
      const parsed = parseEventsQuery({ user_id: "u1", cursor }, now);
      expect(parsed.ok, `cursor of ${eventId.slice(0, 8)}… (${eventId.length} units)`).toBe(true);
      expect(parsed.ok && parsed.value.cursor).toBe(cursor);
      expect(decodeCursor(cursor)).toEqual({ timestamp, eventId });
    }
  });
});

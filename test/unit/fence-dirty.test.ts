import { describe, expect, it } from "vitest";
import { itemSizeBytes } from "../../lib/adapters/dynamodb-item-size.ts";
import { parseDirty, storedDirty } from "../../lib/adapters/window-store.ts";

/**
 * A fence is put at least twice a slice (its claim and its confirmation), so its size is paid on
 * every batch: its dirty list is stored deflated, and fences written before are still read.
 */
describe("a fence's dirty list as stored", () => {
  // What a partition's fence holds under load: every rule's open minutes and hours.
  const minute = Date.UTC(2026, 10, 25, 1, 0);
  const dirty = new Map<string, number>();
  for (const rule of [
    "events_by_type@v1",
    "unique_users@v1",
    "active_sessions_per_user@v1",
    "late_events@v1",
  ]) {
    for (let m = 0; m < 6; m++) dirty.set(`${rule}#m#${minute + m * 60_000}`, 3 + m);
    dirty.set(`${rule}#h#${minute}`, 17);
  }
  const fence = (stored: unknown) => ({
    pk: "fence#events.raw",
    sk: "p0",
    last_offset: 91_346,
    max_event_time: minute + 299_000,
    closed_before: minute + 120_000,
    dirty: stored,
    late_pending: "[]",
  });

  it("round-trips deflated, and keeps a loaded fence under 1 KB (one write unit a put) where text did not", () => {
    const stored = storedDirty(dirty);
    expect(new Map(parseDirty(stored))).toEqual(dirty);
    expect(itemSizeBytes(fence(JSON.stringify([...dirty])))).toBeGreaterThan(1024);
    expect(itemSizeBytes(fence(stored))).toBeLessThan(1024);
  });

  it("reads the text JSON of fences written before, and no list as empty", () => {
    expect(new Map(parseDirty(JSON.stringify([...dirty])))).toEqual(dirty);
    expect(parseDirty(undefined)).toEqual([]);
  });

  it("fails loudly on a malformed list rather than taking it as empty", () => {
    expect(() => parseDirty(JSON.stringify([["k", -1]]))).toThrow();
    expect(() => parseDirty(JSON.stringify({ k: 1 }))).toThrow();
  });
});

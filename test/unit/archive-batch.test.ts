import { describe, expect, it } from "vitest";
import type { ArchiveObject, ArchiveStore, WriteCondition } from "../../lib/adapters/archive-store.ts";
import { ARCHIVE_BLOCK_OFFSETS } from "../../lib/archive/layout.ts";
import { ArchiveObjectCache, archiveBatch, type SourcedRecord } from "../../lib/pipeline/archive-batch.ts";

/** An in-memory ArchiveStore: the pure batching logic needs no S3 (the integration tests use S3Proxy). */
class MemoryStore implements ArchiveStore {
  readonly objects = new Map<string, ArchiveObject>();
  readonly #etags = new Map<string, string>();
  #version = 0;
  gets = 0;
  conflicts = 0;
  /** Fails the put of the n-th next object written (1-based), once. */
  failPut = 0;
  async get(key: string) {
    this.gets++;
    const object = this.objects.get(key);
    return object ? { object, etag: this.#etags.get(key) ?? "" } : undefined;
  }
  async put(key: string, object: ArchiveObject, condition: WriteCondition) {
    if (this.failPut > 0 && --this.failPut === 0) throw new Error("S3 is away");
    const current = this.#etags.get(key);
    const holds = "ifMatch" in condition ? current === condition.ifMatch : current === undefined;
    if (!holds) {
      this.conflicts++;
      return "conflict";
    }
    const etag = `"v${++this.#version}"`;
    this.objects.set(key, { lines: [...object.lines], maxOffset: object.maxOffset });
    this.#etags.set(key, etag);
    return etag;
  }
}

const ts = Date.UTC(2026, 10, 22, 10, 30);
function records(
  partition: number,
  from: number,
  to: number,
  typeOf: (offset: number) => string = (offset) => (offset % 3 === 0 ? "click" : "page_view"),
): SourcedRecord[] {
  return Array.from({ length: to - from }, (_, i) => {
    const offset = from + i;
    const type = typeOf(offset);
    const event = {
      event_id: `e-${partition}-${offset}`,
      user_id: "u",
      event_type: type,
      timestamp: ts,
      received_at: ts,
    };
    return { topic: "events.raw", partition, offset, value: JSON.stringify(event) };
  });
}
const ids = (store: MemoryStore) =>
  [...store.objects.values()]
    .flatMap((o) => o.lines.map((l) => (JSON.parse(l) as { event_id: string }).event_id))
    .sort();

describe("archive batches", () => {
  it("archives every event once, grouped by event type partition", async () => {
    const store = new MemoryStore();
    const outcome = await archiveBatch([...records(0, 0, 50), ...records(1, 0, 50)], store, "events/");
    expect(outcome.written).toBe(100);
    expect(ids(store)).toHaveLength(100);
    expect(new Set(ids(store)).size).toBe(100);
    expect([...store.objects.keys()].every((k) => k.startsWith("events/event_type="))).toBe(true);
  });

  it("leaves the archive unchanged when a batch is replayed, even with other batch boundaries", async () => {
    const store = new MemoryStore();
    await archiveBatch(records(0, 0, 30), store, "events/");
    await archiveBatch(records(0, 30, 70), store, "events/");
    const before = JSON.stringify([...store.objects.entries()].sort());
    const replay = await archiveBatch(records(0, 0, 70), store, "events/");
    expect(replay.written).toBe(0);
    expect(replay.skipped).toBe(70);
    await archiveBatch(records(0, 20, 45), store, "events/");
    expect(JSON.stringify([...store.objects.entries()].sort())).toBe(before);
  });

  it("completes a partially written batch on retry without duplicating what was written", async () => {
    const store = new MemoryStore();
    const batch = records(0, 0, 40);
    // A first attempt that died after writing only the click object:
    await archiveBatch(
      batch.filter((r) => r.offset % 3 === 0),
      store,
      "events/",
    );
    await archiveBatch(batch, store, "events/");
    expect(ids(store)).toEqual(batch.map((r) => JSON.parse(r.value).event_id).sort());
  });

  it("returns records that are not events for the dead-letter path", async () => {
    const store = new MemoryStore();
    const bad: SourcedRecord = { topic: "events.raw", partition: 0, offset: 99, value: "{oops" };
    const outcome = await archiveBatch([...records(0, 0, 3), bad], store, "events/");
    expect(outcome.rejected).toHaveLength(1);
    expect(outcome.rejected[0]?.record.offset).toBe(99);
    expect(outcome.written).toBe(3);
  });

  it("sends a record whose dates no calendar holds to the dead-letter path, and archives the rest", async () => {
    // Not from the API (it stores whole milliseconds of dates it accepted), but a topic takes
    // what any producer writes: one such record must not fail the batch, whose retries would end
    // with every record of it on the dead-letter topic instead of in the archive.
    const store = new MemoryStore();
    const hostile = [1e20, -1, 1.5, 8.64e15 + 1].map((timestamp, i) => ({
      topic: "events.raw",
      partition: 0,
      offset: 100 + i,
      value: JSON.stringify({
        event_id: `x${i}`,
        user_id: "u",
        event_type: "click",
        timestamp,
        received_at: ts,
      }),
    }));
    const lateReceipt = {
      topic: "events.raw",
      partition: 0,
      offset: 104,
      value: JSON.stringify({
        event_id: "y",
        user_id: "u",
        event_type: "click",
        timestamp: ts,
        received_at: 1e300,
      }),
    };
    const outcome = await archiveBatch([...records(0, 0, 3), ...hostile, lateReceipt], store, "events/");
    expect(outcome.rejected.map((r) => r.record.offset)).toEqual([100, 101, 102, 103, 104]);
    expect(outcome.rejected[0]?.reason).toMatch(/timestamp/);
    expect(outcome.rejected[4]?.reason).toMatch(/received_at/);
    expect(outcome.written).toBe(3);
  });

  it("names objects with four-digit years: the last hour of year 9999 is archived, later dates are dead-lettered", async () => {
    // toISOString writes years beyond 9999 as "+010000-01-01T…": sliced to the key, that was
    // dt=+010000-01/hour=01 (the day taken for the hour), a partition no reader or Athena's
    // yyyy-MM-dd projection can name.
    const store = new MemoryStore();
    const at = [Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(10000, 0, 1), 8.64e15];
    const batch = at.map((timestamp, offset) => ({
      topic: "events.raw",
      partition: 0,
      offset,
      value: JSON.stringify({
        event_id: `y${offset}`,
        user_id: "u",
        event_type: "click",
        timestamp,
        received_at: timestamp,
      }),
    }));
    const outcome = await archiveBatch(batch, store, "events/");
    expect([...store.objects.keys()]).toEqual([
      "events/event_type=click/dt=9999-12-31/hour=23/events.raw-0-0000000000000000000.ndjson.gz",
    ]);
    expect(outcome.rejected.map((r) => r.record.offset)).toEqual([1, 2]);
    expect(outcome.rejected[0]?.reason).toMatch(/timestamp/);
  });

  it("names each object after its event's own hour, across an hour's and a day's edge", async () => {
    const store = new MemoryStore();
    const at = [
      Date.UTC(2026, 10, 22, 23, 59, 59, 999),
      Date.UTC(2026, 10, 23, 0, 0, 0, 0),
      Date.UTC(2026, 10, 22, 23, 0),
    ];
    const batch = at.map((timestamp, offset) => ({
      topic: "events.raw",
      partition: 0,
      offset,
      value: JSON.stringify({
        event_id: `h${offset}`,
        user_id: "u",
        event_type: "click",
        timestamp,
        received_at: timestamp,
      }),
    }));
    await archiveBatch(batch, store, "events/");
    expect([...store.objects.keys()].sort()).toEqual([
      "events/event_type=click/dt=2026-11-22/hour=23/events.raw-0-0000000000000000000.ndjson.gz",
      "events/event_type=click/dt=2026-11-23/hour=00/events.raw-0-0000000000000000000.ndjson.gz",
    ]);
    expect(
      store.objects.get(
        "events/event_type=click/dt=2026-11-22/hour=23/events.raw-0-0000000000000000000.ndjson.gz",
      )?.lines,
    ).toHaveLength(2);
  });

  describe("with an execution environment's cache of the objects it wrote", () => {
    const snapshot = (store: MemoryStore) => JSON.stringify([...store.objects.entries()].sort());

    it("rewrites the objects of consecutive batches without reading them back", async () => {
      const store = new MemoryStore();
      const cache = new ArchiveObjectCache();
      const all = records(0, 0, 6_000);
      const reads: number[] = [];
      for (let from = 0; from < 6_000; from += 700) {
        reads.push((await archiveBatch(all.slice(from, from + 700), store, "events/", cache)).reads);
      }
      expect(reads.every((n) => n === 0)).toBe(true);
      expect(store.gets).toBe(0);
      expect(store.conflicts).toBe(0);
      const reference = new MemoryStore();
      await archiveBatch(all, reference, "events/");
      expect(snapshot(store)).toBe(snapshot(reference));
      // Only the open block's objects stay cached.
      expect(cache.size).toBeLessThanOrEqual(2);
    });

    it("never overwrites what another environment wrote since: the stale write is refused, then redone", async () => {
      const store = new MemoryStore();
      const a = new ArchiveObjectCache();
      const b = new ArchiveObjectCache();
      const all = records(0, 0, 900);
      await archiveBatch(all.slice(0, 300), store, "events/", a);
      await archiveBatch(all.slice(300, 600), store, "events/", b);
      // A replay of 300..600 lands on A, whose cache still holds the objects as of offset 299.
      const replay = await archiveBatch(all.slice(300, 600), store, "events/", a);
      expect(replay.conflicts).toBeGreaterThan(0);
      expect(replay.written).toBe(0);
      await archiveBatch(all.slice(600, 900), store, "events/", a);
      expect(ids(store)).toEqual(all.map((r) => JSON.parse(r.value).event_id).sort());
    });

    it("gives the archive of one writer whatever environments, retries, replays and failures", async () => {
      // A seeded walk over one partition's log: each step hands the next batch (random size) to
      // one of two environments; some batches fail part-way and are retried elsewhere, some
      // committed ranges are replayed.
      let seed = 20261124;
      const random = () => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      const types = ["a", "b", "c", "d"];
      for (let run = 0; run < 60; run++) {
        const length = 1 + Math.floor(random() * 3 * ARCHIVE_BLOCK_OFFSETS);
        // Common types in every batch, and a rare one that a batch often lacks (so an environment
        // meets objects it did not write mid-run).
        const typeOf = (offset: number) => {
          const h = Math.imul(offset ^ (run * 2654435761), 2246822519) >>> 0;
          return h % 400 === 0 ? "rare" : (types[h % (1 + (run % 4))] ?? "a");
        };
        const log = records(run % 3, 0, length, typeOf);
        const store = new MemoryStore();
        const caches = [new ArchiveObjectCache(), new ArchiveObjectCache()];
        const env = () => caches[Math.floor(random() * caches.length)];
        let next = 0;
        while (next < length) {
          const size = 1 + Math.floor(random() * 900);
          const batch = log.slice(next, next + size);
          if (random() < 0.15) {
            store.failPut = 1 + Math.floor(random() * 3);
            await archiveBatch(batch, store, "events/", env()).catch(() => undefined);
            store.failPut = 0;
            continue; // retried (same offsets) by whichever environment gets it next
          }
          await archiveBatch(batch, store, "events/", env());
          next += batch.length;
          if (random() < 0.1) {
            const from = Math.floor(random() * next);
            await archiveBatch(log.slice(from, next), store, "events/", env());
          }
        }
        const reference = new MemoryStore();
        await archiveBatch(log, reference, "events/");
        expect(snapshot(store), `run ${run}`).toBe(snapshot(reference));
      }
    });
  });
});

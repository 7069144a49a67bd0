import { describe, expect, it } from "vitest";
import type { ArchiveObject, ArchiveStore } from "../../lib/adapters/archive-store.ts";
import { archiveBatch, type SourcedRecord } from "../../lib/pipeline/archive-batch.ts";

/** An in-memory ArchiveStore: the pure batching logic needs no S3 (the integration tests use S3Proxy). */
class MemoryStore implements ArchiveStore {
  readonly objects = new Map<string, ArchiveObject>();
  async get(key: string) {
    return this.objects.get(key);
  }
  async put(key: string, object: ArchiveObject) {
    this.objects.set(key, { lines: [...object.lines], maxOffset: object.maxOffset });
  }
}

const ts = Date.UTC(2026, 10, 22, 10, 30);
function records(partition: number, from: number, to: number): SourcedRecord[] {
  return Array.from({ length: to - from }, (_, i) => {
    const offset = from + i;
    const type = offset % 3 === 0 ? "click" : "page_view";
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
});

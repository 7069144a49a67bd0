import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { S3ArchiveStore } from "../../lib/adapters/archive-store.ts";
import { DuckDbEventsEngine } from "../../lib/adapters/events-duckdb.ts";
import { localS3Options } from "../../lib/adapters/s3-client.ts";
import { AHEAD_OF_RECEIPT_MS } from "../../lib/archive/layout.ts";
import { archiveBatch, type SourcedRecord } from "../../lib/pipeline/archive-batch.ts";

/**
 * GET /events' local engine reads an hour's archive objects newest possible event first and stops
 * once the page cannot change: checked on the S3 server with objects the archive writer made.
 */
describe("GET /events reads only the archive objects a page needs", () => {
  const endpoints = inject("endpoints");
  const s3 = new S3Client({
    region: "us-east-1",
    ...localS3Options(endpoints.s3Endpoint),
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });
  const fetched: string[] = [];
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { Key?: string };
      if ((context as { commandName?: string }).commandName === "GetObjectCommand" && input.Key)
        fetched.push(input.Key);
      return next(args);
    },
    { step: "initialize" },
  );
  const bucket = `events-read-order-${Date.now()}`;
  const store = new S3ArchiveStore(s3, bucket);
  const eventType = "read_order_test";
  // Early in an hour, so that every event of the test falls in it.
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  const t0 = Date.now();
  let offset = 0;

  const record = (partition: number, id: string, timestamp: number, receivedAt: number): SourcedRecord => ({
    topic: "events.raw",
    partition,
    offset: offset++,
    value: JSON.stringify({
      event_id: id,
      user_id: "u",
      event_type: eventType,
      timestamp,
      received_at: receivedAt,
    }),
  });
  const all: { id: string; timestamp: number }[] = [];
  const keep = (r: SourcedRecord) => {
    const e = JSON.parse(r.value) as { event_id: string; timestamp: number };
    all.push({ id: e.event_id, timestamp: e.timestamp });
    return r;
  };

  beforeAll(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    // Older events, received now, and one event its client stamped four minutes ahead.
    const first = Array.from({ length: 50 }, (_, i) =>
      keep(record(0, `a${String(i).padStart(3, "0")}`, Math.max(hour, t0 - 60_000) + i, t0)),
    );
    first.push(keep(record(0, "ahead", t0 + 4 * 60_000, t0)));
    await archiveBatch(first, store, "events/");
    // Newer events, in an object written at least a few seconds later (LastModified is whole seconds).
    await new Promise((r) => setTimeout(r, 2_000 + 2 * AHEAD_OF_RECEIPT_MS + 1_000));
    const t1 = Date.now();
    const second = Array.from({ length: 50 }, (_, i) =>
      keep(record(1, `b${String(i).padStart(3, "0")}`, t1 - 100 + i, t1)),
    );
    await archiveBatch(second, store, "events/");
    all.sort((a, b) => b.timestamp - a.timestamp || (a.id < b.id ? 1 : -1));
  }, 30_000);
  afterAll(() => s3.destroy());

  const query = (engine: DuckDbEventsEngine, limit: number, after?: { timestamp: number; eventId: string }) =>
    engine.query({
      eventType,
      from: hour,
      to: t0 + 5 * 60_000,
      limit,
      ...(after ? { after } : {}),
    });

  it("keeps events stamped ahead of their receipt in objects of their own", async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "events/" }));
    const keys = (listed.Contents ?? []).map((o) => o.Key ?? "");
    expect(keys.filter((k) => k.endsWith("-ahead.ndjson.gz"))).toHaveLength(1);
    expect(keys).toHaveLength(3);
    const ahead = keys.find((k) => k.endsWith("-ahead.ndjson.gz")) ?? "";
    const body = await (
      await s3.send(new GetObjectCommand({ Bucket: bucket, Key: ahead }))
    ).Body?.transformToString();
    expect(body).toBeDefined();
  });

  it("serves the newest page without fetching the object of older events", async () => {
    fetched.length = 0;
    const engine = new DuckDbEventsEngine(s3, bucket, "events/", { firstRound: 1 });
    const rows = await query(engine, 10);
    expect(rows.map((r) => r.event_id)).toEqual(all.slice(0, 10).map((e) => e.id));
    expect(rows[0]?.event_id).toBe("ahead");
    expect(fetched).toHaveLength(2);
    expect(fetched.some((k) => k.includes("events.raw-0-") && !k.includes("-ahead"))).toBe(false);
  });

  it("pages through every event in order, none twice, none left out", async () => {
    const engine = new DuckDbEventsEngine(s3, bucket, "events/", { firstRound: 1 });
    const seen: string[] = [];
    let after: { timestamp: number; eventId: string } | undefined;
    for (let page = 0; page < 20; page++) {
      const rows = await query(engine, 7, after);
      seen.push(...rows.map((r) => r.event_id));
      const last = rows[rows.length - 1];
      if (rows.length < 7 || !last) break;
      after = { timestamp: last.timestamp, eventId: last.event_id };
    }
    expect(seen).toEqual(all.map((e) => e.id));
  });
});

import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import type { MSKEvent } from "aws-lambda";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3ArchiveStore } from "../../lib/adapters/archive-store.ts";
import { localS3Options } from "../../lib/adapters/s3-client.ts";
import { buckets, eventSourceMappings, topics } from "../../lib/topology.ts";
import { LocalEventSourceMapping } from "../../local/event-source-mapping.ts";
import { localFunction } from "../../local/lambda-runtime.ts";
import type { LocalStack } from "../../local/stack.ts";
import { getJson, postJson, startPipeline, waitFor } from "./support.ts";

interface Page {
  events: { event_id: string; event_type: string; user_id: string; timestamp: number }[];
  next_cursor: string | null;
}

describe("ingestion at scale and the archive", () => {
  let stack: LocalStack;
  let s3: S3Client;
  let store: S3ArchiveStore;

  beforeAll(async () => {
    stack = await startPipeline();
    s3 = new S3Client({
      region: "us-east-1",
      ...localS3Options(stack.endpoints.s3Endpoint),
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    });
    store = new S3ArchiveStore(s3, stack.names.buckets.archive);
  });
  afterAll(async () => {
    await stack?.stop();
    s3?.destroy();
  });

  /** Every archived line of one event type, read straight from the S3 server. */
  async function archived(eventType: string): Promise<{ keys: string[]; ids: string[]; snapshot: string }> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const res = await s3.send(
        new ListObjectsV2Command({
          Bucket: stack.names.buckets.archive,
          Prefix: `${buckets.archive.prefix}event_type=${eventType}/`,
          ContinuationToken: token,
        }),
      );
      for (const o of res.Contents ?? []) if (o.Key) keys.push(o.Key);
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    keys.sort();
    const objects = await Promise.all(keys.map(async (k) => (await store.get(k))?.object));
    const ids = objects.flatMap((o) =>
      (o?.lines ?? []).map((l) => (JSON.parse(l) as { event_id: string }).event_id),
    );
    return { keys, ids, snapshot: JSON.stringify(objects) };
  }

  it("accepts a 10,000-event batch and archives every event exactly once; a replay changes nothing", async () => {
    const eventType = `bulk_${Date.now()}`;
    const now = Date.now();
    const events = Array.from({ length: 10_000 }, (_, i) => ({
      user_id: `user-${i % 317}`,
      event_type: eventType,
      timestamp: now - (i % 600) * 1000,
      properties: { amount: i % 100, currency: "EUR" },
    }));
    const res = await postJson(`${stack.url}/events`, { events });
    expect(res.status).toBe(202);
    const sent = (res.json as { accepted: number; event_ids: string[] }).event_ids;
    expect(sent).toHaveLength(10_000);
    expect(new Set(sent).size).toBe(10_000);

    const first = await waitFor(
      async () => {
        const a = await archived(eventType);
        return a.ids.length >= 10_000 ? a : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(first.ids).toHaveLength(10_000);
    expect(new Set(first.ids)).toEqual(new Set(sent));

    // Replay the whole topic through the archive function under a new consumer group: other
    // batch boundaries, same records. The archive must not change by a byte.
    const spec = eventSourceMappings.find((m) => m.id === "ArchiveEvents");
    if (!spec) throw new Error("no ArchiveEvents mapping");
    const kafka = new Kafka({
      clientId: "replay",
      brokers: stack.endpoints.kafkaBrokers,
      logLevel: logLevel.NOTHING,
    });
    const archive = localFunction("archive");
    const replay = new LocalEventSourceMapping({
      spec: { ...spec, consumerGroup: `replay-${Date.now()}`, batchSize: 777 },
      kafka,
      topic: topics.eventsRaw.name,
      onFailureTopic: topics.deadLetter.name,
      functionName: "archive-replay",
      invoke: (e: MSKEvent) => archive.invoke(e),
    });
    const admin = kafka.admin();
    await admin.connect();
    const end = (await admin.fetchTopicOffsets(topics.eventsRaw.name)).reduce(
      (n, p) => n + Number(p.high),
      0,
    );
    await replay.start();
    await waitFor(async () => (replay.stats.recordsDelivered >= end ? true : undefined), {
      timeoutMs: 60_000,
    });
    await replay.stop();
    await admin.disconnect();
    const after = await archived(eventType);
    expect(after.keys).toEqual(first.keys);
    expect(after.snapshot).toBe(first.snapshot);
  });

  it("serves exactly the stored events through GET /events for user, type and range, across pages", async () => {
    const user = `pager-${Date.now()}`;
    const now = Date.now();
    const posted = Array.from({ length: 25 }, (_, i) => ({
      user_id: user,
      event_type: i % 2 === 0 ? "page_view" : "click",
      timestamp: now - i * 60_000,
      page_url: `https://shop.example/${i}`,
    }));
    const res = await postJson(`${stack.url}/events`, posted);
    expect(res.status).toBe(202);
    const ids = (res.json as { event_ids: string[] }).event_ids;
    const expected = posted
      .map((e, i) => ({ ...e, event_id: ids[i] ?? "" }))
      .sort((a, b) => b.timestamp - a.timestamp || (a.event_id < b.event_id ? 1 : -1));

    await waitFor(
      async () => {
        const { json } = await getJson(`${stack.url}/events?user_id=${user}&limit=100`);
        return (json as Page).events.length === 25 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 300 },
    );

    const pages: Page[] = [];
    let cursor: string | null = null;
    do {
      const q: string = `${stack.url}/events?user_id=${user}&limit=7${cursor ? `&cursor=${cursor}` : ""}`;
      const { status, json } = await getJson(q);
      expect(status).toBe(200);
      pages.push(json as Page);
      cursor = (json as Page).next_cursor;
    } while (cursor);
    expect(pages.map((p) => p.events.length)).toEqual([7, 7, 7, 4]);
    expect(pages.flatMap((p) => p.events.map((e) => e.event_id))).toEqual(expected.map((e) => e.event_id));

    const clicks = (await getJson(`${stack.url}/events?user_id=${user}&event_type=click&limit=100`))
      .json as Page;
    expect(clicks.events.map((e) => e.event_id)).toEqual(
      expected.filter((e) => e.event_type === "click").map((e) => e.event_id),
    );

    const from = now - 10 * 60_000;
    const recent = (await getJson(`${stack.url}/events?user_id=${user}&from=${from}&to=${now + 1}&limit=100`))
      .json as Page;
    expect(recent.events.map((e) => e.event_id)).toEqual(
      expected.filter((e) => e.timestamp >= from).map((e) => e.event_id),
    );

    const bad = await getJson(`${stack.url}/events?user_id=${user}&cursor=forged`);
    expect(bad.status).toBe(400);
  });

  it("answers each kind of malformed input with a 4xx naming the problem", async () => {
    const url = `${stack.url}/events`;
    const ok = { user_id: "u", event_type: "click", timestamp: Date.now() };
    const cases: [unknown, number, string][] = [
      ["{not json", 400, "not valid JSON"],
      [{ ...ok, user_id: 7 }, 400, "user_id"],
      [{ ...ok, properties: { blob: "x".repeat(40_000) } }, 400, "at most 32768"],
      [Array.from({ length: 10_001 }, () => ok), 400, "too many events"],
      [{ ...ok, timestamp: Date.now() + 10 * 60_000 }, 400, "in the future"],
      [{ ...ok, browser: "x" }, 400, "unknown field 'browser'"],
    ];
    for (const [body, status, text] of cases) {
      const res = await postJson(url, body);
      expect(res.status, text).toBe(status);
      expect(JSON.stringify(res.json), text).toContain(text);
      expect(res.json).toHaveProperty("error.code");
    }
    const huge = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "x".repeat(11 * 1024 * 1024),
    });
    expect(huge.status).toBe(413);
  });
});

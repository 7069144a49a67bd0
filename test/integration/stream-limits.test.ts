import { CreateTableCommand, DynamoDBClient, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { topics } from "../../lib/topology.ts";
import type { LocalStack } from "../../local/stack.ts";
import { LocalTableStreamMapping, type StreamFailureRecord } from "../../local/table-stream-mapping.ts";
import { getJson, postJson, startPipeline, waitFor } from "./support.ts";

/**
 * What real traffic does to the stream core on the real services (DynamoDB Local's item and
 * transaction limits, Kafka's message size): huge numbers, long URLs, bursts over thousands of
 * groups, and a stats publisher that must lose nothing (issues 8.2, 8.3 and 12).
 */
interface Stats {
  count: number;
  sum?: number;
  groups?: { group: Record<string, string>; count: number }[];
}

describe("stream limits on the real services", () => {
  let stack: LocalStack;
  const logs: string[] = [];
  beforeAll(async () => {
    stack = await startPipeline({ log: (line) => logs.push(line) });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const post = async (events: unknown[]) => {
    const res = await postJson(`${stack.url}/events`, events);
    expect(res.status).toBe(202);
  };
  /** Creates a 1-minute count rule of `eventType` by `field`, and waits until the aggregator has it. */
  const countBy = async (ruleId: string, eventType: string, field: string) => {
    const created = await postJson(`${stack.url}/rules`, {
      rule_id: ruleId,
      event_type: eventType,
      metric: "count",
      group_by: [field],
      window: { type: "tumbling", size: "1m" },
    });
    expect(created.status).toBe(201);
    await new Promise((r) => setTimeout(r, 3_500)); // the aggregator re-reads rules every 3 s
  };
  const stats = (query: string) => getJson(`${stack.url}/stats?${query}`).then((r) => r.json as Stats);

  it("accepts a legal 4.5 MB POST of 10,000 events of one user (one partition, above Kafka's 1 MiB default)", async () => {
    const type = `bulk_${Date.now()}`;
    const now = Date.now();
    const note = "n".repeat(350);
    const events = Array.from({ length: 10_000 }, (_, i) => ({
      user_id: "bulk-user",
      event_type: type,
      timestamp: now,
      properties: { i, note },
    }));
    const res = await postJson(`${stack.url}/events`, { events });
    expect(res.status).toBe(202);
    const s = await waitFor(
      async () => {
        const r = await stats(`event_type=${type}&interval=5m`);
        return r.count === 10_000 ? r : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(s.count).toBe(10_000);
  });

  it("8.2 sums numbers beyond 2^53 without losing the batch", async () => {
    const type = `huge_${Date.now()}`;
    const now = Date.now();
    await post([
      { user_id: "h1", event_type: type, timestamp: now, properties: { amount: 2 ** 60 } },
      { user_id: "h2", event_type: type, timestamp: now, properties: { amount: 1e300 } },
      { user_id: "h3", event_type: type, timestamp: now, properties: { amount: now } },
    ]);
    const s = await waitFor(async () => {
      const r = await stats(`event_type=${type}&interval=5m&field=properties.amount`);
      return r.count === 3 ? r : undefined;
    });
    expect(s.sum).toBe(1e300 + 2 ** 60 + now);
  });

  it("8.3 keeps 2 KB page URLs of thousands of groups within DynamoDB's item and transaction limits", async () => {
    // A type and rule of its own: page_view's top pages also hold every other test file's pages
    // of the last minutes (the services are shared), which crowded these out of the top 20.
    const tag = `long_${Date.now()}`;
    await countBy(`${tag}-by-page`, tag, "page_url");
    const now = Date.now();
    const pad = "x".repeat(2_000);
    const events = Array.from({ length: 3_000 }, (_, i) => ({
      user_id: `${tag}-${i % 300}`,
      event_type: tag,
      timestamp: now,
      page_url: `https://shop.example/${tag}/${i}/${pad}`,
    }));
    for (let i = 0; i < events.length; i += 1_000) await post(events.slice(i, i + 1_000));
    const grouped = await waitFor(
      async () => {
        const r = await stats(`event_type=${tag}&interval=5m&group_by=page_url`);
        return r.count >= 3_000 ? r : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(grouped.count).toBe(3_000);
    expect(grouped.groups).toHaveLength(20);
    for (const g of grouped.groups ?? []) expect(g.group.page_url).toContain(tag);
    expect(logs.filter((l) => /sent to|skipped|failed/.test(l))).toEqual([]);
  });

  it("12 analytics.stats ends with every window's latest value equal to GET /stats after a burst over 20,000 users", async () => {
    const type = `burst_${Date.now()}`;
    const ruleId = `burst-by-user-${Date.now()}`;
    await countBy(ruleId, type, "user_id");

    const kafka = new Kafka({
      clientId: "burst-test",
      brokers: stack.endpoints.kafkaBrokers,
      logLevel: logLevel.NOTHING,
    });
    const consumer = kafka.consumer({ groupId: `burst-test-${Date.now()}` });
    const latest = new Map<string, { count: number; updated_at: string; window_start: string }>();
    await consumer.connect();
    await consumer.subscribe({ topic: topics.analyticsStats.name, fromBeginning: false });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const value = JSON.parse(message.value?.toString() ?? "{}") as {
          rule_id: string;
          window_id: string;
          count: number;
          updated_at: string;
          window_start: string;
        };
        if (value.rule_id !== ruleId) return;
        const seen = latest.get(value.window_id);
        // Documented: the message read last (greatest updated_at) holds a window's latest value.
        if (!seen || seen.updated_at <= value.updated_at) latest.set(value.window_id, value);
      },
    });
    await new Promise((r) => setTimeout(r, 1_000));

    const users = 20_000;
    const now = Date.now();
    const events = Array.from({ length: users }, (_, i) => ({
      user_id: `burst-${i}`,
      event_type: type,
      timestamp: now,
    }));
    await Promise.all(
      Array.from({ length: users / 1_000 }, (_, k) => post(events.slice(k * 1_000, (k + 1) * 1_000))),
    );
    const sum = () => [...latest.values()].reduce((n, v) => n + v.count, 0);
    await waitFor(async () => (latest.size === users && sum() === users ? true : undefined), {
      timeoutMs: 90_000,
      intervalMs: 500,
    });
    await consumer.disconnect();

    const windowStarts = new Set([...latest.values()].map((v) => Date.parse(v.window_start)));
    let fromApi = 0;
    for (const ws of windowStarts) {
      const r = await getJson(`${stack.url}/stats?rule_id=${ruleId}&from=${ws}&to=${ws + 60_000}`);
      const s = r.json as Stats;
      fromApi += s.count;
      for (const g of s.groups ?? []) {
        const key = `${ruleId}#${g.group.user_id}#m#${ws}`;
        expect(latest.get(key)?.count, key).toBe(g.count);
      }
    }
    expect(fromApi).toBe(users);
    expect(logs.filter((l) => /skipped|sent to the on-failure|too large/.test(l))).toEqual([]);
  });
});

/** A fresh table with a NEW_IMAGE stream on DynamoDB Local. */
async function streamedTable(prefix: string) {
  const endpoint = inject("endpoints").dynamodbEndpoint;
  const region = "us-east-1";
  const credentials = { accessKeyId: "local", secretAccessKey: "local" };
  const db = new DynamoDBClient({ region, endpoint, credentials });
  const table = `${prefix}-${Date.now()}`;
  await db.send(
    new CreateTableCommand({
      TableName: table,
      AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
      KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
      BillingMode: "PAY_PER_REQUEST",
      StreamSpecification: { StreamEnabled: true, StreamViewType: "NEW_IMAGE" },
    }),
  );
  return { db, table, endpoint, region, credentials };
}

describe("DynamoDB-stream mapping: no silent skip", () => {
  it("sends a batch that fails every retry to the on-failure destination, counted, with its records", async () => {
    const { db, table, endpoint, region, credentials } = await streamedTable("stream-failure");
    const failures: StreamFailureRecord[] = [];
    const lines: string[] = [];
    const mapping = new LocalTableStreamMapping({
      spec: {
        id: "FailingTest",
        batchSize: 10,
        maximumBatchingWindowSeconds: 0,
        startingPosition: "TRIM_HORIZON",
        maximumRetryAttempts: 2,
        reportBatchItemFailures: true,
      },
      client: new DynamoDBStreamsClient({ region, endpoint, credentials }),
      tableName: table,
      region,
      invoke: async () => {
        throw new Error("always fails");
      },
      onFailure: async (f) => {
        failures.push(f);
      },
      log: (l) => lines.push(l),
    });
    await mapping.start();
    try {
      await db.send(new PutItemCommand({ TableName: table, Item: { pk: { S: "lost?" } } }));
      await waitFor(async () => (failures.length > 0 ? true : undefined), { timeoutMs: 20_000 });
    } finally {
      await mapping.stop();
      db.destroy();
    }
    expect(failures[0]?.DDBStreamBatchInfo.batchSize).toBe(1);
    expect(failures[0]?.requestContext).toEqual({
      condition: "RetryAttemptsExhausted",
      approximateInvokeCount: 3,
    });
    expect(failures[0]?.records[0]?.dynamodb?.Keys).toEqual({ pk: { S: "lost?" } });
    expect(mapping.stats.recordsSentToOnFailure).toBe(1);
    expect(lines.some((l) => l.includes("on-failure destination") && l.includes("lost?"))).toBe(true);
    expect(lines.some((l) => l.includes("skipped"))).toBe(false);
  });
});

describe("DynamoDB-stream mapping: batching window", () => {
  it("gathers the writes of a window into one invocation, in order, and invokes a full batch at once", async () => {
    const { db, table, endpoint, region, credentials } = await streamedTable("stream-window");
    const invocations: { at: number; keys: string[] }[] = [];
    const mapping = new LocalTableStreamMapping({
      spec: {
        id: "WindowTest",
        batchSize: 8,
        maximumBatchingWindowSeconds: 2,
        startingPosition: "TRIM_HORIZON",
        maximumRetryAttempts: 0,
        reportBatchItemFailures: true,
      },
      client: new DynamoDBStreamsClient({ region, endpoint, credentials }),
      tableName: table,
      region,
      invoke: async (event) => {
        invocations.push({ at: Date.now(), keys: event.Records.map((r) => r.dynamodb?.Keys?.pk?.S ?? "") });
        return { batchItemFailures: [] };
      },
      onFailure: async () => undefined,
    });
    await mapping.start();
    const put = (pk: string) => db.send(new PutItemCommand({ TableName: table, Item: { pk: { S: pk } } }));
    try {
      // Three writes 300 ms apart: one invocation after the window, not three.
      const began = Date.now();
      for (const pk of ["a", "b", "c"]) {
        await put(pk);
        await new Promise((r) => setTimeout(r, 300));
      }
      await waitFor(async () => (invocations.length > 0 ? true : undefined), { timeoutMs: 10_000 });
      expect(invocations[0]?.keys).toEqual(["a", "b", "c"]);
      expect((invocations[0]?.at ?? 0) - began).toBeGreaterThanOrEqual(1_900);
      // Eight writes fill a batch: invoked without waiting for the window.
      const full = Date.now();
      for (let i = 0; i < 8; i++) await put(`f${i}`);
      await waitFor(async () => (invocations.length > 1 ? true : undefined), { timeoutMs: 10_000 });
      expect(invocations[1]?.keys).toEqual(Array.from({ length: 8 }, (_, i) => `f${i}`));
      expect((invocations[1]?.at ?? 0) - full).toBeLessThan(1_900);
    } finally {
      await mapping.stop();
      db.destroy();
    }
  });
});

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import type { Kafka, ProducerRecord } from "kafkajs";
import { describe, expect, it, vi } from "vitest";

/**
 * POST /events waits for Kafka's acknowledgement (tens of ms under load, several requests in
 * flight); what it holds meanwhile survives the young generation's collections and is promoted.
 * The parsed events (objects, `properties`, `metadata`) are not needed past building the
 * messages: only the serialized values, the keys and the ids. This pins that the handler lets
 * them go before it waits, and that it still answers with every id and publishes every event.
 */
const kafka = vi.hoisted(() => {
  const state = {
    sends: [] as { record: unknown; ack: () => void }[],
  };
  return state;
});

vi.mock("../../lib/adapters/kafka.ts", () => ({
  createKafka: async (): Promise<Kafka> => {
    const producer = {
      connect: async () => undefined,
      disconnect: async () => undefined,
      send: (record: ProducerRecord) =>
        new Promise((resolve) => kafka.sends.push({ record, ack: () => resolve([]) })),
    };
    return { producer: () => producer } as unknown as Kafka;
  },
}));

/** WeakRefs to what parseIngestBody returned: the events array and each event. */
const parsed = vi.hoisted(() => ({ refs: [] as WeakRef<object>[] }));
vi.mock("../../lib/contract/event.ts", async (original) => {
  const real = await original<typeof import("../../lib/contract/event.ts")>();
  return {
    ...real,
    parseIngestBody: (...args: Parameters<typeof real.parseIngestBody>) => {
      const result = real.parseIngestBody(...args);
      if (result.ok) {
        parsed.refs.push(new WeakRef(result.events));
        for (const event of result.events) parsed.refs.push(new WeakRef(event));
        for (const event of result.events)
          if (event.properties) parsed.refs.push(new WeakRef(event.properties));
      }
      return result;
    },
  };
});

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const context = {
  functionName: "ingest",
  awsRequestId: "r",
  getRemainingTimeInMillis: () => 29_000,
} as Context;

describe("POST /events while Kafka has not acknowledged", () => {
  it("holds none of the parsed events, and answers every id once acknowledged", async () => {
    Object.assign(process.env, { TOPIC_EVENTS_RAW: "events.raw", KAFKA_BROKERS: "localhost:9" });
    const { handler } = await import("../../functions/ingest.ts");
    const now = Date.now();
    const events = Array.from({ length: 50 }, (_, i) => ({
      user_id: `u${i}`,
      event_type: "page_view",
      timestamp: now,
      properties: { n: i, nested: { list: [i, "x"] } },
      ...(i % 2 === 0 ? { event_id: `id-${i}` } : {}),
    }));
    const answer = handler(
      {
        httpMethod: "POST",
        body: JSON.stringify(events),
        isBase64Encoded: false,
      } as unknown as APIGatewayProxyEvent,
      context,
    );
    for (let i = 0; i < 50 && kafka.sends.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(kafka.sends).toHaveLength(1);
    expect(parsed.refs).toHaveLength(101);
    // WeakRefs made in a job hold their target until it ends: a macrotask later, then collect.
    await new Promise((r) => setTimeout(r, 0));
    gc();
    await new Promise((r) => setTimeout(r, 0));
    gc();
    expect(parsed.refs.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);

    const record = kafka.sends[0]?.record as { messages: { key: string; value: string }[] };
    expect(record.messages.map((m) => m.key)).toEqual(events.map((e) => e.user_id));
    const stored = record.messages.map(
      (m) => JSON.parse(m.value) as { event_id: string; properties: unknown },
    );
    expect(stored.map((e) => e.properties)).toEqual(events.map((e) => e.properties));
    kafka.sends[0]?.ack();
    const res = await answer;
    expect(res.statusCode).toBe(202);
    expect(JSON.parse(res.body)).toEqual({ accepted: 50, event_ids: stored.map((e) => e.event_id) });
    expect(stored.filter((_, i) => i % 2 === 0).map((e) => e.event_id)).toEqual(
      events.filter((_, i) => i % 2 === 0).map((_, j) => `id-${2 * j}`),
    );
  });
});

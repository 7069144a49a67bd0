import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import type { Kafka } from "kafkajs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  BrokerUnavailableError,
  INGEST_PUBLISH_BUDGET_MS,
  KafkaEventPublisher,
} from "../../lib/adapters/event-publisher.ts";

/**
 * POST /events in AWS against a broker that takes the connection but never acknowledges (a
 * stalled in-sync replica, a broker failing over): kafkajs waits 10 s a request and retries twice,
 * past API Gateway's 29 s, whose bare 504 carries no Retry-After (and ingest's Lambda timeout is
 * 29 s too). The handler now gives up first and answers 503 with Retry-After, as the contract says
 * for an unavailable broker.
 */
const sent = vi.hoisted(() => ({ count: 0 }));

/** A kafkajs client whose producer takes `connectMs` to connect, then acknowledges every send at once. */
function slowToConnectKafka(connectMs: number): Kafka {
  const producer = {
    connect: () => new Promise<void>((resolve) => setTimeout(resolve, connectMs)),
    disconnect: async () => undefined,
    send: async () => {
      sent.count++;
      return [];
    },
  };
  return { producer: () => producer } as unknown as Kafka;
}

/** A kafkajs client whose producer connects and then never hears back. */
function stalledKafka(): Kafka {
  const producer = {
    connect: async () => undefined,
    disconnect: async () => undefined,
    send: () => {
      sent.count++;
      return new Promise<never>(() => undefined);
    },
  };
  return { producer: () => producer } as unknown as Kafka;
}

vi.mock("../../lib/adapters/kafka.ts", () => ({ createKafka: async () => stalledKafka() }));

const now = Date.UTC(2026, 10, 22, 12, 0, 0);
const context = {
  functionName: "ingest",
  awsRequestId: "r",
  getRemainingTimeInMillis: () => 29_000,
} as Context;

beforeEach(() => {
  vi.useFakeTimers({ now });
  sent.count = 0;
});
afterEach(() => {
  vi.useRealTimers();
});

describe("POST /events when Kafka does not acknowledge", () => {
  it("answers 503 with Retry-After before API Gateway's 29 s, not the gateway's 504", async () => {
    Object.assign(process.env, { TOPIC_EVENTS_RAW: "events.raw", KAFKA_BROKERS: "localhost:9" });
    const { handler } = await import("../../functions/ingest.ts");
    let answered: Awaited<ReturnType<typeof handler>> | undefined;
    void handler(
      {
        httpMethod: "POST",
        body: JSON.stringify({ user_id: "u1", event_type: "page_view", timestamp: now }),
        isBase64Encoded: false,
      } as unknown as APIGatewayProxyEvent,
      context,
    ).then((res) => {
      answered = res;
    });
    await vi.advanceTimersByTimeAsync(INGEST_PUBLISH_BUDGET_MS + 1);
    expect(sent.count).toBe(1);
    expect(answered?.statusCode).toBe(503);
    expect(answered?.headers?.["retry-after"]).toBeDefined();
    expect(JSON.parse(answered?.body ?? "{}").error.code).toBe("service_unavailable");
    expect(INGEST_PUBLISH_BUDGET_MS).toBeLessThan(29_000);
  });

  it("gives up on a queued publish at its deadline and never sends it afterwards", async () => {
    const publisher = new KafkaEventPublisher(stalledKafka(), { topic: "t", maxMessageBytes: 1 << 20 });
    const message = { key: "u1", value: "{}", timestamp: now };
    const outcomes: unknown[] = [];
    for (const deadline of [now + 1_000, now + 500])
      publisher.publish([message], { deadline }).then(
        () => outcomes.push("acknowledged"),
        (error: unknown) => outcomes.push(error),
      );
    await vi.advanceTimersByTimeAsync(1_001);
    expect(outcomes).toHaveLength(2);
    for (const outcome of outcomes) expect(outcome).toBeInstanceOf(BrokerUnavailableError);
    // The first is in flight (its request hangs); the second, still queued, was dropped.
    expect(sent.count).toBe(1);
  });

  it("does not send a publish whose deadline passed while the connection was being made", async () => {
    // A cold start (or a reconnect after a failure) whose connection takes longer than the
    // request's budget: the client is answered 503, so its events must not be published after
    // that by the connection finally succeeding (nothing was sent yet: dropping them is possible,
    // unlike a request already in flight).
    const publisher = new KafkaEventPublisher(slowToConnectKafka(30_000), {
      topic: "t",
      maxMessageBytes: 1 << 20,
    });
    const message = { key: "u1", value: "{}", timestamp: now };
    const outcomes: unknown[] = [];
    publisher.publish([message], { deadline: now + INGEST_PUBLISH_BUDGET_MS }).then(
      () => outcomes.push("acknowledged"),
      (error: unknown) => outcomes.push(error),
    );
    await vi.advanceTimersByTimeAsync(INGEST_PUBLISH_BUDGET_MS + 1);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toBeInstanceOf(BrokerUnavailableError);
    // The connection succeeds later: the expired publish stays unsent.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sent.count).toBe(0);
    // A publish made once connected is sent and acknowledged as before.
    await expect(publisher.publish([message], { deadline: Date.now() + 1_000 })).resolves.toBeUndefined();
    expect(sent.count).toBe(1);
  });
});

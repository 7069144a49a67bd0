import { describe, expect, it } from "vitest";
import {
  chunkByBytes,
  MessageTooLargeError,
  messageBytes,
  sendBounded,
} from "../../lib/adapters/kafka-batches.ts";

describe("produce requests bounded by bytes", () => {
  const message = (i: number, size: number) => ({ key: `k${i}`, value: "x".repeat(size) });

  it("cuts messages, in order, into requests that fit the topic's max.message.bytes", () => {
    const messages = Array.from({ length: 100 }, (_, i) => message(i, 10_000));
    const chunks = chunkByBytes(messages, 100_000);
    expect(chunks.flat()).toEqual(messages);
    for (const c of chunks) expect(c.reduce((n, m) => n + messageBytes(m), 0)).toBeLessThanOrEqual(100_000);
    expect(chunks.length).toBeGreaterThan(10);
  });

  it("refuses a single message above the limit instead of retrying it forever", () => {
    expect(() => chunkByBytes([message(0, 2_000)], 1_000)).toThrow(MessageTooLargeError);
  });

  it("sends every chunk with the same record settings", async () => {
    const sent: { topic: string; acks?: number; count: number }[] = [];
    const producer = {
      send: async (r: { topic: string; acks?: number; messages: unknown[] }) => {
        sent.push({ topic: r.topic, acks: r.acks, count: r.messages.length });
        return [];
      },
    };
    await sendBounded(
      producer,
      { topic: "t", acks: -1, messages: Array.from({ length: 30 }, (_, i) => message(i, 1_000)) },
      10_000,
    );
    expect(sent.every((s) => s.topic === "t" && s.acks === -1)).toBe(true);
    expect(sent.reduce((n, s) => n + s.count, 0)).toBe(30);
    expect(sent.length).toBe(4);
  });
});

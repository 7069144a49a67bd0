import type { KafkaMessage } from "kafkajs";
import { describe, expect, it } from "vitest";
import { batchingWindowEnvVar, batchingWindowOverride } from "../../lib/topology.ts";
import { TokenBucket } from "../../local/api-gateway.ts";
import { interpretBatchResponse, mskEvent } from "../../local/event-source-mapping.ts";

const message = (offset: number, value: string): KafkaMessage => ({
  key: Buffer.from(`k${offset}`),
  value: Buffer.from(value),
  offset: String(offset),
  timestamp: "1700000000000",
  attributes: 0,
  headers: { h: Buffer.from("v") },
  size: undefined,
});

describe("MSK event shape", () => {
  it("groups records under topic-partition with base64 key, value and byte-array headers", () => {
    const event = mskEvent("events.raw", 2, [message(5, '{"a":1}')]);
    expect(event.eventSource).toBe("aws:kafka");
    const records = event.records["events.raw-2"];
    expect(records).toHaveLength(1);
    expect(records?.[0]).toMatchObject({
      topic: "events.raw",
      partition: 2,
      offset: 5,
      timestamp: 1700000000000,
    });
    expect(Buffer.from(records?.[0]?.value ?? "", "base64").toString()).toBe('{"a":1}');
    expect(Buffer.from(records?.[0]?.key ?? "", "base64").toString()).toBe("k5");
    expect(records?.[0]?.headers).toEqual([{ h: [...Buffer.from("v")] }]);
  });
});

describe("batch responses", () => {
  const batch = [message(10, "a"), message(11, "b"), message(12, "c")];
  it("treats empty or absent batchItemFailures as success", () => {
    expect(interpretBatchResponse(undefined, "t-0", batch)).toEqual({ kind: "success" });
    expect(interpretBatchResponse({ batchItemFailures: [] }, "t-0", batch)).toEqual({ kind: "success" });
  });
  it("retries from the lowest reported offset", () => {
    const r = interpretBatchResponse(
      {
        batchItemFailures: [
          { itemIdentifier: { partition: "t-0", offset: 12 } },
          { itemIdentifier: { partition: "t-0", offset: 11 } },
        ],
      },
      "t-0",
      batch,
    );
    expect(r).toMatchObject({ kind: "partial", firstFailedOffset: 11 });
  });
  it("fails the whole batch on an identifier that is not in it", () => {
    const r = interpretBatchResponse(
      { batchItemFailures: [{ itemIdentifier: { partition: "t-0", offset: 99 } }] },
      "t-0",
      batch,
    );
    expect(r.kind).toBe("failure");
    expect(interpretBatchResponse({ batchItemFailures: "x" }, "t-0", batch).kind).toBe("failure");
  });
});

describe("stage throttling", () => {
  it("lets a burst through, then limits to the rate", async () => {
    const bucket = new TokenBucket(100, 5);
    const burst = Array.from({ length: 10 }, () => bucket.take());
    expect(burst.filter(Boolean)).toHaveLength(5);
    await new Promise((r) => setTimeout(r, 50));
    const refilled = Array.from({ length: 10 }, () => bucket.take()).filter(Boolean).length;
    expect(refilled).toBeGreaterThanOrEqual(4);
    expect(refilled).toBeLessThanOrEqual(6);
  });
});

describe("batching window overrides", () => {
  it("names one environment variable per mapping and takes whole seconds in 0..300 only", () => {
    expect(batchingWindowEnvVar("AggregateEvents")).toBe("TIDEMARK_BATCHING_WINDOW_AGGREGATE_EVENTS");
    expect(batchingWindowOverride(undefined, "AggregateEvents")).toBeUndefined();
    expect(batchingWindowOverride("", "AggregateEvents")).toBeUndefined();
    expect(batchingWindowOverride("0", "AggregateEvents")).toBe(0);
    expect(batchingWindowOverride(3, "AggregateEvents")).toBe(3);
    for (const bad of ["0.5", "-1", "301", "soon"])
      expect(() => batchingWindowOverride(bad, "AggregateEvents")).toThrow(/AggregateEvents/);
  });
});

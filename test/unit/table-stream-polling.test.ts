import {
  DescribeStreamCommand,
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListStreamsCommand,
  type _Record as StreamRecord,
} from "@aws-sdk/client-dynamodb-streams";
import type { DynamoDBStreamEvent } from "aws-lambda";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LocalTableStreamMapping } from "../../local/table-stream-mapping.ts";

const spec = {
  id: "PublishStats",
  batchSize: 500,
  maximumBatchingWindowSeconds: 0,
  startingPosition: "TRIM_HORIZON",
  maximumRetryAttempts: 2,
  reportBatchItemFailures: true,
} as const;

const record = (shard: string, i: number): StreamRecord => ({
  eventID: `${shard}-${i}`,
  eventName: "MODIFY",
  dynamodb: { Keys: { pk: { S: shard }, sk: { S: String(i) } }, SequenceNumber: String(1_000 + i) },
});

/**
 * A stream whose shards are listed by DescribeStream (`shards()`, as it is asked), each handing
 * out its records in one GetRecords, then none; a shard in `closing` then ends (no next iterator),
 * as a shard DynamoDB rolled over does. Counts the requests by shard.
 */
function countingStreams(
  shards: () => string[],
  records: Record<string, StreamRecord[]>,
  closing: ReadonlySet<string>,
) {
  const calls = { describe: 0, getRecords: new Map<string, number>(), iterators: new Map<string, number>() };
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  const served = new Set<string>();
  const send = async (command: unknown) => {
    if (command instanceof ListStreamsCommand) return { Streams: [{ StreamArn: "arn:stream" }] };
    if (command instanceof DescribeStreamCommand) {
      calls.describe++;
      return { StreamDescription: { Shards: shards().map((ShardId) => ({ ShardId })) } };
    }
    if (command instanceof GetShardIteratorCommand) {
      const shard = command.input.ShardId ?? "";
      bump(calls.iterators, shard);
      return { ShardIterator: `it:${shard}` };
    }
    if (command instanceof GetRecordsCommand) {
      const shard = (command.input.ShardIterator ?? "").slice(3);
      bump(calls.getRecords, shard);
      const first = !served.has(shard);
      served.add(shard);
      return {
        Records: first ? (records[shard] ?? []) : [],
        ...(closing.has(shard) && !first ? {} : { NextShardIterator: `it:${shard}` }),
      };
    }
    throw new Error(`unexpected ${String(command)}`);
  };
  return { client: { send } as unknown as DynamoDBStreamsClient, calls };
}

describe("the local DynamoDB Streams mapping polls as Lambda does, no more", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("polls an idle shard about 4 times a second and describes the stream rarely", async () => {
    const { client, calls } = countingStreams(() => ["s0"], {}, new Set());
    const mapping = new LocalTableStreamMapping({
      spec,
      client,
      tableName: "aggregates",
      region: "us-east-1",
      invoke: async () => ({ batchItemFailures: [] }),
      onFailure: async () => {},
    });
    await mapping.start();
    await vi.advanceTimersByTimeAsync(10_000);
    const stopped = mapping.stop();
    await vi.advanceTimersByTimeAsync(1_000);
    await stopped;
    // AWS: about 4 polls a second per shard (every 100 ms before: 100 in 10 s).
    expect(calls.getRecords.get("s0")).toBeGreaterThanOrEqual(35);
    expect(calls.getRecords.get("s0")).toBeLessThanOrEqual(42);
    // The one at start, then at most one in 10 s (every 2 s before: 6).
    expect(calls.describe).toBeLessThanOrEqual(2);
  });

  it("finds a closed shard's child at once, and delivers the parent's records first", async () => {
    const listed = ["parent"];
    const { client, calls } = countingStreams(
      () => listed,
      { parent: [record("parent", 1), record("parent", 2)], child: [record("child", 3)] },
      new Set(["parent"]),
    );
    const events: DynamoDBStreamEvent[] = [];
    const deliveredAt: number[] = [];
    const mapping = new LocalTableStreamMapping({
      spec,
      client,
      tableName: "aggregates",
      region: "us-east-1",
      invoke: async (event) => {
        events.push(event);
        deliveredAt.push(Date.now());
        return { batchItemFailures: [] };
      },
      onFailure: async () => {},
    });
    const began = Date.now();
    await mapping.start();
    // DynamoDB rolls the shard over: the child is listed, the closed parent still is (24 h).
    listed.push("child");
    await vi.advanceTimersByTimeAsync(1_000);
    const parentPolls = calls.getRecords.get("parent") ?? 0;
    await vi.advanceTimersByTimeAsync(30_000);
    const stopped = mapping.stop();
    await vi.advanceTimersByTimeAsync(1_000);
    await stopped;
    // Parent first, then the child, each record once: the parent is not taken for a new shard.
    expect(events.flatMap((e) => e.Records.map((r) => r.eventID))).toEqual([
      "parent-1",
      "parent-2",
      "child-3",
    ]);
    // The parent closes at its second poll (250 ms): the child is described then, not 10 s later.
    expect((deliveredAt[1] ?? Number.POSITIVE_INFINITY) - began).toBeLessThan(1_000);
    // Closed shards are not polled again, nor taken for new ones while DescribeStream lists them.
    expect(calls.iterators.get("parent")).toBe(1);
    expect(calls.getRecords.get("parent")).toBe(parentPolls);
    expect(parentPolls).toBe(2);
  });
});

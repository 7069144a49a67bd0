import {
  DescribeStreamCommand,
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListStreamsCommand,
  type _Record as StreamRecord,
} from "@aws-sdk/client-dynamodb-streams";
import type { DynamoDBStreamEvent } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { api } from "../../lib/topology.ts";
import { LocalTableStreamMapping, recordsWithinPayload } from "../../local/table-stream-mapping.ts";

/** A stream record whose new and old images carry `kb` KB of binary each (as a delta's chunk). */
const record = (i: number, kb: number): StreamRecord => ({
  eventID: `e${i}`,
  eventName: "MODIFY",
  dynamodb: {
    Keys: { pk: { S: "w" }, sk: { S: `d${i}` } },
    NewImage: { pk: { S: "w" }, sk: { S: `d${i}` }, b: { B: new Uint8Array(kb * 1024).fill(i % 251) } },
    OldImage: { pk: { S: "w" }, sk: { S: `d${i}` }, b: { B: new Uint8Array(kb * 1024).fill(i % 7) } },
    SequenceNumber: String(1_000 + i),
    StreamViewType: "NEW_AND_OLD_IMAGES",
  },
});

/** DynamoDB Streams with one shard holding `records`, handed out in one GetRecords. */
function fakeStreams(records: StreamRecord[]): DynamoDBStreamsClient {
  let served = false;
  const send = async (command: unknown) => {
    if (command instanceof ListStreamsCommand) return { Streams: [{ StreamArn: "arn:stream" }] };
    if (command instanceof DescribeStreamCommand)
      return { StreamDescription: { Shards: [{ ShardId: "s0" }] } };
    if (command instanceof GetShardIteratorCommand) return { ShardIterator: "it" };
    if (command instanceof GetRecordsCommand) {
      const out = served ? [] : records;
      served = true;
      return { Records: out, NextShardIterator: "it" };
    }
    throw new Error(`unexpected ${String(command)}`);
  };
  return { send } as unknown as DynamoDBStreamsClient;
}

describe("the local DynamoDB Streams mapping cuts batches at Lambda's 6 MB payload", () => {
  it("recordsWithinPayload takes records while the event's JSON fits, at least one", () => {
    const small = { eventID: "x" };
    const bytes = Buffer.byteLength(JSON.stringify({ Records: [small, small] }));
    expect(recordsWithinPayload([small, small, small], bytes)).toBe(2);
    expect(recordsWithinPayload([small, small, small], bytes - 1)).toBe(1);
    expect(recordsWithinPayload([small], 1)).toBe(1);
  });

  it("delivers 40 records of 2 × 200 KB images (about 22 MB of JSON) in events of at most 6 MB, in order, none lost", async () => {
    const records = Array.from({ length: 40 }, (_, i) => record(i, 200));
    const events: DynamoDBStreamEvent[] = [];
    let done: () => void = () => {};
    const all = new Promise<void>((resolve) => {
      done = resolve;
    });
    const mapping = new LocalTableStreamMapping({
      spec: {
        id: "PublishStats",
        batchSize: 500,
        maximumBatchingWindowSeconds: 0,
        startingPosition: "TRIM_HORIZON",
        maximumRetryAttempts: 2,
        reportBatchItemFailures: true,
      },
      client: fakeStreams(records),
      tableName: "aggregates",
      region: "us-east-1",
      invoke: async (event) => {
        events.push(event);
        if (events.reduce((n, e) => n + e.Records.length, 0) === records.length) done();
        return { batchItemFailures: [] };
      },
      onFailure: async () => {},
      pollIntervalMs: 1,
    });
    await mapping.start();
    await all;
    await mapping.stop();
    expect(events.length).toBeGreaterThan(3);
    for (const e of events)
      expect(Buffer.byteLength(JSON.stringify(e))).toBeLessThanOrEqual(api.payload.lambdaInvokeBytes);
    expect(events.flatMap((e) => e.Records.map((r) => r.eventID))).toEqual(records.map((r) => r.eventID));
  });
});

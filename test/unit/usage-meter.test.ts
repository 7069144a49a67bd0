import { Readable } from "node:stream";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { DynamoDBDocumentClient, GetCommand, PutCommand, TransactWriteCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, it } from "vitest";
import {
  addUsage,
  meterDynamoDb,
  meterS3,
  s3PutClassRequests,
  UsageMeter,
  unitsOf,
  usageSince,
} from "../../lib/adapters/usage-meter.ts";

/**
 * The meter runs inside the real SDK middleware stacks; only the HTTP layer is replaced by a
 * handler that records each request body and answers with a canned DynamoDB/S3 response.
 */
interface Canned {
  status?: number;
  body?: unknown;
}
function fakeHttp(answer: (target: string, body: Record<string, unknown>) => Canned) {
  const sent: { target: string; body: Record<string, unknown> }[] = [];
  return {
    sent,
    handler: {
      async handle(request: { headers: Record<string, string>; body?: unknown }) {
        const target = request.headers["x-amz-target"] ?? "";
        const raw =
          request.body instanceof Uint8Array ? new TextDecoder().decode(request.body) : request.body;
        const body = typeof raw === "string" ? (JSON.parse(raw) as Record<string, unknown>) : {};
        sent.push({ target, body });
        const reply = answer(target, body);
        return {
          response: {
            statusCode: reply.status ?? 200,
            reason: "",
            headers: { "content-type": "application/x-amz-json-1.0", etag: '"e"' },
            body: Readable.from([Buffer.from(reply.body === undefined ? "" : JSON.stringify(reply.body))]),
          },
        };
      },
    },
  };
}

const credentials = { accessKeyId: "k", secretAccessKey: "s" };

function dynamo(answer: Parameters<typeof fakeHttp>[0]) {
  const http = fakeHttp(answer);
  const client = new DynamoDBClient({
    region: "us-east-1",
    endpoint: "http://dynamodb.test",
    credentials,
    maxAttempts: 1,
    requestHandler: http.handler,
  });
  const meter = new UsageMeter();
  meterDynamoDb(client, meter);
  return { http, meter, doc: DynamoDBDocumentClient.from(client) };
}

describe("usage meter: DynamoDB middleware", () => {
  it("asks write and read operations for TOTAL consumed capacity and counts their units", async () => {
    const { http, meter, doc } = dynamo((target) =>
      target.endsWith("PutItem")
        ? { body: { ConsumedCapacity: { TableName: "t", CapacityUnits: 3 } } }
        : { body: { Item: { pk: { S: "a" } }, ConsumedCapacity: { TableName: "t", CapacityUnits: 0.5 } } },
    );
    await doc.send(new PutCommand({ TableName: "t", Item: { pk: "a", n: 1 } }));
    const got = await doc.send(new GetCommand({ TableName: "t", Key: { pk: "a" } }));
    expect(got.Item).toEqual({ pk: "a" });
    expect(http.sent.map((s) => s.body.ReturnConsumedCapacity)).toEqual(["TOTAL", "TOTAL"]);
    expect(meter.snapshot().dynamodb).toEqual({
      readUnits: 0.5,
      writeUnits: 3,
      requests: { PutItem: 1, GetItem: 1 },
      computedWriteUnits: 0,
      owedWriteUnits: 0,
      costByWindowKind: {},
    });
  });

  it("keeps the caller's own mode and ConsumedCapacity, and sums per-table lists", async () => {
    const { http, meter, doc } = dynamo(() => ({
      body: {
        ConsumedCapacity: [
          { TableName: "a", CapacityUnits: 4, WriteCapacityUnits: 4 },
          { TableName: "b", CapacityUnits: 6, WriteCapacityUnits: 6 },
        ],
      },
    }));
    const res = await doc.send(
      new TransactWriteCommand({
        TransactItems: [{ Put: { TableName: "a", Item: { pk: "x" } } }],
        ReturnConsumedCapacity: "INDEXES",
      }),
    );
    expect(http.sent[0]?.body.ReturnConsumedCapacity).toBe("INDEXES");
    expect(res.ConsumedCapacity?.map((c) => c.CapacityUnits)).toEqual([4, 6]);
    expect(meter.snapshot().dynamodb.writeUnits).toBe(10);
    expect(meter.snapshot().dynamodb.requests).toEqual({ TransactWriteItems: 1 });
  });

  it("counts a failed call as a request without units, and leaves other operations' input alone", async () => {
    const { http, meter, doc } = dynamo((target) =>
      target.endsWith("PutItem")
        ? {
            status: 400,
            body: {
              __type: "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
              message: "no",
            },
          }
        : { body: { TableNames: [] } },
    );
    await expect(
      doc.send(
        new PutCommand({
          TableName: "t",
          Item: { pk: "a" },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      ),
    ).rejects.toThrow();
    const { ListTablesCommand } = await import("@aws-sdk/client-dynamodb");
    await doc.send(new ListTablesCommand({}));
    expect(http.sent[1]?.body.ReturnConsumedCapacity).toBeUndefined();
    expect(meter.snapshot().dynamodb).toEqual({
      readUnits: 0,
      writeUnits: 0,
      requests: { PutItem: 1, ListTables: 1 },
      computedWriteUnits: 0,
      owedWriteUnits: 0,
      costByWindowKind: {},
    });
  });
});

describe("usage meter: S3 middleware", () => {
  it("counts requests per operation, failures included", async () => {
    let calls = 0;
    const client = new S3Client({
      region: "us-east-1",
      endpoint: "http://s3.test",
      forcePathStyle: true,
      credentials,
      maxAttempts: 1,
      requestHandler: {
        async handle() {
          calls++;
          return {
            response: {
              statusCode: calls === 3 ? 404 : 200,
              reason: "",
              headers: { etag: '"e"' },
              body: Readable.from([Buffer.from(calls === 3 ? "<Error><Code>NoSuchKey</Code></Error>" : "")]),
            },
          };
        },
      },
    });
    const meter = new UsageMeter();
    meterS3(client, meter);
    await client.send(new PutObjectCommand({ Bucket: "b", Key: "k1", Body: "x" }));
    await client.send(new PutObjectCommand({ Bucket: "b", Key: "k2", Body: "y" }));
    await expect(client.send(new GetObjectCommand({ Bucket: "b", Key: "nope" }))).rejects.toThrow();
    expect(meter.snapshot().s3.requests).toEqual({ PutObject: 2, GetObject: 1 });
    expect(s3PutClassRequests(meter.snapshot())).toBe(2);
  });
});

describe("usage snapshots", () => {
  it("sum across processes and diff around a phase", () => {
    const meter = new UsageMeter();
    meter.recordDynamoDb("TransactWriteItems", { read: 0, write: 8 });
    meter.recordComputedWrites(10, 4, { "events_by_type#m": 12, fence: 2 });
    const before = meter.snapshot();
    meter.recordDynamoDb("TransactWriteItems", { read: 0, write: 6 });
    meter.recordComputedWrites(7, -3, { "events_by_type#m": 2, fence: 2 }); // a compaction deleting more deltas than it wrote
    meter.recordDynamoDb("Query", { read: 1.5, write: 0 });
    meter.recordS3("PutObject");
    const phase = usageSince(meter.snapshot(), before);
    expect(phase).toEqual({
      dynamodb: {
        readUnits: 1.5,
        writeUnits: 6,
        requests: { TransactWriteItems: 1, Query: 1 },
        computedWriteUnits: 7,
        owedWriteUnits: -3,
        costByWindowKind: { "events_by_type#m": 2, fence: 2 },
      },
      s3: { requests: { PutObject: 1 } },
    });
    expect(addUsage(phase, before).dynamodb.writeUnits).toBe(14);
    expect(before.dynamodb.writeUnits).toBe(8); // a snapshot does not move with the meter
  });

  it("reads units from a single entry, a list, or split read/write fields", () => {
    expect(unitsOf({ ConsumedCapacity: { CapacityUnits: 2 } }, "write")).toEqual({ read: 0, write: 2 });
    expect(unitsOf({ ConsumedCapacity: [{ CapacityUnits: 1 }, { CapacityUnits: 2 }] }, "read")).toEqual({
      read: 3,
      write: 0,
    });
    expect(
      unitsOf(
        { ConsumedCapacity: { CapacityUnits: 5, ReadCapacityUnits: 1, WriteCapacityUnits: 4 } },
        "read",
      ),
    ).toEqual({ read: 1, write: 4 });
    expect(unitsOf({}, "write")).toEqual({ read: 0, write: 0 });
  });
});

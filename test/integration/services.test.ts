import {
  CreateTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  GetItemCommand,
  TransactWriteItemsCommand,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  ListStreamsCommand,
} from "@aws-sdk/client-dynamodb-streams";
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { localS3Options } from "../../lib/adapters/s3-client.ts";

/** What the project relies on from each local service, checked against the real servers. */
describe("local services", () => {
  const endpoints = inject("endpoints");
  const credentials = { accessKeyId: "local", secretAccessKey: "local" };
  const s3 = new S3Client({
    region: "us-east-1",
    ...localS3Options(endpoints.s3Endpoint),
    credentials,
  });
  const dynamodb = new DynamoDBClient({
    region: "us-east-1",
    endpoint: endpoints.dynamodbEndpoint,
    credentials,
  });
  const bucket = `services-test-${Date.now()}`;

  beforeAll(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterAll(() => {
    s3.destroy();
    dynamodb.destroy();
  });

  it("S3: an upload round-trips with its user metadata (the archive keeps its offsets there)", async () => {
    const body = "x".repeat(100_000);
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: "plain/one.txt",
        Body: body,
        Metadata: { "max-offset": "42" },
      }),
    );
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "plain/one.txt" }));
    expect(await got.Body?.transformToString()).toBe(body);
    expect(got.Metadata?.["max-offset"]).toBe("42");
  });

  it("S3: conditional writes refuse a stale version (the archive's writes rely on them)", async () => {
    const key = "conditional/one.txt";
    const first = await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: "1", IfNoneMatch: "*" }),
    );
    const status = (error: unknown) =>
      (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    await expect(
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: "2", IfNoneMatch: "*" })).catch(status),
    ).resolves.toBe(412);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: "3", IfMatch: first.ETag }));
    await expect(
      s3
        .send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: "4", IfMatch: first.ETag }))
        .catch(status),
    ).resolves.toBe(412);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    expect(await got.Body?.transformToString()).toBe("3");
  });

  it("S3: ListObjectsV2 pages with continuation tokens and groups by delimiter", async () => {
    await Promise.all(
      Array.from({ length: 7 }, (_, i) =>
        s3.send(new PutObjectCommand({ Bucket: bucket, Key: `list/dir${i % 3}/obj${i}`, Body: "x" })),
      ),
    );
    const keys: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const res = await s3.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: "list/", MaxKeys: 2, ContinuationToken: token }),
      );
      pages++;
      keys.push(...(res.Contents ?? []).map((o) => o.Key ?? ""));
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    expect(pages).toBe(4);
    expect(keys.sort()).toHaveLength(7);
    const grouped = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: "list/", Delimiter: "/" }),
    );
    expect((grouped.CommonPrefixes ?? []).map((p) => p.Prefix).sort()).toEqual([
      "list/dir0/",
      "list/dir1/",
      "list/dir2/",
    ]);
  });

  it("S3: multipart upload", async () => {
    const part = Buffer.alloc(5 * 1024 * 1024, 1);
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: "multi/big.bin" }),
    );
    const parts = await Promise.all(
      [1, 2].map(async (PartNumber) => {
        const res = await s3.send(
          new UploadPartCommand({ Bucket: bucket, Key: "multi/big.bin", UploadId, PartNumber, Body: part }),
        );
        return { PartNumber, ETag: res.ETag };
      }),
    );
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: "multi/big.bin",
        UploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "multi/big.bin" }));
    expect((await got.Body?.transformToByteArray())?.length).toBe(10 * 1024 * 1024);
  });

  it("DynamoDB Local: transactions, the TTL API and streams", async () => {
    const table = `services-test-${Date.now()}`;
    await dynamodb.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: "PAY_PER_REQUEST",
        AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
        KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
        StreamSpecification: { StreamEnabled: true, StreamViewType: "NEW_IMAGE" },
      }),
    );
    await dynamodb.send(
      new UpdateTimeToLiveCommand({
        TableName: table,
        TimeToLiveSpecification: { AttributeName: "exp", Enabled: true },
      }),
    );
    const ttl = await dynamodb.send(new DescribeTimeToLiveCommand({ TableName: table }));
    expect(ttl.TimeToLiveDescription?.AttributeName).toBe("exp");

    await dynamodb.send(
      new TransactWriteItemsCommand({
        TransactItems: [
          { Put: { TableName: table, Item: { pk: { S: "a" }, n: { N: "1" } } } },
          { Put: { TableName: table, Item: { pk: { S: "b" }, n: { N: "2" } } } },
        ],
      }),
    );
    // A transaction whose condition fails writes nothing.
    await expect(
      dynamodb.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Put: { TableName: table, Item: { pk: { S: "c" }, n: { N: "3" } } } },
            {
              ConditionCheck: {
                TableName: table,
                Key: { pk: { S: "a" } },
                ConditionExpression: "n = :two",
                ExpressionAttributeValues: { ":two": { N: "2" } },
              },
            },
          ],
        }),
      ),
    ).rejects.toThrow();
    expect(
      (await dynamodb.send(new GetItemCommand({ TableName: table, Key: { pk: { S: "c" } } }))).Item,
    ).toBeUndefined();

    const streams = new DynamoDBStreamsClient({
      region: "us-east-1",
      endpoint: endpoints.dynamodbEndpoint,
      credentials,
    });
    const list = await streams.send(new ListStreamsCommand({ TableName: table }));
    const arn = list.Streams?.[0]?.StreamArn;
    expect(arn).toBeDefined();
    const described = await streams.send(new DescribeStreamCommand({ StreamArn: arn }));
    expect(described.StreamDescription?.StreamViewType).toBe("NEW_IMAGE");
    streams.destroy();
  });
});

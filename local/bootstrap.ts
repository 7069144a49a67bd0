import {
  CreateTableCommand,
  type CreateTableCommandInput,
  type DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import { BucketAlreadyOwnedByYou, CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import type { Kafka } from "kafkajs";
import { syncTopics } from "../lib/adapters/kafka-topics.ts";
import { buckets, type TableSpec, tables, topics } from "../lib/topology.ts";

/** Physical names of the local resources (AWS generates its own; functions read them from env). */
export function localNames(prefix: string) {
  const tableNames = Object.fromEntries(
    Object.keys(tables).map((key) => [key, `${prefix}-${kebab(key)}`]),
  ) as Record<keyof typeof tables, string>;
  const bucketNames = Object.fromEntries(
    Object.keys(buckets).map((key) => [key, `${prefix}-${kebab(key)}`]),
  ) as Record<keyof typeof buckets, string>;
  return { tables: tableNames, buckets: bucketNames };
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Creates what the topology declares (idempotently): topics, tables with TTL, buckets. */
export async function bootstrap(options: {
  kafka: Kafka;
  dynamodb: DynamoDBClient;
  s3: S3Client;
  names: ReturnType<typeof localNames>;
}): Promise<void> {
  const admin = options.kafka.admin();
  await admin.connect();
  try {
    await syncTopics(
      admin,
      Object.values(topics).map((t) => ({
        name: t.name,
        partitions: t.partitions,
        retentionMs: t.retentionHours * 3_600_000,
        maxMessageBytes: t.maxMessageBytes,
      })),
    );
  } finally {
    await admin.disconnect();
  }
  await Promise.all(
    (Object.entries(tables) as [keyof typeof tables, TableSpec][]).map(([key, spec]) =>
      createTable(options.dynamodb, options.names.tables[key], spec),
    ),
  );
  for (const name of Object.values(options.names.buckets)) {
    try {
      await options.s3.send(new CreateBucketCommand({ Bucket: name }));
    } catch (error) {
      if (
        !(error instanceof BucketAlreadyOwnedByYou) &&
        (error as { name?: string }).name !== "BucketAlreadyExists"
      ) {
        throw error;
      }
    }
  }
}

async function createTable(client: DynamoDBClient, name: string, spec: TableSpec): Promise<void> {
  const keys = [spec.partitionKey, ...(spec.sortKey ? [spec.sortKey] : [])];
  const indexKeys = (spec.globalIndexes ?? []).flatMap((i) => [
    i.partitionKey,
    ...(i.sortKey ? [i.sortKey] : []),
  ]);
  const attributes = new Map([...keys, ...indexKeys].map((k) => [k.name, k.type]));
  const input: CreateTableCommandInput = {
    TableName: name,
    BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [...attributes].map(([AttributeName, AttributeType]) => ({
      AttributeName,
      AttributeType,
    })),
    KeySchema: [
      { AttributeName: spec.partitionKey.name, KeyType: "HASH" },
      ...(spec.sortKey ? [{ AttributeName: spec.sortKey.name, KeyType: "RANGE" as const }] : []),
    ],
    ...(spec.globalIndexes?.length
      ? {
          GlobalSecondaryIndexes: spec.globalIndexes.map((i) => ({
            IndexName: i.name,
            KeySchema: [
              { AttributeName: i.partitionKey.name, KeyType: "HASH" as const },
              ...(i.sortKey ? [{ AttributeName: i.sortKey.name, KeyType: "RANGE" as const }] : []),
            ],
            Projection: { ProjectionType: "ALL" as const },
          })),
        }
      : {}),
    ...(spec.stream ? { StreamSpecification: { StreamEnabled: true, StreamViewType: spec.stream } } : {}),
  };
  try {
    await client.send(new CreateTableCommand(input));
    await waitUntilTableExists({ client, maxWaitTime: 30 }, { TableName: name });
    if (spec.ttlAttribute) {
      await client.send(
        new UpdateTimeToLiveCommand({
          TableName: name,
          TimeToLiveSpecification: { AttributeName: spec.ttlAttribute, Enabled: true },
        }),
      );
    }
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
}

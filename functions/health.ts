import { DescribeTableCommand } from "@aws-sdk/client-dynamodb";
import { HeadBucketCommand } from "@aws-sdk/client-s3";
import { z } from "zod";
import { createDynamoDb } from "../lib/adapters/dynamodb-client.ts";
import { createKafka } from "../lib/adapters/kafka.ts";
import { createS3 } from "../lib/adapters/s3-client.ts";
import { awsEndpointsEnv, kafkaEnv, readConfig } from "../lib/config.ts";
import { lazy } from "../lib/lazy.ts";
import { apiHandler, json } from "./shared/http.ts";

/** GET /health: asks each backing service something real, in parallel, with a short deadline. */
const config = readConfig(
  kafkaEnv.extend(awsEndpointsEnv.shape).extend({
    AGGREGATES_TABLE: z.string().min(1).optional(),
    ARCHIVE_BUCKET: z.string().min(1).optional(),
    TOPIC_DEAD_LETTER: z.string().min(1).optional(),
  }),
);
const dynamodb = createDynamoDb(config);
const s3 = createS3(config);
const admin = lazy(async () => {
  const a = (await createKafka(config, { retry: { retries: 0 } })).admin();
  await a.connect();
  return a;
});

async function check(probe: () => Promise<string>): Promise<{ ok: boolean; detail: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const detail = await Promise.race([
      probe(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no answer within 2 s")), 2_000);
      }),
    ]);
    return { ok: true, detail };
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** Records held by the dead-letter topic (within its retention), from its offsets; undefined when unknown. */
async function deadLetterRecords(): Promise<number | undefined> {
  const topic = config.TOPIC_DEAD_LETTER;
  if (!topic) return undefined;
  const result = await check(async () => {
    const offsets = await (await admin()).fetchTopicOffsets(topic);
    return String(offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0));
  });
  return result.ok ? Number(result.detail) : undefined;
}

export const handler = apiHandler(async () => {
  const [kafka, dynamo, storage, deadLetters] = await Promise.all([
    check(async () => {
      const cluster = await (await admin()).describeCluster();
      return `${cluster.brokers.length} broker(s), controller ${cluster.controller}`;
    }),
    check(async () => {
      if (!config.AGGREGATES_TABLE) return "no table configured";
      const out = await dynamodb.send(new DescribeTableCommand({ TableName: config.AGGREGATES_TABLE }));
      return `table ${config.AGGREGATES_TABLE} ${out.Table?.TableStatus ?? "unknown"}`;
    }),
    check(async () => {
      if (!config.ARCHIVE_BUCKET) return "no bucket configured";
      await s3.send(new HeadBucketCommand({ Bucket: config.ARCHIVE_BUCKET }));
      return `bucket ${config.ARCHIVE_BUCKET} reachable`;
    }),
    deadLetterRecords(),
  ]);
  const services = { kafka, dynamodb: dynamo, s3: storage };
  const ok = Object.values(services).every((s) => s.ok);
  return json(ok ? 200 : 503, {
    status: ok ? "ok" : "degraded",
    services,
    ...(deadLetters !== undefined ? { dead_letter_records: deadLetters } : {}),
  });
});

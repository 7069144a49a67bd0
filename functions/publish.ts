import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import type { DynamoDBStreamEvent } from "aws-lambda";
import { z } from "zod";
import { DynamoAggregateStore } from "../lib/adapters/aggregate-store.ts";
import { createDynamoDb } from "../lib/adapters/aws-clients.ts";
import { createKafka } from "../lib/adapters/kafka.ts";
import { awsEndpointsEnv, kafkaEnv, readConfig } from "../lib/config.ts";
import { lazy } from "../lib/lazy.ts";
import { statsMessagesFor } from "../lib/pipeline/stats-messages.ts";

/**
 * Aggregates table stream consumer: for every window whose partial changed, reads all partials
 * of that window, merges them and publishes the window's current value to `analytics.stats`
 * (key = window id, so a compacted topic keeps the latest value of each window).
 */
const config = readConfig(
  kafkaEnv.extend(awsEndpointsEnv.shape).extend({
    AGGREGATES_TABLE: z.string().min(1),
    TOPIC_ANALYTICS_STATS: z.string().min(1),
  }),
);
const store = new DynamoAggregateStore(createDynamoDb(config), config.AGGREGATES_TABLE);
const producer = lazy(async () => {
  const p = (await createKafka(config)).producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  return p;
});

export const handler = async (event: DynamoDBStreamEvent): Promise<{ batchItemFailures: [] }> => {
  const windows = new Set<string>();
  for (const record of event.Records) {
    const image = record.dynamodb?.NewImage;
    if (!image) continue;
    const row = unmarshall(image as Record<string, AttributeValue>) as { pk?: unknown };
    if (typeof row.pk === "string") windows.add(row.pk);
  }
  if (windows.size === 0) return { batchItemFailures: [] };
  const partials = await store.readWindows([...windows]);
  const messages = statsMessagesFor(partials, Date.now());
  await (await producer()).send({
    topic: config.TOPIC_ANALYTICS_STATS,
    acks: -1,
    messages: messages.map((m) => ({ key: m.window_id, value: JSON.stringify(m) })),
  });
  return { batchItemFailures: [] };
};

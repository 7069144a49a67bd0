import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import type { DynamoDBStreamEvent } from "aws-lambda";
import { z } from "zod";
import { createDynamoDb } from "../lib/adapters/dynamodb-client.ts";
import { createKafka } from "../lib/adapters/kafka.ts";
import { DynamoWindowStore } from "../lib/adapters/window-store.ts";
import { awsEndpointsEnv, kafkaEnv, readConfig } from "../lib/config.ts";
import { lazy } from "../lib/lazy.ts";
import { statsMessagesFor } from "../lib/pipeline/stats-messages.ts";

/**
 * Aggregates table stream consumer: for every minute window whose partial changed, reads all
 * partials of that window, merges them and publishes each group's current value to
 * `analytics.stats` (docs/stats-topic.md). Hourly roll-ups are not republished.
 */
const config = readConfig(
  kafkaEnv.extend(awsEndpointsEnv.shape).extend({
    AGGREGATES_TABLE: z.string().min(1),
    TOPIC_ANALYTICS_STATS: z.string().min(1),
  }),
);
const store = new DynamoWindowStore(createDynamoDb(config), config.AGGREGATES_TABLE, "unused");
const producer = lazy(async () => {
  const p = (await createKafka(config)).producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  return p;
});

export const handler = async (event: DynamoDBStreamEvent): Promise<{ batchItemFailures: [] }> => {
  const windows = new Set<string>();
  const changed = new Set<string>();
  for (const record of event.Records) {
    const image = record.dynamodb?.NewImage;
    if (!image) continue;
    const row = unmarshall(image as Record<string, AttributeValue>) as {
      pk?: unknown;
      granularity?: unknown;
      groups?: unknown;
    };
    if (typeof row.pk !== "string" || row.granularity !== "m") continue;
    windows.add(row.pk);
    for (const key of Object.keys((row.groups as Record<string, unknown> | undefined) ?? {})) {
      changed.add(`${row.pk}\u0000${key.slice(2)}`);
    }
  }
  if (windows.size === 0) return { batchItemFailures: [] };
  const messages = statsMessagesFor(await store.readWindows([...windows]), Date.now(), changed);
  if (messages.length > 0) {
    await (await producer()).send({
      topic: config.TOPIC_ANALYTICS_STATS,
      acks: -1,
      messages: messages.map((m) => ({ key: m.window_id, value: JSON.stringify(m) })),
    });
  }
  return { batchItemFailures: [] };
};

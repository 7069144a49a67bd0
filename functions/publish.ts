import type { DynamoDBStreamEvent } from "aws-lambda";
import { z } from "zod";
import { createDynamoDb, createDynamoDbRaw } from "../lib/adapters/dynamodb-client.ts";
import { createKafka } from "../lib/adapters/kafka.ts";
import { javaCompatiblePartitioner } from "../lib/adapters/kafka-partitioner.ts";
import { unmarshallStreamImage } from "../lib/adapters/stream-image.ts";
import { DynamoWindowStore } from "../lib/adapters/window-store.ts";
import { awsEndpointsEnv, kafkaEnv, readConfig } from "../lib/config.ts";
import { lazy } from "../lib/lazy.ts";
import { changedWindowsOf, publishChangedWindows, SeenDeltas } from "../lib/pipeline/publish-stats.ts";
import { topics } from "../lib/topology.ts";
import { logger } from "./shared/http.ts";

/**
 * Aggregates table stream consumer: every delta written by the aggregator names the groups a
 * slice changed; for each changed window this reads all its partials (strongly consistent),
 * merges them and publishes the current value of just the changed groups to `analytics.stats`
 * (docs/stats-topic.md), in produce requests cut by the topic's max.message.bytes. A failure
 * throws: the mapping retries, then sends the batch to its on-failure destination (never a
 * silent skip).
 */
const config = readConfig(
  kafkaEnv.extend(awsEndpointsEnv.shape).extend({
    AGGREGATES_TABLE: z.string().min(1),
    TOPIC_ANALYTICS_STATS: z.string().min(1),
  }),
);
// Its Queries (one per changed window) through the low-level client with a cached middleware stack.
const store = new DynamoWindowStore(
  createDynamoDb(config),
  config.AGGREGATES_TABLE,
  "unused",
  createDynamoDbRaw(config),
);
const producer = lazy(async () => {
  const p = (await createKafka(config)).producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: javaCompatiblePartitioner,
  });
  await p.connect();
  return p;
});

const seen = new SeenDeltas();

export const handler = async (event: DynamoDBStreamEvent): Promise<{ batchItemFailures: [] }> => {
  const windows = changedWindowsOf(
    event.Records.map((r) => (r.dynamodb?.NewImage ? unmarshallStreamImage(r.dynamodb.NewImage) : undefined)),
    seen,
  );
  if (windows.length === 0) return { batchItemFailures: [] };
  const p = await producer();
  const published = await publishChangedWindows(windows, {
    store,
    maxMessageBytes: topics.analyticsStats.maxMessageBytes,
    send: async (messages) => {
      await p.send({ topic: config.TOPIC_ANALYTICS_STATS, acks: -1, messages });
    },
  });
  seen.remember(windows.latest);
  logger.debug("published", { windows: windows.length, messages: published });
  return { batchItemFailures: [] };
};

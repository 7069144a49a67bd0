import type { Context, MSKEvent } from "aws-lambda";
import { z } from "zod";
import { createDynamoDb, createDynamoDbRaw } from "../lib/adapters/dynamodb-client.ts";
import { createKafka } from "../lib/adapters/kafka.ts";
import { sendBounded } from "../lib/adapters/kafka-batches.ts";
import { CachedRules, DynamoRulesStore } from "../lib/adapters/rules-store.ts";
import { DynamoWindowStore } from "../lib/adapters/window-store.ts";
import { awsEndpointsEnv, kafkaEnv, readConfig } from "../lib/config.ts";
import { parseStoredEvent } from "../lib/contract/event.ts";
import { lazy } from "../lib/lazy.ts";
import { aggregateBatch, OpenDeltas, RecentEventIds } from "../lib/pipeline/aggregate-batch.ts";
import type { SourcedEvent } from "../lib/stream/fold.ts";
import { BUILT_IN_RULES } from "../lib/stream/rules.ts";
import { topics } from "../lib/topology.ts";
import { logger } from "./shared/http.ts";
import { decodeMskEvent } from "./shared/msk.ts";

/**
 * events.raw consumer (MSK event-source mapping): event-time windows into partial aggregates
 * with an exactly-once effect (see lib/pipeline/aggregate-batch.ts). Any failure throws, so the
 * mapping retries the batch; offset fencing makes the retry change no number.
 */
const config = readConfig(
  kafkaEnv.extend(awsEndpointsEnv.shape).extend({
    AGGREGATES_TABLE: z.string().min(1),
    RULES_TABLE: z.string().min(1),
    STREAM_STATE_TABLE: z.string().min(1),
    TOPIC_EVENTS_LATE: z.string().min(1),
    ALLOWED_LATENESS_SECONDS: z.coerce.number().int().min(0).default(120),
  }),
);
const db = createDynamoDb(config);
const store = new DynamoWindowStore(
  db,
  config.AGGREGATES_TABLE,
  config.STREAM_STATE_TABLE,
  createDynamoDbRaw(config),
);
const rules = new CachedRules(new DynamoRulesStore(db, config.RULES_TABLE), BUILT_IN_RULES);
const recent = new RecentEventIds();
const openDeltas = new OpenDeltas();
const lateProducer = lazy(async () => {
  const producer = (await createKafka(config)).producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  return producer;
});

/** Partial batch response (the mapping has ReportBatchItemFailures): where each partition goes on. */
interface BatchResponse {
  batchItemFailures: { itemIdentifier: { partition: string; offset: number } }[];
}

export const handler = async (event: MSKEvent, context?: Context): Promise<BatchResponse> => {
  const sourced: SourcedEvent[] = [];
  let topic = "";
  let unreadable = 0;
  for (const record of decodeMskEvent(event)) {
    topic = record.topic;
    const parsed = parseStoredEvent(record.value);
    if (!parsed.ok) {
      unreadable++; // the archive consumer sends these to the dead-letter topic
      continue;
    }
    sourced.push({ partition: record.partition, offset: record.offset, event: parsed.event });
  }
  if (unreadable > 0) logger.warn("unreadable records skipped", { unreadable });
  if (sourced.length === 0) return { batchItemFailures: [] };
  const unitsBefore = store.consumedWriteUnits;
  const outcome = await aggregateBatch(topic, sourced, {
    store,
    rules: await rules.current(),
    recent,
    openDeltas,
    allowedLatenessMs: config.ALLOWED_LATENESS_SECONDS * 1000,
    ...(context ? { remainingMs: () => context.getRemainingTimeInMillis() } : {}),
    warn: (message, details) => logger.warn(message, details),
    publishLate: async (late) => {
      await sendBounded(
        await lateProducer(),
        {
          topic: config.TOPIC_EVENTS_LATE,
          acks: -1,
          messages: late.map((r) => ({ key: r.event.user_id, value: JSON.stringify(r.event) })),
        },
        topics.eventsLate.maxMessageBytes,
      );
    },
  });
  logger.info("aggregated", {
    records: sourced.length,
    ...outcome,
    writeUnits: store.consumedWriteUnits - unitsBefore,
  });
  // A backfill's batch can be more slices than one invocation has time for: the mapping hands the
  // rest over again from the first record left (not a failure of any record).
  return {
    batchItemFailures: outcome.unprocessed.map(({ partition, offset }) => ({
      itemIdentifier: { partition: `${topic}-${partition}`, offset },
    })),
  };
};

import type { MSKEvent } from "aws-lambda";
import { z } from "zod";
import { S3ArchiveStore } from "../lib/adapters/archive-store.ts";
import { createKafka } from "../lib/adapters/kafka.ts";
import { sendBounded } from "../lib/adapters/kafka-batches.ts";
import { createS3 } from "../lib/adapters/s3-client.ts";
import { awsEndpointsEnv, kafkaEnv, readConfig } from "../lib/config.ts";
import { lazy } from "../lib/lazy.ts";
import { ArchiveObjectCache, archiveBatch } from "../lib/pipeline/archive-batch.ts";
import { buckets, topics } from "../lib/topology.ts";
import { logger } from "./shared/http.ts";
import { decodeMskEvent } from "./shared/msk.ts";

/**
 * events.raw consumer (MSK event-source mapping): appends each batch to the NDJSON.gz archive
 * under Hive partitions (see lib/archive/layout.ts for why replays never duplicate). Records that
 * are not valid events go to the dead-letter topic with the reason: nothing is dropped silently.
 * Any write failure throws, so the mapping retries the batch.
 */
const config = readConfig(
  kafkaEnv.extend(awsEndpointsEnv.shape).extend({
    ARCHIVE_BUCKET: z.string().min(1),
    TOPIC_DEAD_LETTER: z.string().min(1),
  }),
);
const store = new S3ArchiveStore(createS3(config), config.ARCHIVE_BUCKET);
// What this execution environment wrote: a batch that continues its previous one rewrites those
// objects without a GET each (lib/pipeline/archive-batch.ts says when that is safe).
const openObjects = new ArchiveObjectCache();
const deadLetterProducer = lazy(async () => {
  const producer = (await createKafka(config)).producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  return producer;
});

export const handler = async (event: MSKEvent): Promise<{ batchItemFailures: [] }> => {
  const outcome = await archiveBatch(decodeMskEvent(event), store, buckets.archive.prefix, openObjects);
  if (outcome.rejected.length > 0) {
    logger.warn("records sent to the dead-letter topic", { count: outcome.rejected.length });
    await sendBounded(
      await deadLetterProducer(),
      {
        topic: config.TOPIC_DEAD_LETTER,
        acks: -1,
        messages: outcome.rejected.map(({ record, reason }) => ({
          value: record.value,
          headers: {
            "x-tidemark-source-topic": record.topic,
            "x-tidemark-source-partition": String(record.partition),
            "x-tidemark-source-offset": String(record.offset),
            "x-tidemark-error": reason.slice(0, 1000),
            "x-tidemark-function": "archive",
          },
        })),
      },
      topics.deadLetter.maxMessageBytes,
    );
  }
  return { batchItemFailures: [] };
};

import type { MSKEvent } from "aws-lambda";
import { z } from "zod";
import { S3ArchiveWriter } from "../lib/adapters/archive-store.ts";
import { createS3 } from "../lib/adapters/aws-clients.ts";
import { createKafka } from "../lib/adapters/kafka.ts";
import { archiveObjectKey, partitionOf } from "../lib/archive/layout.ts";
import { awsEndpointsEnv, kafkaEnv, readConfig } from "../lib/config.ts";
import { parseStoredEvent } from "../lib/contract/event.ts";
import { lazy } from "../lib/lazy.ts";
import { buckets } from "../lib/topology.ts";
import { logger } from "./shared/http.ts";
import { type DecodedRecord, decodeMskEvent } from "./shared/msk.ts";

/**
 * events.raw consumer (MSK event-source mapping): writes each batch to the archive as
 * NDJSON.gz under Hive partitions, with object names derived from the batch so a replay
 * overwrites itself. Records that are not valid events go to the dead-letter topic with the
 * reason; nothing is dropped silently. Any write failure throws: the mapping retries the whole
 * batch (same first offset, so the same object names).
 */
const config = readConfig(
  kafkaEnv.extend(awsEndpointsEnv.shape).extend({
    ARCHIVE_BUCKET: z.string().min(1),
    TOPIC_DEAD_LETTER: z.string().min(1),
  }),
);
const writer = new S3ArchiveWriter(createS3(config), config.ARCHIVE_BUCKET);
const deadLetterProducer = lazy(async () => {
  const producer = (await createKafka(config)).producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  return producer;
});

export const handler = async (event: MSKEvent): Promise<{ batchItemFailures: [] }> => {
  const records = decodeMskEvent(event);
  const firstOffsets = new Map<string, number>();
  for (const r of records) {
    const tp = `${r.topic}-${r.partition}`;
    firstOffsets.set(tp, Math.min(firstOffsets.get(tp) ?? r.offset, r.offset));
  }
  const objects = new Map<string, string[]>();
  const rejected: { record: DecodedRecord; reason: string }[] = [];
  for (const r of records) {
    const parsed = parseStoredEvent(r.value);
    if (!parsed.ok) {
      rejected.push({ record: r, reason: parsed.reason });
      continue;
    }
    const firstOffset = firstOffsets.get(`${r.topic}-${r.partition}`) ?? r.offset;
    const key = archiveObjectKey(
      buckets.archive.prefix,
      partitionOf(parsed.event.event_type, parsed.event.timestamp),
      {
        topic: r.topic,
        partition: r.partition,
        firstOffset,
      },
    );
    let lines = objects.get(key);
    if (!lines) {
      lines = [];
      objects.set(key, lines);
    }
    lines.push(r.value);
  }
  await Promise.all([...objects].map(([key, lines]) => writer.put(key, lines)));
  if (rejected.length > 0) {
    logger.warn("records sent to the dead-letter topic", { count: rejected.length });
    await (await deadLetterProducer()).send({
      topic: config.TOPIC_DEAD_LETTER,
      acks: -1,
      messages: rejected.map(({ record, reason }) => ({
        key: record.key,
        value: record.value,
        headers: {
          "x-tidemark-source-topic": record.topic,
          "x-tidemark-source-partition": String(record.partition),
          "x-tidemark-source-offset": String(record.offset),
          "x-tidemark-error": reason.slice(0, 1000),
          "x-tidemark-function": "archive",
        },
      })),
    });
  }
  return { batchItemFailures: [] };
};

import type { MSKEvent } from "aws-lambda";
import { z } from "zod";
import { DynamoAggregateStore } from "../lib/adapters/aggregate-store.ts";
import { createDynamoDb } from "../lib/adapters/aws-clients.ts";
import { awsEndpointsEnv, readConfig } from "../lib/config.ts";
import { parseStoredEvent } from "../lib/contract/event.ts";
import { aggregateBatch, type SourcedEvent } from "../lib/pipeline/aggregate-batch.ts";
import { logger } from "./shared/http.ts";
import { decodeMskEvent } from "./shared/msk.ts";

/**
 * events.raw consumer (MSK event-source mapping): folds each batch into partial aggregates.
 * Any failure throws, so the mapping retries the whole batch; offset fencing in the store makes
 * the retry change no number.
 */
const config = readConfig(awsEndpointsEnv.extend({ AGGREGATES_TABLE: z.string().min(1) }));
const store = new DynamoAggregateStore(createDynamoDb(config), config.AGGREGATES_TABLE);

export const handler = async (event: MSKEvent): Promise<{ batchItemFailures: [] }> => {
  const sourced: SourcedEvent[] = [];
  let unreadable = 0;
  for (const record of decodeMskEvent(event)) {
    const parsed = parseStoredEvent(record.value);
    if (!parsed.ok) {
      unreadable++; // the archive consumer sends these to the dead-letter topic
      continue;
    }
    sourced.push({ partition: record.partition, offset: record.offset, event: parsed.event });
  }
  if (unreadable > 0) logger.warn("unreadable records skipped", { unreadable });
  await aggregateBatch(sourced, store);
  return { batchItemFailures: [] };
};

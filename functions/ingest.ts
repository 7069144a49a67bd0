import { z } from "zod";
import {
  BrokerUnavailableError,
  beforeDeadline,
  INGEST_PUBLISH_BUDGET_MS,
  KafkaEventPublisher,
} from "../lib/adapters/event-publisher.ts";
import { createKafka } from "../lib/adapters/kafka.ts";
import { kafkaEnv, kafkaProducerEnv, readConfig, retentionEnv } from "../lib/config.ts";
import { serviceUnavailable } from "../lib/contract/errors.ts";
import { parseIngestBody } from "../lib/contract/event.ts";
import { lazy } from "../lib/lazy.ts";
import { topics } from "../lib/topology.ts";
import { apiHandler, bodyText, errorResponse, json, logger } from "./shared/http.ts";

/** POST /events: validate all-or-nothing, publish keyed by user_id, answer 202 only after acks=all. */
const config = readConfig(
  kafkaEnv
    .extend(kafkaProducerEnv.shape)
    .extend(retentionEnv.shape)
    .extend({ TOPIC_EVENTS_RAW: z.string().min(1) }),
);
const retentionMs = config.RETENTION_DAYS * 86_400_000;
const publisher = lazy(
  async () =>
    new KafkaEventPublisher(await createKafka(config), {
      topic: config.TOPIC_EVENTS_RAW,
      maxMessageBytes: topics.eventsRaw.maxMessageBytes,
      compression: config.KAFKA_COMPRESSION,
    }),
);

export const handler = apiHandler(async (event) => {
  // The budget counts from here: parsing a large batch and a cold start's connection take from it.
  const deadline = Date.now() + INGEST_PUBLISH_BUDGET_MS;
  const parsed = parseIngestBody(bodyText(event), { now: Date.now(), retentionMs });
  if (!parsed.ok) return errorResponse(parsed.error);
  const { events, serialized } = parsed;
  const messages = events.map((e, i) => ({
    key: e.user_id,
    value: serialized[i] ?? "",
    timestamp: e.received_at,
  }));
  try {
    const ready = await beforeDeadline(publisher(), deadline, "connecting to Kafka");
    await ready.publish(messages, { deadline });
  } catch (error) {
    if (!(error instanceof BrokerUnavailableError)) throw error;
    logger.warn("broker unavailable", { error: error.message, events: events.length });
    return errorResponse(serviceUnavailable("Kafka is unavailable; retry the same request"), {
      "retry-after": "1",
    });
  }
  return json(202, { accepted: events.length, event_ids: events.map((e) => e.event_id) });
});

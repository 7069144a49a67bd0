import { z } from "zod";
import {
  BrokerUnavailableError,
  beforeDeadline,
  INGEST_PUBLISH_BUDGET_MS,
  KafkaEventPublisher,
  type PublishMessage,
} from "../lib/adapters/event-publisher.ts";
import { createKafka } from "../lib/adapters/kafka.ts";
import { kafkaEnv, kafkaProducerEnv, readConfig, retentionEnv } from "../lib/config.ts";
import { type ApiError, serviceUnavailable } from "../lib/contract/errors.ts";
import { type AcceptedEvent, parseIngestBody } from "../lib/contract/event.ts";
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

/**
 * The request's messages and event ids, or the 400 for its body. Kept apart from the handler so
 * that nothing of the parsed events (their objects, `properties`, `metadata`) lives across the
 * wait for Kafka's acknowledgement: with a few requests in flight they survived the young
 * generation's collections, were promoted and filled the old one (`--trace-gc` of
 * bench/ingest-handler.ts: about two thirds of the young generation survived each scavenge, a
 * full collection every 2 s). Only the serialized values, the keys and the ids are needed past here.
 */
export function prepareIngest(
  body: string | undefined,
  now: number,
): { ok: true; messages: PublishMessage[]; eventIds: string[] } | { ok: false; error: ApiError } {
  const parsed = parseIngestBody(body, { now, retentionMs });
  if (!parsed.ok) return parsed;
  const { events, serialized } = parsed;
  const messages: PublishMessage[] = new Array(events.length);
  const eventIds: string[] = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as AcceptedEvent;
    messages[i] = { key: e.user_id, value: serialized[i] ?? "", timestamp: e.received_at };
    eventIds[i] = e.event_id;
  }
  return { ok: true, messages, eventIds };
}

export const handler = apiHandler(async (event) => {
  // The budget counts from here: parsing a large batch and a cold start's connection take from it.
  const deadline = Date.now() + INGEST_PUBLISH_BUDGET_MS;
  const prepared = prepareIngest(bodyText(event), Date.now());
  if (!prepared.ok) return errorResponse(prepared.error);
  const { messages, eventIds } = prepared;
  try {
    const ready = await beforeDeadline(publisher(), deadline, "connecting to Kafka");
    await ready.publish(messages, { deadline });
  } catch (error) {
    if (!(error instanceof BrokerUnavailableError)) throw error;
    logger.warn("broker unavailable", { error: error.message, events: eventIds.length });
    return errorResponse(serviceUnavailable("Kafka is unavailable; retry the same request"), {
      "retry-after": "1",
    });
  }
  return json(202, { accepted: eventIds.length, event_ids: eventIds });
});

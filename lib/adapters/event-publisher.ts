import type { Kafka, Message, Producer } from "kafkajs";
import { CompressionTypes } from "kafkajs";
import { messageBytes, sendBounded } from "./kafka-batches.ts";
import { javaCompatiblePartitioner } from "./kafka-partitioner.ts";

/** The ingest side's port: publish serialized events so that Kafka acknowledged every one. */
export interface EventPublisher {
  /**
   * Resolves only once Kafka acknowledged every message (acks from all in-sync replicas); rejects
   * with BrokerUnavailableError when they were not acknowledged by `deadline` (epoch ms).
   */
  publish(messages: readonly PublishMessage[], options?: PublishOptions): Promise<void>;
  close(): Promise<void>;
}

export interface PublishOptions {
  /** Epoch ms after which the caller gives up waiting for the acknowledgement. @default none */
  readonly deadline?: number;
}

/**
 * How long POST /events may wait for Kafka, from the handler's start. API Gateway ends a REST
 * integration at 29 s with its own 504 (no Retry-After), and ingest's Lambda timeout is 29 s too;
 * kafkajs alone can take longer on a slow or unreachable broker (a 10 s request timeout, retried
 * twice, after up to 3 s to connect and 10 s to authenticate). Giving up first lets the handler
 * answer 503 with Retry-After, as for any broker failure.
 */
export const INGEST_PUBLISH_BUDGET_MS = 25_000;

/** `promise`, or BrokerUnavailableError once `deadline` (epoch ms) passed without it settling. */
export function beforeDeadline<T>(promise: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new BrokerUnavailableError(`${what} did not finish by the request's deadline`)),
      Math.max(0, deadline - Date.now()),
    );
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

export interface PublishMessage {
  readonly key: string;
  readonly value: string;
  readonly timestamp: number;
}

/** Kafka could not be reached or did not acknowledge: nothing may be reported as accepted. */
export class BrokerUnavailableError extends Error {
  override name = "BrokerUnavailableError";
}

interface Pending {
  readonly messages: readonly PublishMessage[];
  readonly bytes: number;
  /** Its deadline passed and its caller was answered BrokerUnavailableError: never send it. */
  expired?: boolean;
  resolve(): void;
  reject(error: Error): void;
}

export interface KafkaPublisherOptions {
  readonly topic: string;
  /** Upper bound of messages coalesced into one produce request. */
  readonly maxMessagesPerRequest?: number;
  /** The topic's `max.message.bytes`: requests are cut so every partition's batch fits. */
  readonly maxMessageBytes: number;
  /** Record batch compression (`KAFKA_COMPRESSION`). @default "none" */
  readonly compression?: "none" | "gzip";
}

const COMPRESSION = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP } as const;

/**
 * Idempotent kafkajs producer (acks=all, one request in flight per broker, which the idempotent
 * producer requires). Concurrent `publish` calls are coalesced: while a produce request is in
 * flight, new calls queue up and leave together in the next request, so throughput grows with
 * load instead of paying one broker round trip per HTTP request.
 */
export class KafkaEventPublisher implements EventPublisher {
  readonly #producer: Producer;
  readonly #topic: string;
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  readonly #compression: CompressionTypes;
  #connected: Promise<void> | undefined;
  #queue: Pending[] = [];
  #flushing = false;

  constructor(kafka: Kafka, options: KafkaPublisherOptions) {
    this.#producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: javaCompatiblePartitioner,
      // Fail fast while the broker is away: the client gets 503 + Retry-After and retries itself.
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1_000 },
    });
    this.#topic = options.topic;
    this.#maxMessages = options.maxMessagesPerRequest ?? 50_000;
    this.#maxBytes = options.maxMessageBytes;
    this.#compression = COMPRESSION[options.compression ?? "none"];
  }

  publish(messages: readonly PublishMessage[], options: PublishOptions = {}): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const bytes = messages.reduce((n, m) => n + messageBytes(m), 0);
      let timer: NodeJS.Timeout | undefined;
      const pending: Pending = {
        messages,
        bytes,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      if (options.deadline !== undefined) {
        timer = setTimeout(
          () => {
            // Still queued behind a request that hangs: it never leaves, the client's retry sends
            // it. Already in flight: its outcome is unknown, and a retry is safe (event_id).
            const queued = this.#queue.indexOf(pending);
            if (queued >= 0) this.#queue.splice(queued, 1);
            pending.expired = true;
            reject(
              new BrokerUnavailableError("Kafka did not acknowledge the events by the request's deadline"),
            );
          },
          Math.max(0, options.deadline - Date.now()),
        );
      }
      this.#queue.push(pending);
      if (!this.#flushing) void this.#flush();
    });
  }

  async close(): Promise<void> {
    if (this.#connected) await this.#producer.disconnect().catch(() => undefined);
    this.#connected = undefined;
  }

  async #connect(): Promise<void> {
    this.#connected ??= this.#producer.connect().catch((error: unknown) => {
      this.#connected = undefined;
      throw error;
    });
    return this.#connected;
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        let batch = this.#takeBatch();
        try {
          await this.#connect();
          // A publish whose deadline passed while the connection was made was answered 503:
          // nothing of it was sent yet, so it is dropped rather than published behind the
          // client's back (only a request already in flight has an unknown outcome).
          batch = batch.filter((pending) => !pending.expired);
          if (batch.length === 0) continue;
          const messages: Message[] = [];
          for (const pending of batch) {
            for (const m of pending.messages) {
              messages.push({ key: m.key, value: m.value, timestamp: String(m.timestamp) });
            }
          }
          // One request unless the coalesced messages exceed the topic's max.message.bytes (a
          // single POST of 10,000 large events of one user can): then several, in order.
          await sendBounded(
            this.#producer,
            { topic: this.#topic, acks: -1, timeout: 10_000, compression: this.#compression, messages },
            this.#maxBytes,
          );
          for (const pending of batch) pending.resolve();
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          const failure = new BrokerUnavailableError(`Kafka did not acknowledge the events: ${reason}`);
          for (const pending of batch) pending.reject(failure);
          // Drop the connection state so the next publish reconnects to a broker that came back.
          await this.close();
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  #takeBatch(): Pending[] {
    const batch: Pending[] = [];
    let count = 0;
    let bytes = 0;
    while (this.#queue.length > 0) {
      const next = this.#queue[0];
      if (!next) break;
      if (
        batch.length > 0 &&
        (count + next.messages.length > this.#maxMessages || bytes + next.bytes > this.#maxBytes)
      )
        break;
      batch.push(next);
      count += next.messages.length;
      bytes += next.bytes;
      this.#queue.shift();
    }
    return batch;
  }
}

import type { MSKEvent, MSKRecord } from "aws-lambda";
import type { Consumer, Kafka, KafkaMessage, Producer } from "kafkajs";
import { sendBounded } from "../lib/adapters/kafka-batches.ts";
import {
  type EventSourceMappingSpec,
  KAFKA_DEFAULT_BATCHING_WINDOW_MS,
  MAX_MESSAGE_BYTES,
} from "../lib/topology.ts";

/**
 * Emulates a Lambda event-source mapping for Amazon MSK on one machine, with AWS's delivery
 * semantics:
 * - one Kafka consumer group per mapping (`consumerGroup`), starting at TRIM_HORIZON or LATEST
 *   when the group has no committed offset;
 * - MSK-shaped events: `eventSource: "aws:kafka"`, records grouped under `"<topic>-<partition>"`,
 *   base64 key and value, headers as byte arrays, timestamps;
 * - at most `batchSize` records per invocation, gathering for up to the batching window;
 * - partitions processed concurrently, each in offset order, one invocation at a time;
 * - offsets committed only after the handler succeeded (or the batch went to the on-failure
 *   destination);
 * - a failed invocation retried up to `maximumRetryAttempts` times with exponential backoff,
 *   then the failed records are produced to the on-failure Kafka topic with failure metadata
 *   in headers (as AWS does for a `kafka://` destination) and the mapping moves on;
 * - with `reportBatchItemFailures`, a `{batchItemFailures: [{itemIdentifier: {partition, offset}}]}`
 *   answer commits the records before the lowest failed offset and retries from it; an
 *   unparseable answer counts as a failure of the whole batch.
 */
export interface MappingOptions {
  readonly spec: Pick<
    EventSourceMappingSpec,
    | "id"
    | "consumerGroup"
    | "batchSize"
    | "maximumBatchingWindowSeconds"
    | "startingPosition"
    | "maximumRetryAttempts"
    | "reportBatchItemFailures"
  >;
  readonly kafka: Kafka;
  /** Physical topic names. */
  readonly topic: string;
  readonly onFailureTopic: string;
  /** The on-failure topic's max.message.bytes (a failed batch may need several requests). @default MAX_MESSAGE_BYTES */
  readonly onFailureMaxMessageBytes?: number;
  readonly functionName: string;
  readonly invoke: (event: MSKEvent) => Promise<unknown>;
  /** Backoff before retry n (1-based). Default: 100 ms doubling, capped at 5 s. */
  readonly retryDelayMs?: (attempt: number) => number;
  readonly log?: (line: string) => void;
}

export interface MappingStats {
  invocations: number;
  failedInvocations: number;
  recordsDelivered: number;
  recordsSentToOnFailure: number;
}

const ARN_PREFIX = "arn:aws:kafka:local:000000000000:cluster/tidemark-local";

/** Records of one partition that a consumer fetched and no invocation took yet. */
interface PartitionBuffer {
  readonly key: string;
  readonly topic: string;
  readonly partition: number;
  /** The consumer that fetched them (a restarted one fetches again from the committed offset). */
  readonly consumer: Consumer;
  readonly records: KafkaMessage[];
  /** When each record arrived (was fetched), in the order of `records`. */
  readonly arrivals: number[];
  /** The offset after the last record buffered. */
  nextOffset: number;
  /** Wakes the delivery loop (records arrived, or the buffer was dropped). */
  wake?: () => void;
  /** Fetches waiting for the buffer to drain. */
  readonly drained: (() => void)[];
}

export class LocalEventSourceMapping {
  readonly stats: MappingStats = {
    invocations: 0,
    failedInvocations: 0,
    recordsDelivered: 0,
    recordsSentToOnFailure: 0,
  };
  readonly #options: MappingOptions;
  #consumer: Consumer;
  readonly #producer: Producer;
  #running = false;
  #restarts = 0;
  /**
   * Restarts since the last successful delivery: the backoff step. Reset once a consumer has
   * joined and delivered, so that a crash after a healthy period waits 500 ms again, not 5 s.
   */
  #backoff = 0;
  /**
   * The current consumer once it crashed and its restart is scheduled: one restart at a time.
   * A crash fails every partition's delivery at once (a rebalance refuses each in-flight commit),
   * and each failure reports it; a restart per report would disconnect the consumer the previous
   * restart had just started (another rebalance, more refused commits), and two firing together
   * would leave a consumer in the group that no one delivers for.
   */
  #restartPending: Consumer | undefined;
  readonly #windowMs: number;
  /** Per partition (`<topic>-<partition>`), what the current consumer fetched and no invocation took yet. */
  readonly #buffers = new Map<string, PartitionBuffer>();
  /**
   * Per partition, the invocation in progress (with its retries): one at a time per partition,
   * also across the buffers of a rebalance or of a restarted consumer.
   */
  readonly #deliveries = new Map<string, Promise<unknown>>();

  constructor(options: MappingOptions) {
    this.#options = options;
    const { maximumBatchingWindowSeconds } = options.spec;
    this.#windowMs =
      maximumBatchingWindowSeconds === undefined
        ? KAFKA_DEFAULT_BATCHING_WINDOW_MS
        : Math.round(maximumBatchingWindowSeconds * 1000);
    this.#consumer = this.#createConsumer();
    this.#producer = options.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
    });
  }

  /** How many times the consumer crashed for good and was started again (an ESM never gives up). */
  get restarts(): number {
    return this.#restarts;
  }

  #createConsumer(): Consumer {
    const { spec } = this.#options;
    return this.#options.kafka.consumer({
      groupId: spec.consumerGroup,
      // The poller fetches continuously: a fetch returns once records arrive (gathering up to
      // 100 ms when there is a window), and the window is kept here per partition, from the first
      // record's arrival (`#drain`), as AWS does for Kafka sources. A fetch held for the whole
      // window would start it only once the previous invocation ended, a window late.
      // Without a window (minBytes 1) a fetch returns at a record's arrival whatever it may wait:
      // held up to 1 s, an idle partition costs the broker 1 Fetch a second, not 10 (a fetch
      // each 100 ms was the broadcast consumers' 20 requests a second on a quiet topic).
      maxWaitTimeInMs: this.#windowMs > 0 ? 100 : 1_000,
      minBytes: this.#windowMs > 0 ? 64 * 1024 : 1,
      maxBytesPerPartition: 8 * 1024 * 1024,
      maxBytes: 64 * 1024 * 1024,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
      rebalanceTimeout: 10_000,
      retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5_000 },
    });
  }

  async start(): Promise<void> {
    await this.#producer.connect();
    this.#running = true;
    await this.#run(this.#consumer);
  }

  /**
   * Joins the group and consumes. kafkajs restarts a consumer after a retriable error by itself;
   * after any other crash (an error thrown by a commit or a heartbeat during a rebalance, a
   * broker that was away longer than the retries) its consumer stays stopped and leaves the
   * group, and the partitions would never be read again. An event-source mapping does not stop
   * polling because one poll failed: the crash is logged and a new consumer joins the group,
   * resuming from the committed offsets (so nothing is skipped; uncommitted records are
   * delivered again, as AWS does).
   */
  async #run(consumer: Consumer): Promise<void> {
    const { spec } = this.#options;
    consumer.on(consumer.events.CRASH, (event) => {
      const { error, restart } = event.payload;
      // A retriable error (e.g. the group coordinator still loading on a fresh broker): kafkajs
      // rejoins by itself, nothing was lost, so it is noted without the alarm word.
      if (restart) {
        this.#options.log?.(
          `[esm ${spec.id}] consumer rejoining after a retriable error: ${error.name}: ${error.message}`,
        );
        return;
      }
      this.#crashed(consumer, error);
    });
    await consumer.connect();
    await consumer.subscribe({
      topic: this.#options.topic,
      fromBeginning: spec.startingPosition === "TRIM_HORIZON",
    });
    // As an enabled ESM does, consume from the moment start() returns: with LATEST, records
    // produced before the group joined would otherwise be skipped.
    const joined = new Promise<void>((resolve) => {
      const off = consumer.on(consumer.events.GROUP_JOIN, () => {
        off();
        resolve();
      });
    });
    // A rebalance starts every assigned partition again from its committed offset (kafkajs
    // resolves fetch positions anew): what this consumer buffered is fetched again.
    consumer.on(consumer.events.GROUP_JOIN, () => this.#dropBuffers(consumer));
    const partitionsConsumedConcurrently = 64;
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently,
      eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
        const active = () => this.#isCurrent(consumer) && isRunning() && !isStale();
        if (!active() || batch.messages.length === 0) return;
        const buffer = this.#bufferOf(consumer, batch.topic, batch.partition);
        const arrived = Date.now();
        for (const m of batch.messages) {
          // Already buffered (a fetch of the same records again): once is enough.
          if (Number(m.offset) < buffer.nextOffset) continue;
          buffer.records.push(m);
          buffer.arrivals.push(arrived);
          buffer.nextOffset = Number(m.offset) + 1;
        }
        // Fetched, not done: this moves the consumer's next fetch only. The group's committed
        // offset moves when an invocation of the records succeeded (`#deliver`).
        resolveOffset(batch.lastOffset());
        buffer.wake?.();
        // At most two batches waiting per partition: then the fetch waits for the invocations
        // (kafkajs fetches every partition of a broker together, so all of them wait).
        while (
          buffer.records.length >= 2 * spec.batchSize &&
          active() &&
          this.#buffers.get(buffer.key) === buffer
        ) {
          await new Promise<void>((resolve) => {
            buffer.drained.push(resolve);
            setTimeout(resolve, 1_000).unref();
          });
          await heartbeat();
        }
      },
    });
    await joined;
  }

  /** The consumer the mapping delivers for: the current one, unless it crashed. */
  #isCurrent(consumer: Consumer): boolean {
    return this.#running && consumer === this.#consumer && this.#restartPending !== consumer;
  }

  /**
   * A consumer crashed for good (kafkajs stopped it, or a delivery's commit was refused): a new
   * one is started after a backoff, once, whoever reports the crash and however often.
   */
  #crashed(consumer: Consumer, error: unknown): void {
    const { spec } = this.#options;
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    if (!this.#running || consumer !== this.#consumer) {
      // A consumer already replaced (or a mapping stopping): nothing to restart.
      this.#options.log?.(`[esm ${spec.id}] a replaced consumer failed: ${reason}`);
      return;
    }
    if (this.#restartPending === consumer) {
      this.#options.log?.(`[esm ${spec.id}] consumer crashed, restart already pending: ${reason}`);
      return;
    }
    this.#options.log?.(`[esm ${spec.id}] consumer crashed for good, starting a new one: ${reason}`);
    this.#restartPending = consumer;
    this.#dropBuffers(consumer);
    // Until it is replaced, kafkajs keeps the crashed consumer fetching, and nothing takes its
    // records any more (`#isCurrent`): stop its fetches rather than let them spin.
    try {
      consumer.pause([{ topic: this.#options.topic }]);
    } catch {
      // Not running yet (it crashed while joining): nothing to pause.
    }
    this.#restarts++;
    this.#backoff++;
    void this.#restartAfter(consumer, Math.min(5_000, 250 * 2 ** Math.min(this.#backoff, 5)));
  }

  /** Replaces `crashed` (not whichever consumer is current by then) with a new consumer. */
  async #restartAfter(crashed: Consumer, delayMs: number): Promise<void> {
    await sleep(delayMs);
    if (!this.#running || this.#consumer !== crashed) return;
    this.#dropBuffers(crashed);
    await bounded(crashed.disconnect());
    if (!this.#running) return;
    const next = this.#createConsumer();
    this.#consumer = next;
    this.#restartPending = undefined;
    try {
      await this.#run(next);
    } catch (error) {
      // Could not even join (the broker is away): try again, later.
      this.#options.log?.(
        `[esm ${this.#options.spec.id}] consumer restart failed: ${error instanceof Error ? error.message : String(error)}`,
      );
      this.#crashed(next, error);
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#dropBuffers(this.#consumer);
    await bounded(this.#consumer.disconnect());
    await bounded(Promise.all(this.#deliveries.values()).then(() => {}));
    await bounded(this.#producer.disconnect());
  }

  /** The partition's buffer for `consumer`, and its delivery loop, started on first use. */
  #bufferOf(consumer: Consumer, topic: string, partition: number): PartitionBuffer {
    const key = `${topic}-${partition}`;
    const current = this.#buffers.get(key);
    if (current?.consumer === consumer) return current;
    const buffer: PartitionBuffer = {
      key,
      topic,
      partition,
      consumer,
      records: [],
      arrivals: [],
      nextOffset: Number.NEGATIVE_INFINITY,
      drained: [],
    };
    this.#buffers.set(key, buffer);
    void this.#drain(buffer);
    return buffer;
  }

  /** Forgets what `consumer` fetched and did not deliver (uncommitted: fetched again later). */
  #dropBuffers(consumer: Consumer): void {
    for (const [key, buffer] of this.#buffers) {
      if (buffer.consumer !== consumer) continue;
      this.#buffers.delete(key);
      buffer.wake?.();
      for (const release of buffer.drained.splice(0)) release();
    }
  }

  /**
   * A partition's invocations: a batch is due once it holds `batchSize` records, or once the
   * batching window has passed since its first record arrived — which may be before the previous
   * invocation ended, and then it goes at once. One invocation at a time per partition.
   */
  async #drain(buffer: PartitionBuffer): Promise<void> {
    const { spec } = this.#options;
    const live = () => this.#running && this.#buffers.get(buffer.key) === buffer;
    while (live()) {
      const first = buffer.arrivals[0];
      const due = first === undefined ? Number.POSITIVE_INFINITY : first + this.#windowMs;
      if (buffer.records.length < spec.batchSize && Date.now() < due) {
        await new Promise<void>((resolve) => {
          buffer.wake = resolve;
          setTimeout(resolve, Math.min(1_000, Math.max(0, due - Date.now()))).unref();
        });
        buffer.wake = undefined;
        continue;
      }
      const batch = buffer.records.splice(0, spec.batchSize);
      buffer.arrivals.splice(0, batch.length);
      for (const release of buffer.drained.splice(0)) release();
      // The previous buffer of this partition (before a rebalance or a restart) may still be invoking.
      await this.#deliveries.get(buffer.key);
      if (!live()) return;
      const delivery = this.#deliver(buffer.topic, buffer.partition, batch, live);
      const settled = delivery.catch(() => {});
      this.#deliveries.set(buffer.key, settled);
      try {
        if (!(await delivery)) return;
        // Delivered and committed by the current consumer: healthy again, the backoff starts over.
        if (this.#isCurrent(buffer.consumer)) this.#backoff = 0;
      } catch (error) {
        // What kafkajs does when a batch's handler throws (a commit refused, an on-failure topic
        // that cannot be written): the consumer crashes, and the mapping starts a new one.
        this.#crashed(buffer.consumer, error);
        return;
      } finally {
        if (this.#deliveries.get(buffer.key) === settled) this.#deliveries.delete(buffer.key);
      }
    }
  }

  /** Delivers one batch until it succeeds or goes to the on-failure topic; false if interrupted. */
  async #deliver(
    topic: string,
    partition: number,
    batch: KafkaMessage[],
    active: () => boolean,
  ): Promise<boolean> {
    // Commits records done for the group.
    const complete = (nextOffset: number) => this.#commit(topic, partition, nextOffset);
    const { spec } = this.#options;
    let pending = batch;
    let lastError = "";
    for (let attempt = 0; attempt <= spec.maximumRetryAttempts; attempt++) {
      if (attempt > 0) {
        await sleep(this.#options.retryDelayMs?.(attempt) ?? Math.min(5_000, 100 * 2 ** (attempt - 1)));
        if (!active()) return false;
      }
      const outcome = await this.#invoke(topic, partition, pending);
      if (outcome.kind === "success") {
        await complete(lastOffset(pending) + 1);
        return true;
      }
      this.stats.failedInvocations++;
      lastError = outcome.reason;
      if (outcome.kind === "partial") {
        // Records before the lowest failed offset are done: commit them, retry from there.
        if (outcome.firstFailedOffset > Number(firstOffset(pending)))
          await complete(outcome.firstFailedOffset);
        pending = pending.filter((m) => Number(m.offset) >= outcome.firstFailedOffset);
      }
      this.#options.log?.(
        `[esm ${spec.id}] ${topic}-${partition} attempt ${attempt + 1}/${spec.maximumRetryAttempts + 1} failed: ${lastError}`,
      );
      if (!active()) return false;
    }
    await this.#sendToOnFailure(topic, partition, pending, lastError);
    await complete(lastOffset(pending) + 1);
    return true;
  }

  async #invoke(
    topic: string,
    partition: number,
    batch: KafkaMessage[],
  ): Promise<
    | { kind: "success" }
    | { kind: "failure"; reason: string }
    | { kind: "partial"; firstFailedOffset: number; reason: string }
  > {
    this.stats.invocations++;
    this.stats.recordsDelivered += batch.length;
    let result: unknown;
    try {
      result = await this.#options.invoke(mskEvent(topic, partition, batch));
    } catch (error) {
      return {
        kind: "failure",
        reason: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      };
    }
    if (!this.#options.spec.reportBatchItemFailures) return { kind: "success" };
    return interpretBatchResponse(result, `${topic}-${partition}`, batch);
  }

  async #commit(topic: string, partition: number, nextOffset: number): Promise<void> {
    await this.#consumer.commitOffsets([{ topic, partition, offset: String(nextOffset) }]);
  }

  async #sendToOnFailure(
    topic: string,
    partition: number,
    batch: KafkaMessage[],
    reason: string,
  ): Promise<void> {
    const { spec } = this.#options;
    this.#options.log?.(
      `[esm ${spec.id}] ${topic}-${partition}: ${batch.length} record(s) sent to ${this.#options.onFailureTopic} after ${spec.maximumRetryAttempts} retries`,
    );
    this.stats.recordsSentToOnFailure += batch.length;
    await sendBounded(
      this.#producer,
      {
        topic: this.#options.onFailureTopic,
        acks: -1,
        messages: batch.map((m) => ({
          key: m.key,
          value: m.value,
          headers: {
            ...m.headers,
            "x-tidemark-source-topic": topic,
            "x-tidemark-source-partition": String(partition),
            "x-tidemark-source-offset": m.offset,
            "x-tidemark-function": this.#options.functionName,
            "x-tidemark-esm": spec.id,
            "x-tidemark-error": reason.slice(0, 1000),
            "x-tidemark-failed-at": new Date().toISOString(),
          },
        })),
      },
      this.#options.onFailureMaxMessageBytes ?? MAX_MESSAGE_BYTES,
    );
  }
}

function firstOffset(batch: KafkaMessage[]): string {
  return batch[0]?.offset ?? "0";
}

function lastOffset(batch: KafkaMessage[]): number {
  return Number(batch[batch.length - 1]?.offset ?? "-1");
}

/** Interprets a handler's answer the way Lambda does for stream sources with ReportBatchItemFailures. */
export function interpretBatchResponse(
  result: unknown,
  topicPartition: string,
  batch: readonly KafkaMessage[],
):
  | { kind: "success" }
  | { kind: "failure"; reason: string }
  | { kind: "partial"; firstFailedOffset: number; reason: string } {
  if (result === null || result === undefined || typeof result !== "object") return { kind: "success" };
  const failures = (result as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return { kind: "success" };
  if (!Array.isArray(failures)) return { kind: "failure", reason: "batchItemFailures is not an array" };
  if (failures.length === 0) return { kind: "success" };
  const offsets = new Set(batch.map((m) => Number(m.offset)));
  let lowest = Number.POSITIVE_INFINITY;
  for (const failure of failures) {
    const id = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier as
      | { partition?: unknown; offset?: unknown }
      | undefined;
    const offset = typeof id?.offset === "string" ? Number(id.offset) : id?.offset;
    if (!id || id.partition !== topicPartition || typeof offset !== "number" || !offsets.has(offset)) {
      return { kind: "failure", reason: `invalid itemIdentifier ${JSON.stringify(id)} in batchItemFailures` };
    }
    lowest = Math.min(lowest, offset);
  }
  return {
    kind: "partial",
    firstFailedOffset: lowest,
    reason: `${failures.length} record(s) reported failed`,
  };
}

export function mskEvent(topic: string, partition: number, batch: readonly KafkaMessage[]): MSKEvent {
  const records: MSKRecord[] = batch.map((m) => ({
    topic,
    partition,
    offset: Number(m.offset),
    timestamp: Number(m.timestamp),
    timestampType: "CREATE_TIME",
    key: m.key ? m.key.toString("base64") : "",
    value: m.value ? m.value.toString("base64") : "",
    headers: Object.entries(m.headers ?? {}).map(([name, value]) => ({
      [name]: value === undefined ? [] : [...(Buffer.isBuffer(value) ? value : Buffer.from(String(value)))],
    })),
  }));
  return {
    eventSource: "aws:kafka",
    eventSourceArn: ARN_PREFIX,
    bootstrapServers: "localhost",
    records: { [`${topic}-${partition}`]: records },
  };
}

/**
 * On Ctrl-C the broker may already be gone (the terminal signals the whole process group), and
 * kafkajs would retry leaving the group for a long time: give it a few seconds.
 */
function bounded(p: Promise<void>): Promise<void> {
  return Promise.race([p.catch(() => undefined), new Promise<void>((r) => setTimeout(r, 3_000).unref())]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

import type { Producer, ProducerRecord } from "kafkajs";

/**
 * Produce requests bounded by bytes. Kafka checks a topic's `max.message.bytes` against each
 * partition's record batch in a request; cutting a request so that ALL its messages together fit
 * guarantees every partition's batch fits, whatever the partitioner does with the keys.
 */
const PER_RECORD_OVERHEAD = 64;
const BATCH_OVERHEAD = 128;

/** Bytes a message adds to a record batch (an upper bound). */
type Bytes = string | Buffer | null | undefined;
const size = (b: Bytes) =>
  b === null || b === undefined ? 0 : typeof b === "string" ? Buffer.byteLength(b) : b.length;
export function messageBytes(m: { key?: Bytes; value: Bytes }): number {
  return size(m.key) + size(m.value) + PER_RECORD_OVERHEAD;
}

export class MessageTooLargeError extends Error {
  override name = "MessageTooLargeError";
  constructor(
    readonly key: string,
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(`message ${key} is ${bytes} bytes, above the topic's maximum of ${maxBytes}`);
  }
}

/**
 * Cuts messages, in order, into produce requests whose record batch stays within `maxBytes`, as
 * they come: a producer of many messages sends each request once it is full and holds no more
 * than one (the stats publisher: a stream batch of long group keys makes hundreds of MB).
 */
export class BoundedRequests<T extends { key?: Bytes; value: Bytes }> {
  #current: T[] = [];
  #bytes = BATCH_OVERHEAD;

  constructor(private readonly maxBytes: number) {}

  /** Adds `m`; returns the request it closed (the messages before it) when `m` did not fit in it. */
  add(m: T): T[] | undefined {
    const bytesOf = messageBytes(m);
    if (bytesOf + BATCH_OVERHEAD > this.maxBytes)
      throw new MessageTooLargeError(String(m.key ?? ""), bytesOf, this.maxBytes);
    let full: T[] | undefined;
    if (this.#bytes + bytesOf > this.maxBytes && this.#current.length > 0) {
      full = this.#current;
      this.#current = [];
      this.#bytes = BATCH_OVERHEAD;
    }
    this.#current.push(m);
    this.#bytes += bytesOf;
    return full;
  }

  /** The last request (undefined when it holds nothing). */
  flush(): T[] | undefined {
    if (this.#current.length === 0) return undefined;
    const last = this.#current;
    this.#current = [];
    this.#bytes = BATCH_OVERHEAD;
    return last;
  }
}

/** Splits messages, in order, into groups whose record batch stays within `maxBytes`. */
export function chunkByBytes<T extends { key?: Bytes; value: Bytes }>(
  messages: readonly T[],
  maxBytes: number,
): T[][] {
  const out: T[][] = [];
  const requests = new BoundedRequests<T>(maxBytes);
  for (const m of messages) {
    const full = requests.add(m);
    if (full) out.push(full);
  }
  const last = requests.flush();
  if (last) out.push(last);
  return out;
}

/** `producer.send` in as many requests as `maxBytes` needs (in order; acks as given). */
export async function sendBounded(
  producer: Pick<Producer, "send">,
  record: ProducerRecord,
  maxBytes: number,
): Promise<void> {
  for (const messages of chunkByBytes(record.messages, maxBytes))
    await producer.send({ ...record, messages });
}

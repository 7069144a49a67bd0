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

/** Splits messages, in order, into groups whose record batch stays within `maxBytes`. */
export function chunkByBytes<T extends { key?: Bytes; value: Bytes }>(
  messages: readonly T[],
  maxBytes: number,
): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = BATCH_OVERHEAD;
  for (const m of messages) {
    const bytesOf = messageBytes(m);
    if (bytesOf + BATCH_OVERHEAD > maxBytes)
      throw new MessageTooLargeError(String(m.key ?? ""), bytesOf, maxBytes);
    if (bytes + bytesOf > maxBytes && current.length > 0) {
      out.push(current);
      current = [];
      bytes = BATCH_OVERHEAD;
    }
    current.push(m);
    bytes += bytesOf;
  }
  if (current.length > 0) out.push(current);
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

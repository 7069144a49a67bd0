import type { ICustomPartitioner, PartitionerArgs } from "kafkajs";

/**
 * Kafka's Java-compatible key partitioning (murmur2 of the key's UTF-8 bytes, positive, modulo
 * the topic's partitions) — the very partition kafkajs's DefaultPartitioner picks, computed in
 * 32-bit integer arithmetic. kafkajs computes it with a 64-bit `Long` emulation and a `Buffer`
 * per key: 6 % of the API's CPU at 1,000 events a request. Same key, same partition, so a user's
 * events stay in order on one partition whichever producer sent them.
 */
const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils#murmur2) of a byte sequence. */
export function murmur2Bytes(data: Uint8Array): number {
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k =
      (data[i4] ?? 0) |
      ((data[i4 + 1] ?? 0) << 8) |
      ((data[i4 + 2] ?? 0) << 16) |
      ((data[i4 + 3] ?? 0) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // The tail bytes, highest first (Kafka's switch falls through 3 → 2 → 1).
  const tail = length & ~3;
  const rest = length % 4;
  if (rest >= 3) h ^= (data[tail + 2] ?? 0) << 16;
  if (rest >= 2) h ^= (data[tail + 1] ?? 0) << 8;
  if (rest >= 1) {
    h ^= data[tail] ?? 0;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

const encoder = new TextEncoder();
/** Reused for ASCII keys (user ids almost always are): no allocation per key. */
let scratch = new Uint8Array(256);

/** murmur2 of a string's UTF-8 bytes. */
export function murmur2(key: string): number {
  const length = key.length;
  if (length > scratch.length) scratch = new Uint8Array(Math.max(length, scratch.length * 2));
  for (let i = 0; i < length; i++) {
    const c = key.charCodeAt(i);
    if (c > 0x7f) return murmur2Bytes(encoder.encode(key));
    scratch[i] = c;
  }
  return murmur2Bytes(scratch.subarray(0, length));
}

/** The partition of a key among `partitions`, as Kafka's Java client and kafkajs choose it. */
export const partitionOfKey = (key: string, partitions: number) => (murmur2(key) & 0x7fffffff) % partitions;

/**
 * kafkajs's DefaultPartitioner with this murmur2: an explicit partition wins, a key picks by hash,
 * no key goes round-robin over the partitions that have a leader.
 */
export const javaCompatiblePartitioner: ICustomPartitioner = () => {
  let counter = Math.floor(Math.random() * 0x7fffffff);
  return ({ partitionMetadata, message }: PartitionerArgs) => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const partitions = partitionMetadata.length;
    const key = message.key;
    if (key !== null && key !== undefined) {
      const hash = typeof key === "string" ? murmur2(key) : murmur2Bytes(key);
      return (hash & 0x7fffffff) % partitions;
    }
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    const pool = available.length > 0 ? available : partitionMetadata;
    counter = (counter + 1) & 0x7fffffff;
    return pool[counter % pool.length]?.partitionId ?? 0;
  };
};

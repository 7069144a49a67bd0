import { createRequire } from "node:module";
import fc from "fast-check";
import { Partitioners } from "kafkajs";
import { describe, expect, it } from "vitest";
import { javaCompatiblePartitioner, murmur2, murmur2Bytes } from "../../lib/adapters/kafka-partitioner.ts";

/** kafkajs's own murmur2 (Long arithmetic), the reference this one must equal bit for bit. */
const kafkajsMurmur2 = createRequire(import.meta.url)(
  "kafkajs/src/producer/partitioners/default/murmur2.js",
) as (key: string | Buffer) => number;

const metadata = (n: number) =>
  Array.from({ length: n }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: 1,
    replicas: [1],
    isr: [1],
  }));

describe("Java-compatible partitioner", () => {
  it("hashes every string exactly as kafkajs does (ASCII, any Unicode, any length)", () => {
    for (const key of [
      "",
      "a",
      "ab",
      "abc",
      "abcd",
      "user-1",
      "__proto__",
      "a\u0000b",
      "é",
      "😀x",
      "x".repeat(300),
    ])
      expect(murmur2(key), JSON.stringify(key)).toBe(kafkajsMurmur2(key));
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: "grapheme", maxLength: 40 })),
        (key) => {
          expect(murmur2(key)).toBe(kafkajsMurmur2(key));
        },
      ),
      { numRuns: 2_000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(murmur2Bytes(bytes)).toBe(kafkajsMurmur2(Buffer.from(bytes)));
      }),
      { numRuns: 1_000 },
    );
  });

  it("picks the partition kafkajs's DefaultPartitioner picks, and honours an explicit one", () => {
    const ours = javaCompatiblePartitioner();
    const theirs = Partitioners.DefaultPartitioner();
    fc.assert(
      fc.property(fc.string({ maxLength: 64 }), fc.integer({ min: 1, max: 64 }), (key, n) => {
        const args = { topic: "events.raw", partitionMetadata: metadata(n), message: { key, value: "v" } };
        expect(ours(args)).toBe(theirs(args));
      }),
      { numRuns: 2_000 },
    );
    const explicit = {
      topic: "t",
      partitionMetadata: metadata(6),
      message: { key: "k", value: "v", partition: 4 },
    };
    expect(ours(explicit)).toBe(4);
    const unkeyed = new Set(
      Array.from({ length: 12 }, () =>
        ours({ topic: "t", partitionMetadata: metadata(6), message: { value: "v" } }),
      ),
    );
    expect(unkeyed.size).toBe(6);
  });
});

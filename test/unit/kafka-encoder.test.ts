import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

// kafkajs's protocol encoder and decoder (CommonJS internals; patched: patches/README.md).
const require = createRequire(import.meta.url);
interface EncoderInstance {
  writeVarInt(value: number): EncoderInstance;
  writeUVarInt(value: number): EncoderInstance;
  readonly buffer: Buffer;
}
const Encoder = require("kafkajs/src/protocol/encoder") as new (size?: number) => EncoderInstance;
const Decoder = require("kafkajs/src/protocol/decoder") as new (
  buffer: Buffer,
) => { readVarInt(): number; readUVarInt(): number };

/** LEB128 of an unsigned 32-bit value, as Kafka's protocol defines varints. */
function leb128(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}
const zigzag = (n: number) => ((n << 1) ^ (n >> 31)) >>> 0;

describe("kafkajs's record encoder, patched", () => {
  const values = [
    0,
    1,
    -1,
    63,
    -64,
    64,
    127,
    128,
    300,
    -300,
    16_383,
    16_384,
    2 ** 20,
    2 ** 30,
    2 ** 31 - 1,
    -(2 ** 31),
  ];

  it("writes varints as Kafka's protocol defines them, and kafkajs reads them back", () => {
    const encoder = new Encoder(1);
    for (const v of values) encoder.writeVarInt(v);
    for (const u of [0, 127, 128, 2 ** 31, 2 ** 32 - 1]) encoder.writeUVarInt(u);
    const expected = [
      ...values.flatMap((v) => leb128(zigzag(v))),
      ...[0, 127, 128, 2 ** 31, 2 ** 32 - 1].flatMap(leb128),
    ];
    expect([...encoder.buffer]).toEqual(expected);
    const decoder = new Decoder(encoder.buffer);
    for (const v of values) expect(decoder.readVarInt()).toBe(v);
  });

  it("is the patched encoder (no zero-filled buffer, no array per varint)", () => {
    expect(Encoder.toString()).toContain("Buffer.allocUnsafe(Encoder.nextPowerOfTwo(initialSize))");
    expect(Encoder.prototype.writeUVarInt.toString()).not.toContain("Buffer.from");
  });

  it("groups a produce batch by partition in order, appending (patched: no copy per message)", () => {
    type Message = { key: string };
    const group = require("kafkajs/src/producer/groupMessagesPerPartition") as (args: {
      topic: string;
      partitionMetadata: unknown[];
      messages: Message[];
      partitioner: (args: { message: Message }) => number;
    }) => Record<string, Message[]>;
    const messages = Array.from({ length: 1_000 }, (_, i) => ({ key: String(i) }));
    const grouped = group({
      topic: "t",
      partitionMetadata: [{}, {}, {}],
      messages,
      partitioner: ({ message }) => Number(message.key) % 3,
    });
    expect(Object.keys(grouped)).toEqual(["0", "1", "2"]);
    for (const p of [0, 1, 2])
      expect(grouped[p]?.map((m) => m.key)).toEqual(messages.filter((_, i) => i % 3 === p).map((m) => m.key));
    expect(group({ topic: "t", partitionMetadata: [], messages, partitioner: () => 0 })).toEqual({});
    expect(group.toString()).toContain("current.push(message)");
  });

  it("checksums a record batch with CRC-32C eight bytes a step (patched), the same as bit by bit", () => {
    const crc32C = require("kafkajs/src/protocol/recordBatch/crc32C/crc32C") as (buffer: Buffer) => number;
    // CRC-32C from its definition (reflected polynomial 0x82F63B78), one bit at a time.
    const reference = (buffer: Buffer) => {
      let crc = 0xffffffff;
      for (const byte of buffer) {
        crc ^= byte;
        for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0x82f63b78 & -(crc & 1));
      }
      return (crc ^ 0xffffffff) >>> 0;
    };
    expect(crc32C(Buffer.from("123456789"))).toBe(0xe3069283); // the standard check value
    let seed = 7;
    for (let length = 0; length < 300; length++) {
      const buffer = Buffer.alloc(length);
      for (let i = 0; i < length; i++) {
        seed = (seed * 1_103_515_245 + 12_345) >>> 0;
        buffer[i] = seed >>> 24;
      }
      expect(crc32C(buffer)).toBe(reference(buffer));
    }
    expect(crc32C.toString()).toContain("T7[a & 0xff]");
  });
});

import { CompressionTypes, type Kafka, type ProducerRecord } from "kafkajs";
import { describe, expect, it } from "vitest";
import { KafkaEventPublisher } from "../../lib/adapters/event-publisher.ts";

/** A kafkajs client whose producer records what it was asked to send. */
function recordingKafka(sent: ProducerRecord[]): Kafka {
  const producer = {
    connect: async () => undefined,
    disconnect: async () => undefined,
    send: async (record: ProducerRecord) => {
      sent.push(record);
      return [];
    },
  };
  return { producer: () => producer } as unknown as Kafka;
}

describe("the ingest publisher's compression", () => {
  const message = { key: "u1", value: '{"event_id":"e1"}', timestamp: 1 };

  it("sends uncompressed batches by default (locally)", async () => {
    const sent: ProducerRecord[] = [];
    await new KafkaEventPublisher(recordingKafka(sent), { topic: "t", maxMessageBytes: 1 << 20 }).publish([
      message,
    ]);
    expect(sent.map((r) => r.compression)).toEqual([CompressionTypes.None]);
  });

  it("gzips batches when KAFKA_COMPRESSION=gzip (MSK)", async () => {
    const sent: ProducerRecord[] = [];
    await new KafkaEventPublisher(recordingKafka(sent), {
      topic: "t",
      maxMessageBytes: 1 << 20,
      compression: "gzip",
    }).publish([message]);
    expect(sent.map((r) => r.compression)).toEqual([CompressionTypes.GZIP]);
    expect(sent[0]?.messages).toHaveLength(1);
  });
});

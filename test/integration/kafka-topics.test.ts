import { ConfigResourceTypes, Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { syncTopics, type TopicSettings } from "../../lib/adapters/kafka-topics.ts";

/** What the topics custom resource (infra/custom-resources/create-topics.ts) and the local bootstrap do, on the real broker. */
describe("the topics custom resource brings a cluster's topics to the topology", () => {
  const endpoints = inject("endpoints");
  const kafka = new Kafka({
    clientId: "create-topics-test",
    brokers: endpoints.kafkaBrokers,
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  const name = `topics-test-${Date.now()}`;
  const topic = (partitions: number, retentionMs: number, maxMessageBytes: number): TopicSettings => ({
    name,
    partitions,
    retentionMs,
    maxMessageBytes,
  });
  const configs = async () => {
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [
        { type: ConfigResourceTypes.TOPIC, name, configNames: ["retention.ms", "max.message.bytes"] },
      ],
    });
    return Object.fromEntries(
      (described.resources[0]?.configEntries ?? []).map((e) => [e.configName, e.configValue]),
    );
  };
  const partitions = async () =>
    (await admin.fetchTopicMetadata({ topics: [name] })).topics[0]?.partitions.length;

  beforeAll(async () => {
    await admin.connect();
  });
  afterAll(async () => {
    await admin.deleteTopics({ topics: [name] }).catch(() => undefined);
    await admin.disconnect();
  });

  it("creates, then grows and re-configures an existing topic; a second run changes nothing", async () => {
    await syncTopics(admin, [topic(2, 3_600_000, 1_048_576)]);
    expect(await partitions()).toBe(2);
    expect(await configs()).toEqual({ "retention.ms": "3600000", "max.message.bytes": "1048576" });
    await syncTopics(admin, [topic(3, 7_200_000, 2_097_152)]);
    expect(await partitions()).toBe(3);
    expect(await configs()).toEqual({ "retention.ms": "7200000", "max.message.bytes": "2097152" });
    await syncTopics(admin, [topic(3, 7_200_000, 2_097_152)]);
    expect(await partitions()).toBe(3);
    expect(await configs()).toEqual({ "retention.ms": "7200000", "max.message.bytes": "2097152" });
  });
});

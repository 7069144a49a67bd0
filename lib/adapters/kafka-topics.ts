import kafkajs, { type Admin } from "kafkajs";

// kafkajs is CommonJS, and Node's ESM loader does not see ConfigResourceTypes as a named export
// (vitest does): taken from the default export.
const { ConfigResourceTypes } = kafkajs;

/** A topic as the topology declares it. */
export interface TopicSettings {
  readonly name: string;
  readonly partitions: number;
  readonly retentionMs: number;
  readonly maxMessageBytes?: number;
}

/**
 * Brings the cluster's topics to the topology: creates missing topics, adds partitions (Kafka
 * cannot remove any), and sets `retention.ms` / `max.message.bytes` on existing topics whose
 * values differ, so a changed topology reaches a running cluster (MSK Serverless lets both be
 * altered). Used by the topics custom resource in AWS and by the local bootstrap. kafkajs only has the non-incremental AlterConfigs, which resets a topic's other
 * dynamic settings to their defaults: these two are the only ones Tidemark sets.
 */
export async function syncTopics(admin: Admin, topics: readonly TopicSettings[]): Promise<void> {
  const configEntries = (t: TopicSettings) => [
    { name: "retention.ms", value: String(t.retentionMs) },
    ...(t.maxMessageBytes !== undefined
      ? [{ name: "max.message.bytes", value: String(t.maxMessageBytes) }]
      : []),
  ];
  const existing = new Set(await admin.listTopics());
  const missing = topics.filter((t) => !existing.has(t.name));
  if (missing.length > 0) {
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((t) => ({
        topic: t.name,
        numPartitions: t.partitions,
        configEntries: configEntries(t),
      })),
    });
  }
  const present = topics.filter((t) => existing.has(t.name));
  if (present.length === 0) return;
  const metadata = await admin.fetchTopicMetadata({ topics: present.map((t) => t.name) });
  const grow = metadata.topics
    .map((m) => ({ m, want: present.find((t) => t.name === m.name)?.partitions ?? 0 }))
    .filter(({ m, want }) => want > m.partitions.length)
    .map(({ m, want }) => ({ topic: m.name, count: want }));
  if (grow.length > 0) await admin.createPartitions({ topicPartitions: grow });
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: present.map((t) => ({
      type: ConfigResourceTypes.TOPIC,
      name: t.name,
      configNames: ["retention.ms", "max.message.bytes"],
    })),
  });
  const changed = present.filter((t) => {
    const current = described.resources.find((r) => r.resourceName === t.name)?.configEntries ?? [];
    return configEntries(t).some(
      (e) => current.find((c) => c.configName === e.name)?.configValue !== e.value,
    );
  });
  if (changed.length > 0) {
    await admin.alterConfigs({
      validateOnly: false,
      resources: changed.map((t) => ({
        type: ConfigResourceTypes.TOPIC,
        name: t.name,
        configEntries: configEntries(t),
      })),
    });
  }
}

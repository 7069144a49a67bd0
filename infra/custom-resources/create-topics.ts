import type { CloudFormationCustomResourceEvent } from "aws-lambda";
import { createKafka } from "../../lib/adapters/kafka.ts";

/**
 * Custom resource: creates the Kafka topics the topology declares on MSK Serverless (IAM auth),
 * idempotently. Topics are kept on delete: their data outlives a stack update gone wrong, and
 * the cluster's own deletion removes them.
 */
interface TopicProperty {
  Name: string;
  Partitions: string;
  RetentionMs: string;
  MaxMessageBytes?: string;
}

export const handler = async (event: CloudFormationCustomResourceEvent) => {
  const physicalResourceId = "kafka-topics";
  if (event.RequestType === "Delete") return { PhysicalResourceId: physicalResourceId };
  const props = event.ResourceProperties as unknown as { ClusterArn: string; Topics: TopicProperty[] };
  const kafka = await createKafka({
    KAFKA_AUTH: "iam",
    KAFKA_CLUSTER_ARN: props.ClusterArn,
    AWS_REGION: process.env.AWS_REGION ?? "us-east-1",
    KAFKA_CLIENT_ID: "tidemark-topics",
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = props.Topics.filter((t) => !existing.has(t.Name));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((t) => ({
          topic: t.Name,
          numPartitions: Number(t.Partitions),
          configEntries: [
            { name: "retention.ms", value: t.RetentionMs },
            ...(t.MaxMessageBytes ? [{ name: "max.message.bytes", value: t.MaxMessageBytes }] : []),
          ],
        })),
      });
    }
    const partitionsToAdd = props.Topics.filter((t) => existing.has(t.Name));
    if (partitionsToAdd.length > 0) {
      const metadata = await admin.fetchTopicMetadata({ topics: partitionsToAdd.map((t) => t.Name) });
      const grow = metadata.topics
        .map((m) => ({ m, want: Number(partitionsToAdd.find((t) => t.Name === m.name)?.Partitions ?? 0) }))
        .filter(({ m, want }) => want > m.partitions.length)
        .map(({ m, want }) => ({ topic: m.name, count: want }));
      if (grow.length > 0) await admin.createPartitions({ topicPartitions: grow });
    }
  } finally {
    await admin.disconnect();
  }
  return {
    PhysicalResourceId: physicalResourceId,
    Data: { Topics: props.Topics.map((t) => t.Name).join(",") },
  };
};

import type { CloudFormationCustomResourceEvent } from "aws-lambda";
import { createKafka } from "../../lib/adapters/kafka.ts";
import { syncTopics } from "../../lib/adapters/kafka-topics.ts";

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
    await syncTopics(
      admin,
      props.Topics.map((t) => ({
        name: t.Name,
        partitions: Number(t.Partitions),
        retentionMs: Number(t.RetentionMs),
        ...(t.MaxMessageBytes ? { maxMessageBytes: Number(t.MaxMessageBytes) } : {}),
      })),
    );
  } finally {
    await admin.disconnect();
  }
  return {
    PhysicalResourceId: physicalResourceId,
    Data: { Topics: props.Topics.map((t) => t.Name).join(",") },
  };
};

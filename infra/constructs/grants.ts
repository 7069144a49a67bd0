import type { ITable } from "aws-cdk-lib/aws-dynamodb";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { Function as LambdaFunction } from "aws-cdk-lib/aws-lambda";
import type { IBucket } from "aws-cdk-lib/aws-s3";
import { type TableSpec, type TopicSpec, topicEnvVar, type topics } from "../../lib/topology.ts";
import type { KafkaCluster } from "./kafka-cluster.ts";

/**
 * Access and configuration go together: each helper grants the least a function needs on a
 * resource and sets the environment variable through which the function finds it, so a
 * function can never be configured for something it may not touch (or the reverse).
 */
export function useTable(
  fn: LambdaFunction,
  table: ITable,
  spec: TableSpec,
  access: "read" | "readWrite",
): void {
  if (access === "read") table.grantReadData(fn);
  else table.grantReadWriteData(fn);
  fn.addEnvironment(spec.envVar, table.tableName);
}

export function useBucket(
  fn: LambdaFunction,
  bucket: IBucket,
  envVar: string,
  access: "read" | "readWrite",
  prefix = "*",
): void {
  if (access === "read") bucket.grantRead(fn, prefix);
  else bucket.grantReadWrite(fn, prefix);
  fn.addEnvironment(envVar, bucket.bucketName);
}

/** Connect to the cluster and resolve its bootstrap brokers (every Kafka client needs this). */
export function useKafkaCluster(fn: LambdaFunction, cluster: KafkaCluster): void {
  fn.addToRolePolicy(
    new PolicyStatement({
      actions: ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"],
      resources: [cluster.clusterArn],
    }),
  );
  fn.addToRolePolicy(
    new PolicyStatement({ actions: ["kafka:GetBootstrapBrokers"], resources: [cluster.clusterArn] }),
  );
  fn.addEnvironment("KAFKA_AUTH", "iam");
  fn.addEnvironment("KAFKA_CLUSTER_ARN", cluster.clusterArn);
}

/** Produce to one topic. */
export function produceTo(
  fn: LambdaFunction,
  cluster: KafkaCluster,
  key: keyof typeof topics,
  topic: TopicSpec,
): void {
  useKafkaCluster(fn, cluster);
  fn.addToRolePolicy(
    new PolicyStatement({
      actions: ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
      resources: [cluster.topicArn(topic.name)],
    }),
  );
  fn.addEnvironment(topicEnvVar(key), topic.name);
}

/** What an MSK event-source mapping's poller needs, through the function's role, for one topic and group. */
export function consumeFrom(
  fn: LambdaFunction,
  cluster: KafkaCluster,
  topic: TopicSpec,
  group: string,
): void {
  useKafkaCluster(fn, cluster);
  fn.addToRolePolicy(
    new PolicyStatement({
      actions: [
        "kafka-cluster:DescribeTopic",
        "kafka-cluster:ReadData",
        "kafka-cluster:DescribeTopicDynamicConfiguration",
      ],
      resources: [cluster.topicArn(topic.name)],
    }),
  );
  fn.addToRolePolicy(
    new PolicyStatement({
      actions: ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
      resources: [cluster.groupArn(group)],
    }),
  );
  fn.addToRolePolicy(
    new PolicyStatement({
      actions: ["kafka:DescribeClusterV2", "kafka:DescribeCluster"],
      resources: [cluster.clusterArn],
    }),
  );
}

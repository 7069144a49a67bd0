import type { WebSocketStage } from "aws-cdk-lib/aws-apigatewayv2";
import type { ITable } from "aws-cdk-lib/aws-dynamodb";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { Function as LambdaFunction } from "aws-cdk-lib/aws-lambda";
import type { IBucket } from "aws-cdk-lib/aws-s3";
import { NagSuppressions } from "cdk-nag";
import {
  type TableSpec,
  type TopicSpec,
  topicEnvVar,
  type topics,
  webSocketApi,
} from "../../lib/topology.ts";
import type { KafkaAccess } from "./kafka-cluster.ts";

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
  suppressBucketWildcards(fn);
}

/**
 * Check that a table is there (DescribeTable) without touching an item: what a health probe on a
 * public route needs, and no more.
 */
export function probeTable(fn: LambdaFunction, table: ITable, spec: TableSpec): void {
  fn.addToRolePolicy(
    new PolicyStatement({ actions: ["dynamodb:DescribeTable"], resources: [table.tableArn] }),
  );
  fn.addEnvironment(spec.envVar, table.tableName);
}

/** Check that a bucket is there (HeadBucket needs s3:ListBucket) without reading an object. */
export function probeBucket(fn: LambdaFunction, bucket: IBucket, envVar: string): void {
  fn.addToRolePolicy(new PolicyStatement({ actions: ["s3:ListBucket"], resources: [bucket.bucketArn] }));
  fn.addEnvironment(envVar, bucket.bucketName);
}

/**
 * CDK's bucket grants use action groups (s3:GetObject*, s3:List*, …) on `<bucket>/<prefix>*`:
 * object keys are not known in advance, and the groups are the object-level actions only.
 */
export function suppressBucketWildcards(fn: LambdaFunction): void {
  if (!fn.role) return;
  NagSuppressions.addResourceSuppressions(
    fn.role,
    [
      {
        id: "AwsSolutions-IAM5",
        reason: "Bucket grants: object-level action groups on keys under the granted prefix only.",
        appliesTo: [
          "Action::s3:GetObject*",
          "Action::s3:GetBucket*",
          "Action::s3:List*",
          "Action::s3:DeleteObject*",
          "Action::s3:Abort*",
          { regex: "/^Resource::<[A-Za-z0-9]+Bucket[A-Za-z0-9]*\\.Arn>\\/.*\\*$/" },
        ],
      },
    ],
    true,
  );
}

/** Connect to the Kafka cluster (every Kafka client needs this). */
export function useKafkaCluster(fn: LambdaFunction, kafka: KafkaAccess): void {
  kafka.grantConnect(fn);
}

/** Produce to one topic. */
export function produceTo(
  fn: LambdaFunction,
  kafka: KafkaAccess,
  key: keyof typeof topics,
  topic: TopicSpec,
): void {
  kafka.grantProduce(fn, topic.name);
  fn.addEnvironment(topicEnvVar(key), topic.name);
}

/** Read how many records one topic holds (its offsets), not the records. */
export function observeTopic(
  fn: LambdaFunction,
  kafka: KafkaAccess,
  key: keyof typeof topics,
  topic: TopicSpec,
): void {
  kafka.grantDescribe(fn, topic.name);
  fn.addEnvironment(topicEnvVar(key), topic.name);
}

/** What an event-source mapping's poller needs, through the function's role, for one topic and group. */
export function consumeFrom(fn: LambdaFunction, kafka: KafkaAccess, topic: TopicSpec, group: string): void {
  kafka.grantConsume(fn, topic.name, group);
}

/** Post to (and delete) the live-stats API's WebSocket connections through its `@connections` endpoint. */
export function manageConnections(fn: LambdaFunction, stage: WebSocketStage): void {
  stage.grantManagementApiAccess(fn);
  fn.addEnvironment(webSocketApi.managementEndpointEnvVar, stage.callbackUrl);
}

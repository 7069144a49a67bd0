import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { AwsEndpointsEnv } from "../config.ts";

/** DynamoDB document client; `DYNAMODB_ENDPOINT` points it at DynamoDB Local. */
export function createDynamoDb(env: AwsEndpointsEnv): DynamoDBDocumentClient {
  const client = new DynamoDBClient({
    region: env.AWS_REGION,
    ...(env.DYNAMODB_ENDPOINT ? { endpoint: env.DYNAMODB_ENDPOINT } : {}),
    maxAttempts: 5,
  });
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}

/** S3 client; `S3_ENDPOINT` points it at the local S3 server (path-style addressing). */
export function createS3(env: AwsEndpointsEnv): S3Client {
  return new S3Client({
    region: env.AWS_REGION,
    ...(env.S3_ENDPOINT ? { endpoint: env.S3_ENDPOINT, forcePathStyle: true } : {}),
  });
}

import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { AwsEndpointsEnv } from "../config.ts";
import { meterDynamoDb } from "./usage-meter.ts";

/**
 * DynamoDB document client; `DYNAMODB_ENDPOINT` points it at DynamoDB Local. Metered
 * (consumed capacity and requests, `usage-meter.ts`) so costs are measured, not estimated.
 */
export function createDynamoDb(env: AwsEndpointsEnv): DynamoDBDocumentClient {
  const client = new DynamoDBClient({
    region: env.AWS_REGION,
    ...(env.DYNAMODB_ENDPOINT ? { endpoint: env.DYNAMODB_ENDPOINT } : {}),
    maxAttempts: 5,
  });
  meterDynamoDb(client);
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}

import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { AwsEndpointsEnv } from "../config.ts";
import { withoutSdkLogging } from "./sdk-logging.ts";
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
    base64Decoder: decodeBase64,
  });
  meterDynamoDb(withoutSdkLogging(client));
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}

/**
 * Binary attributes arrive base64-encoded in DynamoDB's JSON. The SDK's decoder first matches the
 * whole string against a regular expression, which for the aggregates' blobs (hundreds of KB a
 * GET /stats) cost more than decoding them: 3 % of the API's CPU in the bench's paced phase.
 * DynamoDB's responses are well-formed; Buffer's decoder alone.
 */
export function decodeBase64(input: string): Uint8Array {
  const bytes = Buffer.from(input, "base64");
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

import { Readable } from "node:stream";
import { createDynamoDb, createDynamoDbRaw } from "../../lib/adapters/dynamodb-client.ts";

/** A request as the SDK hands it to its HTTP handler. */
export interface SentRequest {
  readonly target: string;
  readonly body: string;
}

/**
 * The project's two DynamoDB clients (`createDynamoDb`, `createDynamoDbRaw`) against a request
 * handler that plays DynamoDB: each request is recorded, and `answer` gives its status and JSON
 * body (the n-th request, from 0). No retries, test credentials, an endpoint nobody listens on.
 */
export function playedDynamoDb(answer: (request: SentRequest, n: number) => readonly [number, unknown]) {
  const sent: SentRequest[] = [];
  const requestHandler = {
    handle: async (request: { headers: Record<string, string>; body?: unknown }) => {
      const recorded = { target: request.headers["x-amz-target"] ?? "", body: String(request.body) };
      sent.push(recorded);
      const [statusCode, payload] = answer(recorded, sent.length - 1);
      return {
        response: {
          statusCode,
          reason: "",
          headers: { "content-type": "application/x-amz-json-1.0" },
          body: Readable.from([Buffer.from(JSON.stringify(payload))]),
        },
      };
    },
  };
  const config = {
    requestHandler,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 1,
  };
  const env = { AWS_REGION: "us-east-1", DYNAMODB_ENDPOINT: "http://localhost:1" };
  return { sent, db: createDynamoDb(env, config), puts: createDynamoDbRaw(env, config) };
}

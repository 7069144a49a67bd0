import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { inject } from "vitest";
import { startServices } from "../../local/services/index.ts";
import { type LocalStack, type LocalStackOptions, startLocalStack } from "../../local/stack.ts";

/** Points this test file at the services the global setup started. */
export function useSharedServices(): void {
  const endpoints = inject("endpoints");
  process.env.TIDEMARK_KAFKA_BROKERS = endpoints.kafkaBrokers.join(",");
  process.env.TIDEMARK_DYNAMODB_ENDPOINT = endpoints.dynamodbEndpoint;
  process.env.TIDEMARK_S3_ENDPOINT = endpoints.s3Endpoint;
}

/**
 * A new table on the shared DynamoDB Local keyed like the aggregates table (`pk`, `sk`), and a
 * document client for it.
 */
export async function scratchTable(prefix: string): Promise<{ db: DynamoDBDocumentClient; table: string }> {
  const table = `${prefix}_${Date.now()}`;
  const raw = new DynamoDBClient({
    endpoint: inject("endpoints").dynamodbEndpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });
  await raw.send(
    new CreateTableCommand({
      TableName: table,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: [
        { AttributeName: "pk", AttributeType: "S" },
        { AttributeName: "sk", AttributeType: "S" },
      ],
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
    }),
  );
  return { db: DynamoDBDocumentClient.from(raw), table };
}

/** The whole local pipeline (API and WebSocket server on free ports) on the shared services. */
export async function startPipeline(
  options: Pick<LocalStackOptions, "mappings" | "apiKey" | "log"> = {},
): Promise<LocalStack> {
  useSharedServices();
  const services = await startServices();
  return startLocalStack({ services, port: 0, webSocketPort: 0, mappings: "inline", ...options });
}

/** A live-stats WebSocket URL with the API key in `?key=`, as browsers must send it. */
export function liveUrlWithKey(liveUrl: string, key: string): string {
  const url = new URL(liveUrl);
  url.searchParams.set("key", key);
  return url.href;
}

export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  { timeoutMs = 10_000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: unknown; headers: Headers }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json(), headers: res.headers };
}

export async function getJson(url: string): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url);
  return { status: res.status, json: await res.json() };
}

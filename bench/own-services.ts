import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import { Kafka, logLevel } from "kafkajs";
import { localS3Options } from "../lib/adapters/s3-client.ts";
import { bootstrap, localNames } from "../local/bootstrap.ts";
import { startServices } from "../local/services/index.ts";
import { functionEnvironment } from "../local/stack.ts";

/**
 * Runs `body` against local services of its own: started on a temporary data directory, with the
 * topology's topics, tables and buckets (named `<prefix>-…`) and the functions' environment set in
 * this process, then stopped and removed. A handler bench's events must not reach `npm start`'s
 * topics and stats; its services use `npm start`'s ports, so stop that first.
 */
export async function withOwnServices(prefix: string, body: () => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), `tidemark-${prefix}-`));
  const services = await startServices({ dataDir, fresh: true, log: () => {} });
  try {
    const names = localNames(prefix);
    const env = functionEnvironment(services.endpoints, names);
    Object.assign(process.env, env);
    const dynamodb = new DynamoDBClient({
      region: env.AWS_REGION,
      endpoint: services.endpoints.dynamodbEndpoint,
    });
    const s3 = new S3Client({ region: env.AWS_REGION, ...localS3Options(services.endpoints.s3Endpoint) });
    const kafka = new Kafka({ brokers: services.endpoints.kafkaBrokers, logLevel: logLevel.NOTHING });
    await bootstrap({ kafka, dynamodb, s3, names });
    dynamodb.destroy();
    s3.destroy();
    await body();
  } finally {
    await services.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startServices } from "../../local/services/index.ts";

/**
 * Starts the real local services once for the whole integration run (Kafka, DynamoDB Local,
 * the S3 server) on fresh data, and stops them afterwards, also when tests fail. The data is a
 * temporary directory of the run's own, removed afterwards: `.cache/data` is `npm start`'s.
 */
export default async function setup(project: TestProject) {
  const dataDir = mkdtempSync(join(tmpdir(), "tidemark-test-"));
  const services = await startServices({
    dataDir,
    fresh: true,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  project.provide("endpoints", services.endpoints);
  return async () => {
    await services.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    endpoints: {
      kafkaBrokers: string[];
      dynamodbEndpoint: string;
      s3Endpoint: string;
    };
  }
}

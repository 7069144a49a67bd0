import type { TestProject } from "vitest/node";
import { startServices } from "../../local/services/index.ts";

/**
 * Starts the real local services once for the whole integration run (Kafka, DynamoDB Local,
 * the S3 server) on fresh data, and stops them afterwards, also when tests fail.
 */
export default async function setup(project: TestProject) {
  const services = await startServices({ fresh: true, log: (line) => process.stderr.write(`${line}\n`) });
  project.provide("endpoints", services.endpoints);
  return async () => {
    await services.stop();
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

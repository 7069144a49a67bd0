import { S3Client } from "@aws-sdk/client-s3";
import type { AwsEndpointsEnv } from "../config.ts";
import { meterS3 } from "./usage-meter.ts";

/**
 * S3 client; `S3_ENDPOINT` points it at the local S3 server (path-style addressing). Metered
 * (requests per operation, `usage-meter.ts`) so S3 request costs are measured.
 */
export function createS3(env: AwsEndpointsEnv): S3Client {
  const client = new S3Client({
    region: env.AWS_REGION,
    ...(env.S3_ENDPOINT ? { endpoint: env.S3_ENDPOINT, forcePathStyle: true } : {}),
  });
  meterS3(client);
  return client;
}

import { S3Client } from "@aws-sdk/client-s3";
import type { AwsEndpointsEnv } from "../config.ts";

/** S3 client; `S3_ENDPOINT` points it at the local S3 server (path-style addressing). */
export function createS3(env: AwsEndpointsEnv): S3Client {
  return new S3Client({
    region: env.AWS_REGION,
    ...(env.S3_ENDPOINT ? { endpoint: env.S3_ENDPOINT, forcePathStyle: true } : {}),
  });
}

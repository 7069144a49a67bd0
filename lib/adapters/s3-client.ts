import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import type { AwsEndpointsEnv } from "../config.ts";
import { withoutSdkLogging } from "./sdk-logging.ts";
import { meterS3 } from "./usage-meter.ts";

/**
 * S3 client; `S3_ENDPOINT` points it at the local S3 server (path-style addressing). Metered
 * (requests per operation, `usage-meter.ts`) so S3 request costs are measured.
 */
export function createS3(env: AwsEndpointsEnv): S3Client {
  const client = new S3Client({
    region: env.AWS_REGION,
    ...(env.S3_ENDPOINT ? localS3Options(env.S3_ENDPOINT) : {}),
  });
  meterS3(withoutSdkLogging(client));
  return client;
}

/**
 * How a client reaches an S3-API server on this machine: path-style addressing, and checksums
 * only where an operation requires them. The SDK's default (a CRC32 trailer on every upload,
 * `aws-chunked` encoding) is not implemented by S3Proxy, the local server; AWS keeps the default.
 */
export function localS3Options(
  endpoint: string,
): Pick<
  S3ClientConfig,
  "endpoint" | "forcePathStyle" | "requestChecksumCalculation" | "responseChecksumValidation"
> {
  return {
    endpoint,
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  };
}

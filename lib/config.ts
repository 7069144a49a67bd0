import { z } from "zod";

/**
 * Configuration comes from the environment, is read once per module (at cold start) and fails
 * fast with every missing or malformed variable named, so a misconfigured function dies at init
 * instead of answering 500 on every request.
 */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export function readConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "(env)"}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  }
  return result.data;
}

/** Kafka connection settings shared by every function that talks to Kafka. */
export const kafkaEnv = z.object({
  /** `none` locally (PLAINTEXT), `iam` for MSK (TLS + SASL OAUTHBEARER signed with IAM). */
  KAFKA_AUTH: z.enum(["none", "iam"]).default("none"),
  /** Comma-separated bootstrap brokers; required unless KAFKA_CLUSTER_ARN is set. */
  KAFKA_BROKERS: z.string().min(1).optional(),
  /** MSK cluster ARN: bootstrap brokers are resolved from it once per cold start. */
  KAFKA_CLUSTER_ARN: z.string().startsWith("arn:").optional(),
  AWS_REGION: z.string().min(1).default("us-east-1"),
  KAFKA_CLIENT_ID: z.string().default("tidemark"),
});
export type KafkaEnv = z.infer<typeof kafkaEnv>;

/** What a function that produces high volumes (ingest) adds to `kafkaEnv`. */
export const kafkaProducerEnv = z.object({
  /**
   * Compression of produced record batches: `gzip` on MSK Serverless, whose ingress quota is
   * 5 MB/s per partition, counted on the bytes sent (infra sets it); `none` locally, where it
   * would only cost CPU.
   */
  KAFKA_COMPRESSION: z.enum(["none", "gzip"]).default("none"),
});

/** Optional endpoint overrides: set locally to reach DynamoDB Local / S3Proxy; unset in AWS. */
export const awsEndpointsEnv = z.object({
  AWS_REGION: z.string().min(1).default("us-east-1"),
  DYNAMODB_ENDPOINT: z.url().optional(),
  S3_ENDPOINT: z.url().optional(),
});
export type AwsEndpointsEnv = z.infer<typeof awsEndpointsEnv>;

/** Whole days an event may be old when ingested (also the archive's retention horizon). */
export const retentionEnv = z.object({
  RETENTION_DAYS: z.coerce.number().int().positive().default(365),
});

import { Kafka, type KafkaConfig, logLevel } from "kafkajs";
import type { KafkaEnv } from "../config.ts";

/**
 * The one Kafka client factory. Locally: PLAINTEXT to the brokers in KAFKA_BROKERS. In AWS:
 * TLS + SASL OAUTHBEARER with a token signed by the function's IAM role, bootstrap brokers
 * resolved once from the MSK cluster ARN.
 */
export async function createKafka(env: KafkaEnv, overrides: Partial<KafkaConfig> = {}): Promise<Kafka> {
  const brokers = await resolveBrokers(env);
  const base: KafkaConfig = {
    clientId: env.KAFKA_CLIENT_ID,
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    ...overrides,
  };
  if (env.KAFKA_AUTH === "iam") {
    // Loaded only for MSK: keeps the signer and the Kafka control-plane client out of module init.
    const { generateAuthToken } = await import("aws-msk-iam-sasl-signer-js");
    return new Kafka({
      ...base,
      ssl: true,
      sasl: {
        mechanism: "oauthbearer",
        oauthBearerProvider: async () => {
          const { token } = await generateAuthToken({ region: env.AWS_REGION });
          return { value: token };
        },
      },
    });
  }
  return new Kafka(base);
}

async function resolveBrokers(env: KafkaEnv): Promise<string[]> {
  if (env.KAFKA_BROKERS) return env.KAFKA_BROKERS.split(",").map((b) => b.trim());
  if (!env.KAFKA_CLUSTER_ARN) throw new Error("KAFKA_BROKERS or KAFKA_CLUSTER_ARN must be set");
  const { GetBootstrapBrokersCommand, KafkaClient } = await import("@aws-sdk/client-kafka");
  const client = new KafkaClient({ region: env.AWS_REGION });
  const out = await client.send(new GetBootstrapBrokersCommand({ ClusterArn: env.KAFKA_CLUSTER_ARN }));
  const list = env.KAFKA_AUTH === "iam" ? out.BootstrapBrokerStringSaslIam : out.BootstrapBrokerStringTls;
  if (!list)
    throw new Error(`MSK cluster ${env.KAFKA_CLUSTER_ARN} has no bootstrap brokers for ${env.KAFKA_AUTH}`);
  return list.split(",");
}

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
    // Credentials come from the SDK client's default provider chain (the function's role).
    const [{ mskIamToken }, client] = await Promise.all([
      import("./msk-iam-token.ts"),
      kafkaControlPlane(env),
    ]);
    return new Kafka({
      ...base,
      ssl: true,
      sasl: {
        mechanism: "oauthbearer",
        oauthBearerProvider: async () => {
          const credentials = await client.config.credentials();
          const { token } = await mskIamToken({ region: env.AWS_REGION, credentials, userAgent: "tidemark" });
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
  const { GetBootstrapBrokersCommand } = await import("@aws-sdk/client-kafka");
  const client = await kafkaControlPlane(env);
  const out = await client.send(new GetBootstrapBrokersCommand({ ClusterArn: env.KAFKA_CLUSTER_ARN }));
  const list = env.KAFKA_AUTH === "iam" ? out.BootstrapBrokerStringSaslIam : out.BootstrapBrokerStringTls;
  if (!list)
    throw new Error(`MSK cluster ${env.KAFKA_CLUSTER_ARN} has no bootstrap brokers for ${env.KAFKA_AUTH}`);
  return list.split(",");
}

let controlPlane: Promise<import("@aws-sdk/client-kafka").KafkaClient> | undefined;

/** The MSK control-plane client, once per module (bootstrap brokers, and credentials for the token). */
function kafkaControlPlane(env: KafkaEnv) {
  controlPlane ??= import("@aws-sdk/client-kafka").then(
    ({ KafkaClient }) => new KafkaClient({ region: env.AWS_REGION }),
  );
  return controlPlane;
}

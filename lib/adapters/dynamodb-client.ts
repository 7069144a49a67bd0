import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { marshallOptions } from "@aws-sdk/util-dynamodb";
import type { AwsEndpointsEnv } from "../config.ts";
import { withoutSdkLogging } from "./sdk-logging.ts";
import { meterDynamoDb } from "./usage-meter.ts";

/**
 * How the document client marshals items, and `createDynamoDbRaw`' callers with `marshall` (a
 * whole item: its attributes are converted as the document client converts each). Frozen: the
 * document client writes its defaults into the options it is given.
 */
export const MARSHALL_OPTIONS: Readonly<marshallOptions> = Object.freeze({ removeUndefinedValues: true });

/** The low-level client both factories wrap: metered, no SDK logging. */
function baseClient(env: AwsEndpointsEnv, config: DynamoDBClientConfig): DynamoDBClient {
  const client = new DynamoDBClient({
    region: env.AWS_REGION,
    ...(env.DYNAMODB_ENDPOINT ? { endpoint: env.DYNAMODB_ENDPOINT } : {}),
    maxAttempts: 5,
    base64Decoder: decodeBase64,
    ...config,
  });
  meterDynamoDb(withoutSdkLogging(client));
  return client;
}

/**
 * DynamoDB document client; `DYNAMODB_ENDPOINT` points it at DynamoDB Local. Metered
 * (consumed capacity and requests, `usage-meter.ts`) so costs are measured, not estimated.
 * `config`: tests only (a request handler that plays DynamoDB).
 */
export function createDynamoDb(
  env: AwsEndpointsEnv,
  config: DynamoDBClientConfig = {},
): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(baseClient(env, config), { marshallOptions: { ...MARSHALL_OPTIONS } });
}

/**
 * A low-level client for the window store's hot requests (the aggregator's conditional puts: its
 * fence twice a batch, each delta it extends; every window Query of GET /stats, the stats
 * publisher and compactions), whose callers marshal items themselves (`MARSHALL_OPTIONS`: the same request as
 * the document client's). The SDK resolves a command's middleware stack on every send, and the
 * document client wraps each command in a second one with a stack of its own; this client caches
 * the resolved stack per command class (`cacheMiddleware`, which the document client does not
 * support: its cached handler would send the first command again). A PutItem then costs about
 * 0.45 ms less CPU on the bench machine (doc/raw+cache, 300 puts, A/B/A/B), and the aggregator
 * sends four or five a batch whatever the batch's size.
 */
export function createDynamoDbRaw(env: AwsEndpointsEnv, config: DynamoDBClientConfig = {}): DynamoDBClient {
  return baseClient(env, { ...config, cacheMiddleware: true });
}

/**
 * Binary attributes arrive base64-encoded in DynamoDB's JSON. The SDK's decoder first matches the
 * whole string against a regular expression, which for the aggregates' blobs (hundreds of KB a
 * GET /stats) cost more than decoding them: 3 % of the API's CPU in the bench's paced phase.
 * DynamoDB's responses are well-formed; Buffer's decoder alone.
 */
export function decodeBase64(input: string): Uint8Array {
  const bytes = Buffer.from(input, "base64");
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

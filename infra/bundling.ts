/**
 * What a Lambda bundle may leave out, by explicit name (no `@aws-sdk/*` wildcard): everything
 * else is bundled, so nothing is loaded at first connection that the runtime might not have.
 *
 * - `runtimeProvided`: AWS SDK v3 clients (and the DynamoDB document client built on one) that
 *   the Lambda Node.js runtimes include (Lambda docs, "Building Lambda functions with Node.js":
 *   the runtimes include the AWS SDK for JavaScript v3). Packages outside the SDK's clients, such
 *   as `@aws-sdk/credential-providers` (which AWS's MSK IAM signer loads), carry no such promise.
 * - `localOnly`: loaded only by the local query engine, never on a Lambda code path.
 */
export const bundling = {
  runtimeProvided: [
    "@aws-sdk/client-apigatewaymanagementapi",
    "@aws-sdk/client-athena",
    "@aws-sdk/client-dynamodb",
    "@aws-sdk/client-kafka",
    "@aws-sdk/client-s3",
    "@aws-sdk/lib-dynamodb",
    "@aws-sdk/util-dynamodb",
  ],
  localOnly: ["@duckdb/node-api"],
} as const;

export const bundleExternals: string[] = [...bundling.runtimeProvided, ...bundling.localOnly];

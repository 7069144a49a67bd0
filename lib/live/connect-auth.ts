import { createHash } from "node:crypto";
import type { APIGatewayAuthorizerResult } from "aws-lambda";
import { z } from "zod";
import { webSocketApi } from "../topology.ts";

/**
 * Who may open a live-stats WebSocket: a client that presents an API key of the REST API's usage
 * plan in `?key=` (browsers cannot set `x-api-key` on a WebSocket). The authorizer only screens the
 * key and hands it back as `usageIdentifierKey`; API Gateway then checks it against the usage plan
 * exactly as it checks `x-api-key` on `/stats` (known, enabled, within quota), so one key works
 * on both APIs, and disabling it closes both. No key material is read or stored by the function.
 */

/** API Gateway's longest API key value; longer ones can never match, so they are denied here. */
export const MAX_KEY_LENGTH = 128;

/** Printable ASCII without spaces: what an API key value is made of. */
const KEY_PATTERN = /^[\x21-\x7e]+$/;

export type ConnectDecision =
  /** No key at all: API Gateway's 401 (its identity-source check already gives it in AWS). */
  | { readonly outcome: "unauthorized" }
  /** A key that cannot be an API key: 403 without asking the usage plan. */
  | { readonly outcome: "deny"; readonly principalId: string; readonly reason: string }
  /** A key to check against the usage plan (API Gateway does, after the authorizer). */
  | { readonly outcome: "allow"; readonly principalId: string; readonly key: string };

export function decideConnect(
  query: Readonly<Record<string, string | undefined>> | null | undefined,
): ConnectDecision {
  const key = query?.[webSocketApi.connectAuthorizer.keyParameter];
  if (key === undefined || key === "") return { outcome: "unauthorized" };
  const principalId = fingerprint(key);
  if (key.length > MAX_KEY_LENGTH)
    return { outcome: "deny", principalId, reason: `the key is longer than ${MAX_KEY_LENGTH} characters` };
  if (!KEY_PATTERN.test(key))
    return { outcome: "deny", principalId, reason: "the key has characters an API key never has" };
  return { outcome: "allow", principalId, key };
}

/**
 * The authorizer's answer for an allow or deny decision: an IAM policy on the `$connect` method
 * and, when allowed, the key for API Gateway's usage-plan check. `context` reaches every route's
 * `requestContext.authorizer` for the connection's life; it names the key by fingerprint only.
 */
export function authorizerResult(
  decision: Exclude<ConnectDecision, { outcome: "unauthorized" }>,
  methodArn: string,
): APIGatewayAuthorizerResult {
  const allow = decision.outcome === "allow";
  return {
    principalId: decision.principalId,
    policyDocument: {
      Version: "2012-10-17",
      Statement: [{ Action: "execute-api:Invoke", Effect: allow ? "Allow" : "Deny", Resource: methodArn }],
    },
    ...(allow ? { usageIdentifierKey: decision.key } : {}),
    context: { credential: "api_key", key_fingerprint: decision.principalId },
  };
}

/** A name for a key that says which key it was without being usable as one (logs, context). */
export function fingerprint(key: string): string {
  return `key-${createHash("sha256").update(key).digest("hex").slice(0, 16)}`;
}

/** The part of API Gateway's WebSocket REQUEST authorizer event the decision reads. */
export const ConnectAuthorizerEventSchema = z.object({
  type: z.literal("REQUEST"),
  methodArn: z.string().min(1),
  queryStringParameters: z.record(z.string(), z.string().optional()).nullish(),
});

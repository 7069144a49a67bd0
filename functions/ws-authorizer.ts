import type { APIGatewayAuthorizerResult } from "aws-lambda";
import { authorizerResult, ConnectAuthorizerEventSchema, decideConnect } from "../lib/live/connect-auth.ts";

/**
 * Live-stats WebSocket `$connect` authorizer (Lambda REQUEST authorizer). The decision is
 * `lib/live/connect-auth.ts`; API Gateway checks the key it returns against the usage plan.
 * Throwing `Unauthorized` is API Gateway's contract for a 401; any other failure is a 500.
 */
export const handler = async (event: unknown): Promise<APIGatewayAuthorizerResult> => {
  const parsed = ConnectAuthorizerEventSchema.safeParse(event);
  if (!parsed.success) throw new Error("not a REQUEST authorizer event");
  const decision = decideConnect(parsed.data.queryStringParameters);
  if (decision.outcome === "unauthorized") throw new Error("Unauthorized");
  return authorizerResult(decision, parsed.data.methodArn);
};

import { Logger } from "@aws-lambda-powertools/logger";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import { type ApiError, internal, payloadTooLarge, toErrorBody } from "../../lib/contract/errors.ts";
import { api, corsHeaders } from "../../lib/topology.ts";

/** One logger per function module (service name from POWERTOOLS_SERVICE_NAME). */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "tidemark" });

// With a Lambda proxy integration, API Gateway passes the function's headers through and adds
// no CORS headers of its own (API Gateway docs, "Enabling CORS for a REST API resource": for
// proxy integrations the backend must return Access-Control-Allow-Origin).
const jsonHeaders = { "content-type": "application/json", ...corsHeaders() } as const;

export function json(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): APIGatewayProxyResult {
  return { statusCode, headers: { ...jsonHeaders, ...headers }, body: JSON.stringify(body) };
}

export function errorResponse(error: ApiError, headers: Record<string, string> = {}): APIGatewayProxyResult {
  return json(error.status, toErrorBody(error), headers);
}

/** The request body as text, whether API Gateway passed it as text or base64. */
export function bodyText(event: APIGatewayProxyEvent): string | undefined {
  if (event.body == null) return undefined;
  return event.isBase64Encoded ? Buffer.from(event.body, "base64").toString("utf8") : event.body;
}

/** Query string parameters with undefined for absent ones. */
export function queryOf(event: APIGatewayProxyEvent): Record<string, string | undefined> {
  return { ...(event.queryStringParameters ?? {}) };
}

type ApiHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;

/**
 * Wraps an API handler: structured logs with the Lambda context, and any unexpected error turned
 * into the one error shape with 500 (logged with its stack, never sent to the client).
 */
export function apiHandler(fn: ApiHandler) {
  return middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
    .use(injectLambdaContext(logger))
    .handler(async (event, context) => {
      try {
        // The body limit of lib/topology.ts, checked here so that AWS and the local gateway
        // answer the same 413 (API Gateway itself would let up to 10 MB through).
        // A UTF-16 code unit is at most 3 bytes of UTF-8: a body of at most a third of the limit
        // in length is within it, and its bytes (a pass over up to 5 MB) are not counted.
        const body = bodyText(event);
        const max = api.payload.maxRequestBodyBytes;
        if (body !== undefined && body.length * 3 > max && Buffer.byteLength(body) > max) {
          return errorResponse(
            payloadTooLarge(`request exceeds the ${api.payload.maxRequestBodyBytes}-byte body limit`),
          );
        }
        return await fn(event, context);
      } catch (error) {
        logger.error("unhandled error", { error: error as Error });
        return errorResponse(internal());
      }
    });
}

import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { apiHandler, errorResponse, json } from "../../functions/shared/http.ts";
import { api } from "../../lib/topology.ts";

/**
 * With a Lambda proxy integration API Gateway adds no CORS headers to the function's response
 * (API Gateway docs, "Enabling CORS for a REST API resource"): the handlers must set them, on
 * errors too, or a browser hides the answer from the page.
 */
describe("handler responses", () => {
  const origin = api.cors.allowOrigins.join(",");

  it("carry CORS headers on success and on errors", () => {
    expect(json(200, {}).headers).toMatchObject({ "access-control-allow-origin": origin });
    expect(errorResponse({ status: 400, code: "bad_request", message: "no" }).headers).toMatchObject({
      "access-control-allow-origin": origin,
      "content-type": "application/json",
    });
  });

  it("carry CORS headers on an unexpected failure (500)", async () => {
    const handler = apiHandler(async () => {
      throw new Error("boom");
    });
    const result = await handler(
      {} as APIGatewayProxyEvent,
      {
        functionName: "t",
        awsRequestId: "r",
        getRemainingTimeInMillis: () => 1000,
      } as Context,
    );
    expect(result.statusCode).toBe(500);
    expect(result.headers).toMatchObject({ "access-control-allow-origin": origin });
  });
});

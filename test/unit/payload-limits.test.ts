import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiHandler, json } from "../../functions/shared/http.ts";
import { pageWithinBytes } from "../../lib/archive/events-sql.ts";
import { api } from "../../lib/topology.ts";
import { exceedsInvokeQuota, LocalApiGateway } from "../../local/api-gateway.ts";
import type { LocalFunction } from "../../local/lambda-runtime.ts";

/**
 * Lambda caps a synchronous invocation's request and response at 6 MB (Lambda quotas), below
 * API Gateway's 10 MB: the body limits of lib/topology.ts sit under it, and the same checks
 * answer locally and in AWS.
 */
const { lambdaInvokeBytes, maxRequestBodyBytes, maxResponseBodyBytes } = api.payload;
const context = { functionName: "t", awsRequestId: "r", getRemainingTimeInMillis: () => 1000 } as Context;

describe("payload limits", () => {
  it("count an invocation's payload as its JSON, escapes included", () => {
    // 1.1 M control characters: 1.1 MB of body, 6.6 MB once escaped into the event's JSON.
    expect(exceedsInvokeQuota({ body: "\u0001".repeat(1_100_000) })).toBe(true);
    expect(exceedsInvokeQuota({ body: "x".repeat(1_100_000) })).toBe(false);
    // Quotes double: 3.2 M of them pass the quota escaped, not raw.
    expect(exceedsInvokeQuota({ body: '"'.repeat(3_200_000) })).toBe(true);
    expect(exceedsInvokeQuota({ body: "x".repeat(lambdaInvokeBytes) })).toBe(true);
    expect(exceedsInvokeQuota({ body: null })).toBe(false);
  });

  it("keep request and response bodies under Lambda's invocation quota", () => {
    expect(lambdaInvokeBytes).toBe(6 * 1024 * 1024);
    expect(maxRequestBodyBytes).toBeLessThan(lambdaInvokeBytes);
    expect(maxResponseBodyBytes).toBeLessThan(lambdaInvokeBytes);
  });

  it("every handler answers 413 to a body over the limit, in the error shape", async () => {
    const handler = apiHandler(async () => json(200, { ok: true }));
    const over = await handler(
      { body: "x".repeat(maxRequestBodyBytes + 1) } as APIGatewayProxyEvent,
      context,
    );
    expect(over.statusCode).toBe(413);
    expect(JSON.parse(over.body).error.code).toBe("payload_too_large");
    const under = await handler({ body: "x".repeat(maxRequestBodyBytes) } as APIGatewayProxyEvent, context);
    expect(under.statusCode).toBe(200);
  });

  it("GET /events pages are cut by bytes and continue with a cursor", () => {
    const row = { event_id: "e", properties: { blob: "y".repeat(30 * 1024) } };
    const rows = Array.from({ length: 1001 }, (_, i) => ({ ...row, event_id: `e${i}` }));
    const { page, more } = pageWithinBytes(rows, 1000, maxResponseBodyBytes);
    expect(page.length).toBeLessThan(1000);
    expect(page.length).toBeGreaterThan(100);
    expect(more).toBe(true);
    expect(
      Buffer.byteLength(JSON.stringify({ events: page, next_cursor: "c".repeat(100) })),
    ).toBeLessThanOrEqual(maxResponseBodyBytes);
    const small = pageWithinBytes(rows.slice(0, 5), 3, maxResponseBodyBytes);
    expect(small.page).toHaveLength(3);
    expect(small.more).toBe(true);
    expect(pageWithinBytes(rows.slice(0, 3), 3, maxResponseBodyBytes).more).toBe(false);
  });
});

describe("local API gateway and Lambda's invocation quota", () => {
  let gateway: LocalApiGateway;
  let base: string;
  let responseBytes = 10;
  beforeAll(async () => {
    const echo = apiHandler(async () => json(200, { pad: "z".repeat(responseBytes) }));
    gateway = new LocalApiGateway({
      port: 0,
      functionFor: (): LocalFunction => ({
        name: "rules",
        invoke: (event: unknown) => echo(event as APIGatewayProxyEvent, context),
      }),
    });
    base = await gateway.start();
  });
  afterAll(async () => {
    await gateway.stop();
  });

  const post = (bytes: number) =>
    fetch(`${base}/rules`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "x".repeat(bytes),
    });

  it("answers 413 with CORS headers above the body limit, whichever side refuses it", async () => {
    for (const bytes of [maxRequestBodyBytes + 1, lambdaInvokeBytes + 1]) {
      const res = await post(bytes);
      expect(res.status, String(bytes)).toBe(413);
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("payload_too_large");
    }
    expect((await post(1024)).status).toBe(200);
  });

  it("answers 502 when a function's response passes the quota, as API Gateway does", async () => {
    responseBytes = lambdaInvokeBytes;
    const res = await fetch(`${base}/health`);
    expect(res.status).toBe(502);
    responseBytes = 10;
  });
});

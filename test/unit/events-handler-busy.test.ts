import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { describe, expect, it, vi } from "vitest";

/** GET /events when Athena's active-query quota is full: 503 with Retry-After, not a 500. */
vi.mock("../../lib/adapters/events-athena.ts", async () => {
  const { QueryBusyError } = await import("../../lib/adapters/events-query.ts");
  return {
    AthenaEventsEngine: class {
      async query() {
        throw new QueryBusyError("Athena refused to start the query: Too many queries are running");
      }
    },
  };
});

const context = {
  functionName: "events",
  awsRequestId: "r",
  getRemainingTimeInMillis: () => 29_000,
} as Context;

describe("GET /events handler", () => {
  it("answers 503 with Retry-After when Athena will not start another query now", async () => {
    Object.assign(process.env, {
      EVENTS_QUERY_ENGINE: "athena",
      ARCHIVE_BUCKET: "archive",
      ATHENA_WORKGROUP: "wg",
      ATHENA_DATABASE: "db",
      ATHENA_TABLE: "events",
    });
    const { handler } = await import("../../functions/events.ts");
    const res = await handler(
      { queryStringParameters: { event_type: "page_view" } } as unknown as APIGatewayProxyEvent,
      context,
    );
    expect(res.statusCode).toBe(503);
    expect(res.headers?.["retry-after"]).toBe("5");
    const body = JSON.parse(res.body) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("service_unavailable");
    expect(body.error.message).toMatch(/retry/);
  });
});

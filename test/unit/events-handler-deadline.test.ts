import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { describe, expect, it, vi } from "vitest";

/**
 * GET /events in AWS: the handler hands the engine a deadline counted from its own start, and a
 * query that misses it gets the handler's answer (503, Retry-After, what to do), not a 500 or the
 * gateway's bare 504 at 29 s.
 */
const seen = vi.hoisted(() => ({
  deadlines: [] as (number | undefined)[],
  /** What the engine throws: a query past its deadline, or Athena's active-query quota full. */
  refusal: "timeout" as "timeout" | "busy",
}));

vi.mock("../../lib/adapters/events-athena.ts", async () => {
  const { QueryBusyError, QueryTimeoutError } = await import("../../lib/adapters/events-query.ts");
  return {
    AthenaEventsEngine: class {
      async query(_q: unknown, options?: { deadline?: number }) {
        seen.deadlines.push(options?.deadline);
        if (seen.refusal === "busy")
          throw new QueryBusyError("Athena refused to start the query: Too many queries are running");
        throw new QueryTimeoutError("Athena query q-1 still running at the deadline");
      }
    },
  };
});

const context = {
  functionName: "events",
  awsRequestId: "r",
  getRemainingTimeInMillis: () => 29_000,
} as Context;

const handlerOnAthena = async () => {
  Object.assign(process.env, {
    EVENTS_QUERY_ENGINE: "athena",
    ARCHIVE_BUCKET: "archive",
    ATHENA_WORKGROUP: "wg",
    ATHENA_DATABASE: "db",
    ATHENA_TABLE: "events",
  });
  return (await import("../../functions/events.ts")).handler;
};

describe("GET /events handler", () => {
  it("answers 503 with Retry-After when the archive query misses the request's deadline", async () => {
    seen.refusal = "timeout";
    const handler = await handlerOnAthena();
    const { EVENTS_QUERY_BUDGET_MS } = await import("../../lib/adapters/events-query.ts");
    const started = Date.now();
    const res = await handler(
      { queryStringParameters: { event_type: "page_view" } } as unknown as APIGatewayProxyEvent,
      context,
    );
    expect(res.statusCode).toBe(503);
    expect(res.headers?.["retry-after"]).toBeDefined();
    const body = JSON.parse(res.body) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("service_unavailable");
    expect(body.error.message).toMatch(/did not finish/);
    const [deadline] = seen.deadlines;
    expect(deadline).toBeGreaterThanOrEqual(started + EVENTS_QUERY_BUDGET_MS);
    expect(deadline).toBeLessThanOrEqual(Date.now() + EVENTS_QUERY_BUDGET_MS);
  });

  it("answers 503 with Retry-After when Athena will not start another query now", async () => {
    seen.refusal = "busy";
    const handler = await handlerOnAthena();
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

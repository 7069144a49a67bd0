import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { describe, expect, it, vi } from "vitest";

/**
 * GET /events in AWS: the handler hands the engine a deadline counted from its own start, and a
 * query that misses it gets the handler's answer (503, Retry-After, what to do), not a 500 or the
 * gateway's bare 504 at 29 s.
 */
const seen = vi.hoisted(() => ({ deadlines: [] as (number | undefined)[] }));

vi.mock("../../lib/adapters/events-athena.ts", async () => {
  const { QueryTimeoutError } = await import("../../lib/adapters/events-query.ts");
  return {
    AthenaEventsEngine: class {
      async query(_q: unknown, options?: { deadline?: number }) {
        seen.deadlines.push(options?.deadline);
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

describe("GET /events handler", () => {
  it("answers 503 with Retry-After when the archive query misses the request's deadline", async () => {
    Object.assign(process.env, {
      EVENTS_QUERY_ENGINE: "athena",
      ARCHIVE_BUCKET: "archive",
      ATHENA_WORKGROUP: "wg",
      ATHENA_DATABASE: "db",
      ATHENA_TABLE: "events",
    });
    const { handler } = await import("../../functions/events.ts");
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
});

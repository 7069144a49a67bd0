import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * GET /stats by event type reads the built-in rules' windows only: it must not wait for the rules
 * table's Scan (every 3 s the request that fell due read it before its own Queries). With a
 * group_by it still reads the table (a rule created 3 s ago groups it).
 */

/** Plays DynamoDB over HTTP: every table empty; counts the operations it is sent. */
const operations: string[] = [];
let server: Server;

const context = {
  functionName: "stats",
  awsRequestId: "r",
  getRemainingTimeInMillis: () => 10_000,
} as Context;

const get = (query: Record<string, string>) =>
  ({ httpMethod: "GET", path: "/stats", queryStringParameters: query }) as unknown as APIGatewayProxyEvent;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const operation = String(req.headers["x-amz-target"] ?? "").split(".")[1] ?? "";
      operations.push(operation);
      res.writeHead(200, { "content-type": "application/x-amz-json-1.0" });
      res.end(JSON.stringify(operation === "GetItem" ? {} : { Items: [], Count: 0, ScannedCount: 0 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  Object.assign(process.env, {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    DYNAMODB_ENDPOINT: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    AGGREGATES_TABLE: "aggregates",
    RULES_TABLE: "rules",
    STREAM_STATE_TABLE: "stream-state",
  });
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe("GET /stats handler and the rules table", () => {
  it("answers a read by event type without a Scan of the rules; a group_by reads them", async () => {
    const { handler } = await import("../../functions/stats.ts");
    const byType = await handler(get({ event_type: "page_view", interval: "5m" }), context);
    expect(byType.statusCode).toBe(200);
    expect(JSON.parse(byType.body)).toMatchObject({ event_type: "page_view", count: 0, late_events: 0 });
    expect(operations).not.toContain("Scan");
    expect(operations).toContain("Query");

    // No active rule groups page_view by url in an empty table: a 400 that says so, after the Scan.
    const grouped = await handler(
      get({ event_type: "page_view", interval: "5m", group_by: "properties.url" }),
      context,
    );
    expect(grouped.statusCode).toBe(400);
    expect(operations.filter((o) => o === "Scan")).toHaveLength(1);
  });
});

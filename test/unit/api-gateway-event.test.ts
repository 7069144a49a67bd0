import { request } from "node:http";
import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiHandler, json } from "../../functions/shared/http.ts";
import { LocalApiGateway } from "../../local/api-gateway.ts";
import type { LocalFunction } from "../../local/lambda-runtime.ts";

/**
 * The local gateway builds API Gateway's proxy event from a request: query parameters and headers
 * are whatever the client sent, `__proto__` included. AWS delivers the event as JSON, where such a
 * name is an ordinary own property; schemathesis found GET /events?__proto__=… answered 500 here
 * (`multiQuery[k].push is not a function`: the name had reached Object.prototype).
 */
const context = { functionName: "t", awsRequestId: "r", getRemainingTimeInMillis: () => 1000 } as Context;

describe("local API Gateway proxy event", () => {
  let gateway: LocalApiGateway;
  let base = "";
  beforeAll(async () => {
    const echo = apiHandler(async (event) =>
      json(200, {
        query: Object.entries(event.queryStringParameters ?? {}),
        multiQuery: Object.entries(event.multiValueQueryStringParameters ?? {}),
        headers: Object.keys(event.headers),
        multiHeaders: Object.keys(event.multiValueHeaders),
        prototypes: [event.queryStringParameters, event.headers].map(
          (o) => Object.getPrototypeOf(o) === Object.prototype,
        ),
      }),
    );
    gateway = new LocalApiGateway({
      port: 0,
      functionFor: (): LocalFunction => ({
        name: "events",
        invoke: (event: unknown) => echo(event as APIGatewayProxyEvent, context),
      }),
    });
    base = await gateway.start();
  });
  afterAll(async () => {
    await gateway.stop();
  });

  it("passes parameters and headers named __proto__ or constructor as own properties", async () => {
    // node:http, not fetch: undici drops a header named __proto__.
    const res = await new Promise<{ status: number; json: () => Promise<unknown> }>((resolve, reject) => {
      const req = request(
        `${base}/events?__proto__=-62810&constructor=1&a=1&a=2&__proto__=x`,
        { headers: ["host", new URL(base).host, "__proto__", "h", "constructor", "c"] },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (c: Buffer) => chunks.push(c));
          response.on("end", () =>
            resolve({
              status: response.statusCode ?? 0,
              json: async () => JSON.parse(Buffer.concat(chunks).toString("utf8")),
            }),
          );
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(res.status, JSON.stringify(await res.json())).toBe(200);
    const body = (await res.json()) as {
      query: [string, string][];
      multiQuery: [string, string[]][];
      headers: string[];
      multiHeaders: string[];
      prototypes: boolean[];
    };
    expect(body.query).toEqual(
      expect.arrayContaining([
        ["__proto__", "x"],
        ["constructor", "1"],
        ["a", "2"],
      ]),
    );
    expect(body.multiQuery).toEqual(
      expect.arrayContaining([
        ["__proto__", ["-62810", "x"]],
        ["a", ["1", "2"]],
      ]),
    );
    expect(body.headers.map((h) => h.toLowerCase())).toEqual(
      expect.arrayContaining(["__proto__", "constructor"]),
    );
    expect(body.multiHeaders.map((h) => h.toLowerCase())).toContain("__proto__");
    expect(body.prototypes).toEqual([true, true]);
  });
});

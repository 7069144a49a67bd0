import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json } from "../../functions/shared/http.ts";
import { decodeCursor, encodeCursor } from "../../lib/archive/events-sql.ts";
import { parseEventsQuery, parseStatsQuery, RuleSchema, RuleViewSchema } from "../../lib/contract/api.ts";
import { buildOpenApiDocument } from "../../lib/contract/openapi.ts";
import { routes } from "../../lib/topology.ts";
import { LocalApiGateway } from "../../local/api-gateway.ts";
import type { LocalFunction } from "../../local/lambda-runtime.ts";

/** The served OpenAPI document says what the server does (issue 9: 19 contract mismatches). */
describe("served contract", () => {
  const now = Date.UTC(2026, 10, 24, 12);
  type Doc = {
    paths: Record<
      string,
      Record<
        string,
        { parameters?: { name: string; schema: { pattern?: string } }[] } & Record<string, unknown>
      >
    >;
    components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
  };
  const doc = buildOpenApiDocument() as unknown as Doc;

  it("declares instants and cursors by pattern, so empty or malformed values are schema-invalid", () => {
    const params = doc.paths["/events"]?.get?.parameters ?? [];
    const from = params.find((p) => p.name === "from")?.schema.pattern;
    const cursor = params.find((p) => p.name === "cursor")?.schema.pattern;
    expect(from).toBeDefined();
    expect(new RegExp(from ?? "").test("")).toBe(false);
    expect(new RegExp(from ?? "").test("2026-11-24T10:00:00Z")).toBe(true);
    expect(new RegExp(from ?? "").test("8655696292689692")).toBe(false);
    expect(parseEventsQuery({ event_type: "a", from: "", to: "" }, now).ok).toBe(false);
    expect(parseStatsQuery({ rule_id: "a", to: "8655696292689692" }, now).ok).toBe(false);
    // Every string the cursor pattern admits is a usable keyset position.
    for (const c of ["0.", "12.AA", encodeCursor({ timestamp: 5, eventId: "e-1" })]) {
      expect(new RegExp(cursor ?? "").test(c)).toBe(true);
      expect(decodeCursor(c)).toBeDefined();
    }
  });

  it("describes rule responses with their read-only fields, and bounds rule windows", () => {
    const view = doc.components.schemas.RuleView?.properties ?? {};
    expect(Object.keys(view)).toEqual(expect.arrayContaining(["detailed", "reads"]));
    expect(RuleViewSchema.safeParse({ ...rule("1m"), detailed: true, reads: "x" }).success).toBe(true);
    expect(RuleSchema.safeParse(rule("7d")).success).toBe(true);
    expect(RuleSchema.safeParse(rule("8d")).success).toBe(false);
    expect(RuleSchema.safeParse(rule("0m")).success).toBe(false);
  });

  it("declares 403 on every operation that needs the API key", () => {
    for (const route of routes) {
      const op = doc.paths[route.path]?.[route.method.toLowerCase()] as {
        responses: Record<string, unknown>;
      };
      expect(Object.keys(op.responses).includes("403"), `${route.method} ${route.path}`).toBe(
        route.apiKeyRequired,
      );
    }
  });
});

function rule(size: string) {
  return { rule_id: "r1", event_type: "*", metric: "count", window: { type: "tumbling", size } };
}

describe("local API key", () => {
  let gateway: LocalApiGateway;
  let base: string;
  beforeAll(async () => {
    gateway = new LocalApiGateway({
      port: 0,
      apiKey: "secret",
      functionFor: (): LocalFunction => ({
        name: "rules",
        invoke: async () => json(200, { ok: true }),
      }),
    });
    base = await gateway.start();
  });
  afterAll(async () => {
    await gateway.stop();
  });

  it("answers 403 without the configured key on routes that require one, as API Gateway does", async () => {
    const without = await fetch(`${base}/rules`);
    expect(without.status).toBe(403);
    expect(((await without.json()) as { error: { code: string } }).error.code).toBe("forbidden");
    expect((await fetch(`${base}/rules`, { headers: { "x-api-key": "wrong" } })).status).toBe(403);
    expect((await fetch(`${base}/rules`, { headers: { "x-api-key": "secret" } })).status).toBe(200);
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });
});

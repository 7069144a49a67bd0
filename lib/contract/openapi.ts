import { z } from "zod";
import { api, routes } from "../topology.ts";
import {
  EventsPageSchema,
  EventsQuerySchema,
  HealthSchema,
  IngestAcceptedSchema,
  MAX_ACTIVE_RULES,
  MAX_RULES,
  RuleSchema,
  RuleViewSchema,
  StatsQuerySchema,
  StatsResponseSchema,
} from "./api.ts";
import { ErrorBodySchema } from "./errors.ts";
import { IngestBodySchema, MAX_EVENTS_PER_REQUEST } from "./event.ts";

/**
 * The OpenAPI 3.1 document, generated from the same zod schemas the handlers validate with
 * (JSON Schema 2020-12 is OpenAPI 3.1's schema dialect). Committed as docs/openapi.json and
 * served at GET /openapi.json; CI fails if the two drift.
 */
type Json = Record<string, unknown>;

const components: Record<string, unknown> = {};

const mib = (bytes: number) => `${bytes / (1024 * 1024)} MiB`;

/** A schema reference, registering the schema (and every named schema inside it) as components. */
function ref(schema: z.ZodType, io: "input" | "output" = "output"): Json {
  const generated = z.toJSONSchema(schema, { target: "draft-2020-12", io, unrepresentable: "any" }) as Json;
  const rewritten = JSON.parse(
    JSON.stringify(generated).replaceAll('"#/$defs/', '"#/components/schemas/'),
  ) as Json;
  const defs = (rewritten.$defs ?? {}) as Record<string, unknown>;
  for (const [name, def] of Object.entries(defs)) components[name] ??= def;
  const { $schema: _schema, $defs: _defs, ...rest } = rewritten;
  return rest;
}

function queryParameters(schema: z.ZodObject): Json[] {
  const json = z.toJSONSchema(schema, { target: "draft-2020-12", io: "input" }) as Json;
  const body = ((json.$defs as Record<string, Json> | undefined)?.[
    Object.keys((json.$defs as Json) ?? {})[0] ?? ""
  ] ?? json) as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(body.properties ?? {}).map(([name, s]) => ({
    name,
    in: "query",
    required: (body.required ?? []).includes(name),
    ...(typeof s.description === "string" ? { description: s.description } : {}),
    schema: s,
  }));
}

const errorResponse = (description: string, headers?: Json) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { "application/json": { schema: ref(ErrorBodySchema) } },
});
const ok = (description: string, schema: z.ZodType) => ({
  description,
  content: { "application/json": { schema: ref(schema) } },
});
const retryAfter = {
  "Retry-After": { description: "seconds to wait before retrying", schema: { type: "integer" } },
};
const common = {
  "400": errorResponse("invalid input; every problem is listed"),
  "429": errorResponse("throttled", retryAfter),
  "500": errorResponse("internal error"),
};
const ruleIdParam = { name: "rule_id", in: "path", required: true, schema: { type: "string" } };

function operations(): Record<string, Record<string, Json>> {
  return {
    "/events": {
      post: {
        operationId: "ingestEvents",
        summary: `Send one event, an array, or {events: [...]} (at most ${MAX_EVENTS_PER_REQUEST.toLocaleString("en-US")} events and ${mib(api.payload.maxRequestBodyBytes)})`,
        description:
          "All or nothing: 202 only once Kafka acknowledged every event (acks=all). Retrying after 503 is safe: event_id makes retries idempotent downstream.",
        requestBody: {
          required: true,
          content: { "application/json": { schema: ref(IngestBodySchema, "input") } },
        },
        responses: {
          "202": ok("every event was acknowledged by Kafka", IngestAcceptedSchema),
          ...common,
          "413": errorResponse(`request body larger than ${mib(api.payload.maxRequestBodyBytes)}`),
          "503": errorResponse(
            "Kafka unavailable, or (in AWS) every reserved ingest environment busy; nothing was accepted",
            retryAfter,
          ),
        },
      },
      get: {
        operationId: "listEvents",
        summary: "Historical events from the archive, newest first",
        parameters: queryParameters(EventsQuerySchema),
        responses: {
          "200": ok("a page of events", EventsPageSchema),
          ...common,
          "503": errorResponse(
            "the archive query did not finish in the request's time (in AWS, 25 s); retry, or narrow the range",
            retryAfter,
          ),
        },
      },
    },
    "/stats": {
      get: {
        operationId: "getStats",
        summary: "Live statistics of an event type over the last interval or a range, or a rule's windows",
        description:
          "By event type: event_type with interval (the last minutes) or from/to (a range [from, to), not both), " +
          "plus field and group_by. By rule: rule_id, with from/to or without (the rule's own window); " +
          "event_type, interval, field and group_by do not apply to a rule and are a 400.",
        parameters: queryParameters(StatsQuerySchema),
        responses: {
          "200": ok("statistics", StatsResponseSchema),
          "404": errorResponse("no such rule (rule_id)"),
          ...common,
        },
      },
    },
    "/rules": {
      get: {
        operationId: "listRules",
        summary: "Aggregation rules",
        responses: { "200": ok("rules", z.object({ rules: z.array(RuleViewSchema) })), ...common },
      },
      post: {
        operationId: "createRule",
        summary: "Create an aggregation rule (picked up within seconds, no redeploy)",
        requestBody: {
          required: true,
          content: { "application/json": { schema: ref(RuleSchema, "input") } },
        },
        responses: {
          "201": ok("created", RuleViewSchema),
          ...common,
          "409": errorResponse(
            `rule_id exists, or the rule limit is reached (code rule_limit: ${MAX_ACTIVE_RULES} active, ${MAX_RULES} stored)`,
          ),
        },
      },
    },
    "/rules/{rule_id}": {
      get: {
        operationId: "getRule",
        parameters: [ruleIdParam],
        responses: { "200": ok("the rule", RuleViewSchema), "404": errorResponse("no such rule"), ...common },
      },
      put: {
        operationId: "updateRule",
        parameters: [ruleIdParam],
        requestBody: {
          required: true,
          // rule_id comes from the path; in the body it may be left out (or must match).
          content: {
            "application/json": {
              schema: ref(RuleSchema.partial({ rule_id: true }).meta({ id: "RuleUpdate" }), "input"),
            },
          },
        },
        responses: {
          "200": ok("updated", RuleViewSchema),
          "404": errorResponse("no such rule"),
          ...common,
          "409": errorResponse("enabling the rule would pass the limit of active rules (code rule_limit)"),
        },
      },
      delete: {
        operationId: "disableRule",
        summary: "Disable a rule (its windows stay readable)",
        parameters: [ruleIdParam],
        responses: { "200": ok("disabled", RuleViewSchema), "404": errorResponse("no such rule"), ...common },
      },
    },
    "/health": {
      get: {
        operationId: "health",
        responses: {
          "200": ok("every service answers", HealthSchema),
          "503": ok("a service is down", HealthSchema),
        },
      },
    },
    "/openapi.json": {
      get: {
        operationId: "openapi",
        responses: {
          "200": {
            description: "this document",
            content: { "application/json": { schema: { type: "object" } } },
          },
        },
      },
    },
    "/dashboard": {
      get: {
        operationId: "dashboard",
        summary:
          "The live dashboard (HTML page; reads /stats and /rules, listens to the live-stats WebSocket)",
        responses: { "200": { description: "the page", content: { "text/html": {} } } },
      },
    },
    "/dashboard/{asset}": {
      get: {
        operationId: "dashboardAsset",
        summary: "A static file of the dashboard (its ES modules and styles, uPlot's)",
        parameters: [{ name: "asset", in: "path", required: true, schema: { type: "string" } }],
        responses: {
          "200": { description: "the file", content: { "text/javascript": {}, "text/css": {} } },
          "404": errorResponse("no such asset"),
        },
      },
    },
  };
}

export function buildOpenApiDocument(): Json {
  const paths = operations();
  for (const route of routes) {
    const op = paths[route.path]?.[route.method.toLowerCase()];
    if (!op) throw new Error(`OpenAPI document has no operation for ${route.method} ${route.path}`);
    const responses = op.responses as Record<string, unknown>;
    if (route.apiKeyRequired) {
      op.security = [{ apiKey: [] }];
      responses["403"] = errorResponse("missing or wrong x-api-key (or, for /rules writes, authorization)");
    }
    if (op.requestBody)
      responses["413"] ??= errorResponse(`request body larger than ${mib(api.payload.maxRequestBodyBytes)}`);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Tidemark",
      version: "0.1.0",
      description: "Serverless real-time analytics: send events, read history and live statistics.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(components).sort(([a], [b]) => a.localeCompare(b))),
      securitySchemes: { apiKey: { type: "apiKey", in: "header", name: "x-api-key" } },
    },
  };
}

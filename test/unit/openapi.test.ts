import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildOpenApiDocument } from "../../lib/contract/openapi.ts";
import { routes } from "../../lib/topology.ts";

describe("OpenAPI document", () => {
  const doc = buildOpenApiDocument() as {
    openapi: string;
    paths: Record<string, Record<string, { security?: unknown; responses: Record<string, unknown> }>>;
    components: { schemas: Record<string, unknown> };
  };

  it("is OpenAPI 3.1 with an operation for every route of the topology", () => {
    expect(doc.openapi).toBe("3.1.0");
    for (const route of routes) {
      const op = doc.paths[route.path]?.[route.method.toLowerCase()];
      expect(op, `${route.method} ${route.path}`).toBeDefined();
      expect(Boolean(op?.security)).toBe(route.apiKeyRequired);
    }
  });

  it("documents the event contract and the error shape from the zod schemas", () => {
    const input = doc.components.schemas.EventInput as { additionalProperties: boolean; required: string[] };
    expect(input.additionalProperties).toBe(false);
    expect(input.required).toEqual(expect.arrayContaining(["user_id", "event_type", "timestamp"]));
    expect(doc.components.schemas.Error).toBeDefined();
    expect(Object.keys(doc.paths["/events"]?.post?.responses ?? {})).toEqual(
      expect.arrayContaining(["202", "400", "413", "429", "503"]),
    );
  });

  it("matches the committed docs/openapi.json", () => {
    const committed = readFileSync(new URL("../../docs/openapi.json", import.meta.url), "utf8");
    expect(JSON.parse(committed)).toEqual(JSON.parse(JSON.stringify(doc)));
  });
});

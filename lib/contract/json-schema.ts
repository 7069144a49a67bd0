import { z } from "zod";
import { IngestBodySchema } from "./event.ts";

type Json = { [key: string]: unknown };

/**
 * The POST /events body as a self-contained JSON Schema draft 4 object, for API Gateway's
 * request validator (REST API models are draft 4, and a model may only `$ref` other models, so
 * the zod schema's local definitions are inlined). Generated from the same zod schema the
 * ingest handler validates with.
 */
export function eventBatchJsonSchema(): Json {
  const generated = z.toJSONSchema(IngestBodySchema, {
    target: "draft-04",
    io: "input",
    unrepresentable: "any",
  }) as Json;
  const definitions = (generated.definitions ?? {}) as Record<string, Json>;
  const inline = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(inline);
    if (node === null || typeof node !== "object") return node;
    const ref = (node as Json).$ref;
    if (typeof ref === "string" && ref.startsWith("#/definitions/")) {
      const target = definitions[ref.slice("#/definitions/".length)];
      if (!target) throw new Error(`unresolved ${ref}`);
      return inline(target);
    }
    return Object.fromEntries(Object.entries(node as Json).map(([k, v]) => [k, inline(v)]));
  };
  const { $schema: _s, definitions: _d, ...root } = generated;
  return { title: "EventBatch", ...(inline(root) as Json) };
}

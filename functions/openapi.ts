import { buildOpenApiDocument } from "../lib/contract/openapi.ts";
import { apiHandler, json } from "./shared/http.ts";

/** GET /openapi.json: the OpenAPI 3.1 document generated from the same zod schemas the handlers use. */
const document = buildOpenApiDocument();

export const handler = apiHandler(async () =>
  json(200, document, { "cache-control": "public, max-age=300" }),
);

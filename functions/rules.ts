import { z } from "zod";
import { createDynamoDb } from "../lib/adapters/dynamodb-client.ts";
import { DynamoRulesStore } from "../lib/adapters/rules-store.ts";
import { awsEndpointsEnv, readConfig } from "../lib/config.ts";
import { badRequest } from "../lib/contract/errors.ts";
import { RulesService } from "../lib/pipeline/rules-service.ts";
import { apiHandler, bodyText, errorResponse, json } from "./shared/http.ts";

/** /rules: create, list, read, update and disable aggregation rules at run time. */
const config = readConfig(awsEndpointsEnv.extend({ RULES_TABLE: z.string().min(1) }));
const rules = new RulesService(new DynamoRulesStore(createDynamoDb(config), config.RULES_TABLE));

function parseBody(text: string | undefined): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text ?? "") };
  } catch {
    return { ok: false };
  }
}

export const handler = apiHandler(async (event) => {
  const ruleId = event.pathParameters?.rule_id;
  const method = event.httpMethod;
  const answer = (r: Awaited<ReturnType<RulesService["get"]>>, status = 200) =>
    r.ok ? json(status, r.value) : errorResponse(r.error);
  if (method === "GET" && !ruleId) return json(200, { rules: await rules.list() });
  if (method === "GET" && ruleId) return answer(await rules.get(ruleId));
  if (method === "DELETE" && ruleId) return answer(await rules.disable(ruleId));
  const body = parseBody(bodyText(event));
  if (!body.ok) return errorResponse(badRequest("request body is not valid JSON", undefined, "invalid_json"));
  if (method === "POST" && !ruleId) return answer(await rules.create(body.value), 201);
  if (method === "PUT" && ruleId) return answer(await rules.update(ruleId, body.value));
  return errorResponse({
    status: 405,
    code: "method_not_allowed",
    message: `${method} is not supported here`,
  });
});

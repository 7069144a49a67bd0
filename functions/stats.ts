import { z } from "zod";
import { DynamoAggregateStore } from "../lib/adapters/aggregate-store.ts";
import { createDynamoDb } from "../lib/adapters/aws-clients.ts";
import { awsEndpointsEnv, readConfig } from "../lib/config.ts";
import { parseStatsQuery } from "../lib/contract/api.ts";
import { readEventTypeStats } from "../lib/pipeline/stats-query.ts";
import { apiHandler, errorResponse, json, queryOf } from "./shared/http.ts";

/** GET /stats: merges the partial aggregates of the requested windows. */
const config = readConfig(awsEndpointsEnv.extend({ AGGREGATES_TABLE: z.string().min(1) }));
const store = new DynamoAggregateStore(createDynamoDb(config), config.AGGREGATES_TABLE);

export const handler = apiHandler(async (event) => {
  const now = Date.now();
  const query = parseStatsQuery(queryOf(event), now);
  if (!query.ok) return errorResponse(query.error);
  return json(200, await readEventTypeStats(store, query.value, now));
});

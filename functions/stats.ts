import { z } from "zod";
import { createDynamoDb, createDynamoDbRaw } from "../lib/adapters/dynamodb-client.ts";
import { CachedRules, DynamoRulesStore } from "../lib/adapters/rules-store.ts";
import { DynamoWindowStore } from "../lib/adapters/window-store.ts";
import { awsEndpointsEnv, readConfig } from "../lib/config.ts";
import { parseStatsQuery } from "../lib/contract/api.ts";
import { badRequest, notFound } from "../lib/contract/errors.ts";
import { ClosedWindowCache } from "../lib/pipeline/closed-windows.ts";
import { readStats, StatsQueryError, usesStoredRules } from "../lib/pipeline/stats-service.ts";
import { BUILT_IN_RULES } from "../lib/stream/rules.ts";
import { topics } from "../lib/topology.ts";
import { apiHandler, errorResponse, json, queryOf } from "./shared/http.ts";

/** GET /stats: live statistics merged from the partial aggregates of every source partition. */
const config = readConfig(
  awsEndpointsEnv.extend({
    AGGREGATES_TABLE: z.string().min(1),
    RULES_TABLE: z.string().min(1),
    STREAM_STATE_TABLE: z.string().min(1),
  }),
);
const db = createDynamoDb(config);
// The windows' Queries through a low-level client whose middleware stack is resolved once.
const store = new DynamoWindowStore(
  db,
  config.AGGREGATES_TABLE,
  config.STREAM_STATE_TABLE,
  createDynamoDbRaw(config),
);
const rulesStore = new DynamoRulesStore(db, config.RULES_TABLE);
const rules = new CachedRules(rulesStore, BUILT_IN_RULES);
// Windows every partition's watermark has passed, merged once per execution environment.
const closedWindows = new ClosedWindowCache(() =>
  store.fenceSnapshot(topics.eventsRaw.name, topics.eventsRaw.partitions),
);

export const handler = apiHandler(async (event) => {
  const now = Date.now();
  const query = parseStatsQuery(queryOf(event), now);
  if (!query.ok) return errorResponse(query.error);
  try {
    const q = query.value;
    // By event type without group_by the answer is the built-in rules' alone: no wait for the
    // rules table's Scan (every 3 s it held the GET /stats that fell due, before its own reads).
    const current = usesStoredRules(q) ? await rules.current(now) : BUILT_IN_RULES;
    // A disabled rule's windows stay readable by rule_id.
    const extra =
      q.kind === "rule" && !current.some((r) => r.rule_id === q.rule_id)
        ? await rulesStore.get(q.rule_id)
        : undefined;
    return json(200, await readStats(store, extra ? [...current, extra] : current, q, now, closedWindows));
  } catch (error) {
    if (error instanceof StatsQueryError) {
      return errorResponse(error.status === 404 ? notFound(error.message) : badRequest(error.message));
    }
    throw error;
  }
});

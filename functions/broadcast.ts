import type { MSKEvent } from "aws-lambda";
import { z } from "zod";
import { ApiGatewayConnectionNotifier } from "../lib/adapters/connection-notifier.ts";
import { createDynamoDb } from "../lib/adapters/dynamodb-client.ts";
import { CachedRules, DynamoRulesStore } from "../lib/adapters/rules-store.ts";
import { readConfig } from "../lib/config.ts";
import { fanOut } from "../lib/live/fan-out.ts";
import { type RoutedStatsMessage, StatsMessageSchema } from "../lib/live/subscriptions.ts";
import { BUILT_IN_RULES, LATE_EVENTS_RULE } from "../lib/stream/rules.ts";
import { webSocketApi } from "../lib/topology.ts";
import { logger } from "./shared/http.ts";
import { decodeMskEvent } from "./shared/msk.ts";
import { connectionStore, connectionsEnv } from "./shared/websocket.ts";

/**
 * `analytics.stats` consumer (MSK event-source mapping): forwards each stats message to the
 * WebSocket connections whose subscription matches it (lib/live/fan-out.ts), deleting
 * connections that are gone. The rules tell which event type a message is about.
 */
const config = readConfig(
  connectionsEnv.extend({
    RULES_TABLE: z.string().min(1),
    [webSocketApi.managementEndpointEnvVar]: z.url(),
  }),
);
const store = connectionStore(config);
const rules = new CachedRules(new DynamoRulesStore(createDynamoDb(config), config.RULES_TABLE), [
  ...BUILT_IN_RULES,
  LATE_EVENTS_RULE,
]);
const notifier = new ApiGatewayConnectionNotifier(
  config[webSocketApi.managementEndpointEnvVar] as string,
  config.AWS_REGION,
);

export const handler = async (event: MSKEvent): Promise<{ batchItemFailures: [] }> => {
  // Nobody listening: nothing to decode (most of the time, and under load most of the cost).
  const connections = await store.subscribed();
  if (connections.length === 0) return { batchItemFailures: [] };
  const messages: RoutedStatsMessage[] = [];
  let unreadable = 0;
  for (const record of decodeMskEvent(event)) {
    let value: unknown;
    try {
      value = JSON.parse(record.value);
    } catch {
      unreadable++;
      continue;
    }
    const parsed = StatsMessageSchema.safeParse(value);
    if (parsed.success) messages.push(parsed.data);
    else unreadable++;
  }
  if (unreadable > 0) logger.warn("unreadable stats messages skipped", { unreadable });
  if (messages.length === 0) return { batchItemFailures: [] };
  const byId = new Map((await rules.current()).map((r) => [r.rule_id, r]));
  const result = await fanOut(messages, {
    store,
    connections,
    notifier,
    ruleFor: (id) => byId.get(id),
    onError: (connectionId, error) =>
      logger.warn("posting to a connection failed", { connectionId, error: error as Error }),
    // Not the whole window_id: its group may be tens of KB.
    onOversize: (m) =>
      logger.warn("stats message over API Gateway's 128 KB WebSocket message quota left out", {
        rule_id: m.rule_id,
        window_start: m.window_start,
        group_chars: m.group.length,
      }),
  });
  if (result.gone.length > 0 || result.failed > 0 || result.oversize > 0)
    logger.info("fan-out", { ...result, gone: result.gone.length });
  // Whole batch or nothing: a failure here is DynamoDB's, and the retry re-reads the connections.
  return { batchItemFailures: [] };
};

import { z } from "zod";
import { ApiGatewayConnectionNotifier } from "../lib/adapters/connection-notifier.ts";
import { readConfig } from "../lib/config.ts";
import { LIVE_SCHEMA, type LiveFrame, parseSubscribe } from "../lib/live/subscriptions.ts";
import { webSocketApi } from "../lib/topology.ts";
import {
  connectionStore,
  connectionsEnv,
  type WebSocketEvent,
  type WebSocketResult,
} from "./shared/websocket.ts";

/**
 * Live-stats WebSocket `subscribe` route: stores the connection's filters and confirms them on
 * the connection (a WebSocket route's return value reaches no client without a route response,
 * so answers go through `@connections` like the stats do).
 */
const config = readConfig(connectionsEnv.extend({ [webSocketApi.managementEndpointEnvVar]: z.url() }));
const store = connectionStore(config);
const notifier = new ApiGatewayConnectionNotifier(
  config[webSocketApi.managementEndpointEnvVar] as string,
  config.AWS_REGION,
);

export const handler = async (event: WebSocketEvent): Promise<WebSocketResult> => {
  const { connectionId, requestTimeEpoch } = event.requestContext;
  const parsed = parseSubscribe(event.body);
  if (!parsed.ok) {
    const frame: LiveFrame = { schema: LIVE_SCHEMA, type: "error", problems: parsed.problems };
    await notifier.post(connectionId, JSON.stringify(frame));
    return { statusCode: 400 };
  }
  const outcome = await store.subscribe(connectionId, parsed.value, requestTimeEpoch);
  if (outcome === "gone") return { statusCode: 410 };
  // A subscribe sent after this one is already in force: confirming these filters would tell the
  // client the wrong thing, and the later message gets its own confirmation.
  if (outcome === "superseded") return { statusCode: 200 };
  const frame: LiveFrame = {
    schema: LIVE_SCHEMA,
    type: "subscribed",
    connection_id: connectionId,
    ...parsed.value,
  };
  await notifier.post(connectionId, JSON.stringify(frame));
  return { statusCode: 200 };
};

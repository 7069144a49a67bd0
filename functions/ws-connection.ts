import {
  connectionStore,
  readConnectionsConfig,
  type WebSocketEvent,
  type WebSocketResult,
} from "./shared/websocket.ts";

/**
 * Live-stats WebSocket `$connect` and `$disconnect`: remembers the connection (it receives
 * nothing until it subscribes) and forgets it. `$disconnect` is best effort in AWS too; the
 * item's TTL and the broadcaster's 410 handling cover a missed one.
 */
const store = connectionStore(readConnectionsConfig());

export const handler = async (event: WebSocketEvent): Promise<WebSocketResult> => {
  const { connectionId, eventType, requestTimeEpoch } = event.requestContext;
  if (eventType === "CONNECT") await store.add(connectionId, requestTimeEpoch);
  else if (eventType === "DISCONNECT") await store.remove(connectionId);
  else return { statusCode: 400 };
  return { statusCode: 200 };
};

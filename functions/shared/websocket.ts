import type { APIGatewayProxyStructuredResultV2, APIGatewayProxyWebsocketEventV2 } from "aws-lambda";
import { z } from "zod";
import { DynamoConnectionStore } from "../../lib/adapters/connection-store.ts";
import { createDynamoDb } from "../../lib/adapters/dynamodb-client.ts";
import { awsEndpointsEnv, readConfig } from "../../lib/config.ts";
import { tables, webSocketApi } from "../../lib/topology.ts";

/** What the live-stats WebSocket route handlers share: the event shape and the connections table. */
export type WebSocketEvent = APIGatewayProxyWebsocketEventV2;
export type WebSocketResult = APIGatewayProxyStructuredResultV2;

export const connectionsEnv = awsEndpointsEnv.extend({
  [tables.connections.envVar]: z.string().min(1),
});

export function connectionStore(config: z.infer<typeof connectionsEnv>): DynamoConnectionStore {
  return new DynamoConnectionStore(
    createDynamoDb(config),
    config[tables.connections.envVar] as string,
    webSocketApi.connectionTtlSeconds,
  );
}

export function readConnectionsConfig() {
  return readConfig(connectionsEnv);
}

import {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
} from "@aws-sdk/client-apigatewaymanagementapi";
import type { ConnectionNotifier } from "../live/fan-out.ts";
import { withoutSdkLogging } from "./sdk-logging.ts";

/**
 * Posts to WebSocket clients through API Gateway's `@connections` management API. The endpoint
 * is the stage's callback URL in AWS, and the local WebSocket gateway's own `@connections`
 * endpoint on one machine: the same client and calls in both.
 */
export class ApiGatewayConnectionNotifier implements ConnectionNotifier {
  readonly #client: ApiGatewayManagementApiClient;

  constructor(endpoint: string, region: string) {
    this.#client = withoutSdkLogging(new ApiGatewayManagementApiClient({ endpoint, region, maxAttempts: 2 }));
  }

  async post(connectionId: string, data: string): Promise<"sent" | "gone"> {
    try {
      await this.#client.send(
        new PostToConnectionCommand({ ConnectionId: connectionId, Data: new TextEncoder().encode(data) }),
      );
      return "sent";
    } catch (error) {
      if (isGone(error)) return "gone";
      throw error;
    }
  }
}

/** 410 Gone: the client disconnected (or never finished connecting); posting again cannot succeed. */
function isGone(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === "GoneException" || e.$metadata?.httpStatusCode === 410;
}

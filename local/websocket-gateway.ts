import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { APIGatewayProxyStructuredResultV2, APIGatewayProxyWebsocketEventV2 } from "aws-lambda";
import { type WebSocket, WebSocketServer } from "ws";
import { type FunctionName, webSocketApi } from "../lib/topology.ts";
import type { LocalFunction } from "./lambda-runtime.ts";

/**
 * The local stand-in for an API Gateway WebSocket API with Lambda proxy integrations:
 * - an upgrade request invokes the `$connect` route; a non-2xx answer refuses the connection
 *   with that status (API Gateway's behaviour);
 * - a message selects its route by the topology's route selection expression
 *   (`$request.body.action`); messages without a matching route go to `$default`, or are answered
 *   with API Gateway's `Forbidden` frame when there is none;
 * - closing invokes `$disconnect`;
 * - `POST/GET/DELETE <stage>/@connections/{id}` is the management API the handlers call through
 *   `@aws-sdk/client-apigatewaymanagementapi`, answering 410 `GoneException` for unknown connections.
 * Events carry `requestContext.connectionId`, `routeKey`, `eventType`, `domainName` and `stage`
 * as in AWS, so the same handler modules run here and there.
 */
export interface WebSocketGatewayOptions {
  readonly port: number;
  readonly host?: string;
  readonly functionFor: (name: FunctionName) => LocalFunction;
  readonly log?: (line: string) => void;
}

interface Connection {
  readonly socket: WebSocket;
  readonly connectedAt: number;
  readonly sourceIp: string;
  readonly userAgent: string;
  lastActiveAt: number;
}

const ROUTES = new Map<string, FunctionName>(webSocketApi.routes.map((r) => [r.routeKey, r.function]));

export class LocalWebSocketGateway {
  readonly #options: WebSocketGatewayOptions;
  readonly #connections = new Map<string, Connection>();
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 128 * 1024 });
  #server: Server | undefined;
  #domainName = "";

  constructor(options: WebSocketGatewayOptions) {
    this.#options = options;
  }

  /** Starts listening; resolves with the client URL and the management endpoint. */
  async start(): Promise<{ url: string; managementEndpoint: string }> {
    const server = createServer((req, res) => {
      this.#manage(req, res).catch((error: unknown) => {
        this.#options.log?.(`[ws] ${req.method} ${req.url}: ${String(error)}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    server.on("upgrade", (req, socket, head) => {
      this.#upgrade(req, socket, head).catch((error: unknown) => {
        this.#options.log?.(`[ws] $connect: ${String(error)}`);
        reject(socket, 500);
      });
    });
    this.#server = server;
    await new Promise<void>((resolve, fail) => {
      server.once("error", fail);
      server.listen(this.#options.port, this.#options.host ?? "127.0.0.1", () => resolve());
    });
    const address = server.address() as AddressInfo;
    this.#domainName = `${address.address}:${address.port}`;
    return {
      url: `ws://${this.#domainName}/${webSocketApi.stageName}`,
      managementEndpoint: `http://${this.#domainName}/${webSocketApi.stageName}`,
    };
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    for (const c of this.#connections.values()) c.socket.terminate();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.#server = undefined;
  }

  /** Ids of the open connections (tests look at them). */
  get connectionIds(): string[] {
    return [...this.#connections.keys()];
  }

  #event(
    connectionId: string,
    routeKey: string,
    eventType: "CONNECT" | "MESSAGE" | "DISCONNECT",
    connectedAt: number,
    extra: Partial<APIGatewayProxyWebsocketEventV2> = {},
  ): APIGatewayProxyWebsocketEventV2 {
    const now = Date.now();
    return {
      requestContext: {
        routeKey,
        messageId: eventType === "MESSAGE" ? randomId() : "",
        eventType,
        extendedRequestId: randomUUID(),
        requestTime: new Date(now).toUTCString(),
        messageDirection: "IN",
        stage: webSocketApi.stageName,
        connectedAt,
        requestTimeEpoch: now,
        requestId: randomUUID(),
        domainName: this.#domainName,
        connectionId,
        apiId: "local",
      },
      isBase64Encoded: false,
      ...extra,
    };
  }

  async #invoke(routeKey: string, event: APIGatewayProxyWebsocketEventV2): Promise<number> {
    const fn = ROUTES.get(routeKey);
    if (!fn) return 200;
    try {
      const result = (await this.#options.functionFor(fn).invoke(event)) as
        | APIGatewayProxyStructuredResultV2
        | undefined;
      return result?.statusCode ?? 200;
    } catch (error) {
      this.#options.log?.(`[ws] ${routeKey}: ${String(error)}`);
      return 502;
    }
  }

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const connectionId = randomId();
    const connectedAt = Date.now();
    const url = new URL(req.url ?? "/", "http://localhost");
    // fromEntries: a header named `__proto__` is an own property, as in AWS's JSON event.
    const headers: Record<string, string> = Object.fromEntries(
      Object.entries(req.headers).filter((e): e is [string, string] => typeof e[1] === "string"),
    );
    const query = Object.fromEntries(url.searchParams);
    const status = await this.#invoke(
      "$connect",
      this.#event(connectionId, "$connect", "CONNECT", connectedAt, {
        ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
        ...({ headers } as object),
      }),
    );
    if (status < 200 || status > 299) {
      reject(socket, status);
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const connection: Connection = {
        socket: ws,
        connectedAt,
        lastActiveAt: connectedAt,
        sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
        userAgent: req.headers["user-agent"] ?? "",
      };
      this.#connections.set(connectionId, connection);
      ws.on("message", (data, isBinary) => {
        connection.lastActiveAt = Date.now();
        void this.#message(connectionId, connection, isBinary ? null : data.toString());
      });
      ws.on("close", (code, reason) => {
        this.#connections.delete(connectionId);
        void this.#invoke(
          "$disconnect",
          this.#event(connectionId, "$disconnect", "DISCONNECT", connectedAt, {
            ...({ disconnectStatusCode: code, disconnectReason: reason.toString() } as object),
          }),
        );
      });
    });
  }

  async #message(connectionId: string, connection: Connection, text: string | null): Promise<void> {
    let routeKey = "$default";
    if (text !== null) {
      try {
        const action = (JSON.parse(text) as { action?: unknown }).action;
        if (typeof action === "string" && ROUTES.has(action)) routeKey = action;
      } catch {
        // not JSON: the selection expression has no value, so $default
      }
    }
    if (!ROUTES.has(routeKey)) {
      connection.socket.send(JSON.stringify({ message: "Forbidden", connectionId, requestId: randomUUID() }));
      return;
    }
    await this.#invoke(
      routeKey,
      this.#event(connectionId, routeKey, "MESSAGE", connection.connectedAt, { body: text ?? "" }),
    );
  }

  /** The `@connections` management API. */
  async #manage(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const match = /\/@connections\/([^/]+)$/.exec(url.pathname);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (!match?.[1]) {
      res
        .writeHead(404, { "content-type": "application/json" })
        .end(JSON.stringify({ message: "Not Found" }));
      return;
    }
    const id = decodeURIComponent(match[1]);
    const connection = this.#connections.get(id);
    if (!connection || connection.socket.readyState !== connection.socket.OPEN) {
      res
        .writeHead(410, { "content-type": "application/json", "x-amzn-errortype": "GoneException" })
        .end(JSON.stringify({ message: `connection ${id} is gone` }));
      return;
    }
    switch (req.method) {
      case "POST": {
        const data = Buffer.concat(chunks);
        await new Promise<void>((resolve, fail) =>
          connection.socket.send(data.toString("utf8"), (error) => (error ? fail(error) : resolve())),
        );
        res.writeHead(200).end();
        return;
      }
      case "GET":
        res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({
            ConnectedAt: new Date(connection.connectedAt).toISOString(),
            LastActiveAt: new Date(connection.lastActiveAt).toISOString(),
            Identity: { SourceIp: connection.sourceIp, UserAgent: connection.userAgent },
          }),
        );
        return;
      case "DELETE":
        connection.socket.close(1000);
        res.writeHead(204).end();
        return;
      default:
        res.writeHead(405).end();
    }
  }
}

/** API Gateway's connection ids look like `L0SM9cOFvHcCIhw=`. */
function randomId(): string {
  return randomBytes(10).toString("base64");
}

function reject(socket: Duplex, status: number): void {
  socket.end(
    `HTTP/1.1 ${status} ${status === 403 ? "Forbidden" : "Error"}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
  );
}

import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { APIGatewayProxyStructuredResultV2, APIGatewayProxyWebsocketEventV2 } from "aws-lambda";
import { type WebSocket, WebSocketServer } from "ws";
import { z } from "zod";
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
 *   `@aws-sdk/client-apigatewaymanagementapi`, answering 410 `GoneException` for unknown connections
 *   and 413 `PayloadTooLargeException` for data over API Gateway's 128 KB message quota;
 * - with an API key configured, the upgrade first passes the topology's `$connect` authorizer
 *   (a Lambda REQUEST authorizer, the very module AWS runs) and then the usage-plan check of the
 *   key it returns (`usageIdentifierKey`), as API Gateway does: no `?key=` 401 (identity
 *   source), `Unauthorized` thrown 401, a denying policy or an unknown key 403, a failing
 *   authorizer 500; the authorizer's `context` and `principalId` reach every route's
 *   `requestContext.authorizer`.
 * Events carry `requestContext.connectionId`, `routeKey`, `eventType`, `domainName` and `stage`
 * as in AWS, so the same handler modules run here and there.
 */
export interface WebSocketGatewayOptions {
  readonly port: number;
  readonly host?: string;
  readonly functionFor: (name: FunctionName) => LocalFunction;
  readonly log?: (line: string) => void;
  /**
   * The API key `$connect` must present in `?key=` (through the authorizer), the same key the
   * local REST API wants in `x-api-key`: in AWS both check one usage plan.
   * @default no authorizer and no check, as the local REST API without a key
   */
  readonly apiKey?: string;
}

interface Connection {
  readonly socket: WebSocket;
  readonly connectedAt: number;
  readonly sourceIp: string;
  readonly userAgent: string;
  /** `requestContext.authorizer` of every event of the connection, when it passed an authorizer. */
  readonly authorizer: Authorization | undefined;
  lastActiveAt: number;
}

/** What API Gateway puts in `requestContext.authorizer`: the context, `principalId`, the latency. */
type Authorization = Readonly<Record<string, string | number | boolean>>;

/** The authorizer's answer (API Gateway's Lambda authorizer output). */
const AuthorizerResultSchema = z.object({
  principalId: z.string(),
  policyDocument: z.object({
    Version: z.string(),
    Statement: z.array(
      z.object({
        Effect: z.enum(["Allow", "Deny"]),
        Action: z.union([z.string(), z.array(z.string())]),
        Resource: z.union([z.string(), z.array(z.string())]),
      }),
    ),
  }),
  context: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).nullish(),
  usageIdentifierKey: z.string().nullish(),
});

/** The HTTP refusals of a WebSocket upgrade, with API Gateway's bodies. */
const REFUSALS: Record<number, string> = {
  401: "Unauthorized",
  403: "Forbidden",
  500: "Internal Server Error",
};

/** A refusal by status, or the authorizer's part of every later event. */
type ConnectAuthorization = { readonly refuse: number } | { readonly authorizer: Authorization | undefined };

const ROUTES = new Map<string, FunctionName>(webSocketApi.routes.map((r) => [r.routeKey, r.function]));

export class LocalWebSocketGateway {
  readonly #options: WebSocketGatewayOptions;
  readonly #connections = new Map<string, Connection>();
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: webSocketApi.maxMessageBytes });
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
    authorizer?: Authorization,
  ): APIGatewayProxyWebsocketEventV2 {
    const now = Date.now();
    return {
      requestContext: {
        ...(authorizer ? ({ authorizer } as object) : {}),
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
    const sourceIp = req.socket.remoteAddress ?? "127.0.0.1";
    const userAgent = req.headers["user-agent"] ?? "";
    const auth = await this.#authorize(connectionId, connectedAt, query, headers, { sourceIp, userAgent });
    if ("refuse" in auth) {
      reject(socket, auth.refuse);
      return;
    }
    const { authorizer } = auth;
    const status = await this.#invoke(
      "$connect",
      this.#event(
        connectionId,
        "$connect",
        "CONNECT",
        connectedAt,
        {
          ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
          ...({ headers } as object),
        },
        authorizer,
      ),
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
        sourceIp,
        userAgent,
        authorizer,
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
          this.#event(
            connectionId,
            "$disconnect",
            "DISCONNECT",
            connectedAt,
            { ...({ disconnectStatusCode: code, disconnectReason: reason.toString() } as object) },
            authorizer,
          ),
        );
      });
    });
  }

  /**
   * API Gateway's `$connect` authorization: the identity source, the Lambda REQUEST authorizer
   * (its event as AWS sends it for a WebSocket API), its policy on the method ARN, then the
   * usage-plan check of the key it returned (`apiKeySelectionExpression`
   * `$context.authorizer.usageIdentifierKey`, `apiKeyRequired` on `$connect`).
   */
  async #authorize(
    connectionId: string,
    connectedAt: number,
    query: Record<string, string>,
    headers: Record<string, string>,
    identity: { sourceIp: string; userAgent: string },
  ): Promise<ConnectAuthorization> {
    const apiKey = this.#options.apiKey;
    if (apiKey === undefined) return { authorizer: undefined };
    const { function: name, keyParameter } = webSocketApi.connectAuthorizer;
    if (!query[keyParameter]) return { refuse: 401 };
    const base = this.#event(connectionId, "$connect", "CONNECT", connectedAt);
    const region = process.env.AWS_REGION ?? "us-east-1";
    const methodArn = `arn:aws:execute-api:${region}:000000000000:${base.requestContext.apiId}/${webSocketApi.stageName}/$connect`;
    const event = {
      type: "REQUEST",
      methodArn,
      headers,
      multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
      queryStringParameters: query,
      multiValueQueryStringParameters: Object.fromEntries(Object.entries(query).map(([k, v]) => [k, [v]])),
      stageVariables: {},
      requestContext: { ...base.requestContext, identity },
    };
    const started = Date.now();
    let output: unknown;
    try {
      output = await this.#options.functionFor(name).invoke(event);
    } catch (error) {
      if (error instanceof Error && error.message === "Unauthorized") return { refuse: 401 };
      this.#options.log?.(`[ws] $connect authorizer: ${String(error)}`);
      return { refuse: 500 };
    }
    const result = AuthorizerResultSchema.safeParse(output);
    if (!result.success) {
      this.#options.log?.(`[ws] $connect authorizer: malformed answer: ${result.error.message}`);
      return { refuse: 500 };
    }
    const { principalId, policyDocument, context, usageIdentifierKey } = result.data;
    if (!allows(policyDocument.Statement, methodArn)) return { refuse: 403 };
    if (usageIdentifierKey !== apiKey) return { refuse: 403 };
    return { authorizer: { ...context, principalId, integrationLatency: Date.now() - started } };
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
      this.#event(
        connectionId,
        routeKey,
        "MESSAGE",
        connection.connectedAt,
        { body: text ?? "" },
        connection.authorizer,
      ),
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
        // API Gateway refuses what it could not deliver; sending it locally hid the limit.
        if (data.length > webSocketApi.maxMessageBytes) {
          res
            .writeHead(413, {
              "content-type": "application/json",
              "x-amzn-errortype": "PayloadTooLargeException",
            })
            .end(JSON.stringify({ message: "Message too long" }));
          return;
        }
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

/** An IAM policy's verdict on `execute-api:Invoke` of the method: an explicit Deny wins, then an Allow. */
function allows(
  statements: readonly { Effect: "Allow" | "Deny"; Action: string | string[]; Resource: string | string[] }[],
  methodArn: string,
): boolean {
  const matches = (patterns: string | string[], value: string) =>
    [patterns].flat().some((p) => globMatch(p, value));
  const applying = statements.filter(
    (s) => matches(s.Action, "execute-api:Invoke") && matches(s.Resource, methodArn),
  );
  return applying.some((s) => s.Effect === "Allow") && !applying.some((s) => s.Effect === "Deny");
}

/** IAM's wildcards: `*` any run of characters, `?` one character. */
function globMatch(pattern: string, value: string): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${source}$`).test(value);
}

function reject(socket: Duplex, status: number): void {
  const reason = REFUSALS[status] ?? "Error";
  const body = JSON.stringify({ message: reason });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

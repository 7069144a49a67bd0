import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import { type ApiError, toErrorBody } from "../lib/contract/errors.ts";
import { api, corsHeaders, type RouteSpec, routes } from "../lib/topology.ts";
import { LambdaTimeoutError, type LocalFunction } from "./lambda-runtime.ts";

/**
 * The local stand-in for API Gateway (REST API, Lambda proxy integration): it turns HTTP
 * requests into `APIGatewayProxyEvent`s for the handler modules of the topology's routes and
 * their results into responses, with API Gateway's payload limit, stage throttling (token
 * bucket with the topology's rate and burst) and CORS.
 */
export interface ApiGatewayOptions {
  readonly port: number;
  readonly host?: string;
  readonly functionFor: (route: RouteSpec) => LocalFunction;
  readonly throttle?: { readonly rateLimit: number; readonly burstLimit: number };
  readonly log?: (line: string) => void;
  /**
   * When set, routes with `apiKeyRequired` answer 403 unless `x-api-key` equals it, as API
   * Gateway does with a usage plan's key. @default no check
   */
  readonly apiKey?: string;
}

interface CompiledRoute {
  readonly spec: RouteSpec;
  readonly pattern: RegExp;
  readonly params: string[];
}

function compile(spec: RouteSpec): CompiledRoute {
  const params: string[] = [];
  const source = spec.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    params.push(name);
    return "([^/]+)";
  });
  return { spec, pattern: new RegExp(`^${source}/?$`), params };
}

/** API Gateway's stage throttling: a token bucket refilled at `rateLimit`/s holding `burstLimit`. */
export class TokenBucket {
  #tokens: number;
  #last = performance.now();
  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {
    this.#tokens = burst;
  }
  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.rate);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

function sendError(res: ServerResponse, error: ApiError, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(toErrorBody(error));
  res.writeHead(error.status, { "content-type": "application/json", ...corsHeaders(), ...headers });
  res.end(body);
}

export class LocalApiGateway {
  readonly #options: ApiGatewayOptions;
  readonly #routes = routes.map(compile);
  readonly #bucket: TokenBucket;
  #server: Server | undefined;

  constructor(options: ApiGatewayOptions) {
    this.#options = options;
    const throttle = options.throttle ?? {
      rateLimit: api.throttleRateLimit,
      burstLimit: api.throttleBurstLimit,
    };
    this.#bucket = new TokenBucket(throttle.rateLimit, throttle.burstLimit);
  }

  /** Starts listening; resolves with the base URL. */
  async start(): Promise<string> {
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        this.#options.log?.(`[api] ${req.method} ${req.url}: ${String(error)}`);
        if (!res.headersSent)
          sendError(res, { status: 500, code: "internal_error", message: "internal error" });
        else res.end();
      });
    });
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 66_000;
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#options.port, this.#options.host ?? "127.0.0.1", () => resolve());
    });
    const address = server.address() as AddressInfo;
    return `http://${address.address === "::" ? "localhost" : address.address}:${address.port}`;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.#server = undefined;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const method = (req.method ?? "GET").toUpperCase();
    if (method === "OPTIONS") {
      res.writeHead(204, corsHeaders());
      res.end();
      return;
    }
    const candidates = this.#routes.filter((r) => r.pattern.test(url.pathname));
    if (candidates.length === 0) {
      req.resume();
      sendError(res, { status: 404, code: "not_found", message: `no route for ${url.pathname}` });
      return;
    }
    const route = candidates.find((r) => r.spec.method === method);
    if (!route) {
      req.resume();
      const allowed = candidates.map((r) => r.spec.method).join(", ");
      sendError(
        res,
        {
          status: 405,
          code: "method_not_allowed",
          message: `${method} is not allowed on ${url.pathname}; use ${allowed}`,
        },
        { allow: allowed },
      );
      return;
    }
    if (route.spec.apiKeyRequired && this.#options.apiKey !== undefined) {
      const key = req.headers["x-api-key"];
      if (key !== this.#options.apiKey) {
        req.resume();
        sendError(res, { status: 403, code: "forbidden", message: "Forbidden" });
        return;
      }
    }
    if (!this.#bucket.take()) {
      req.resume();
      sendError(
        res,
        { status: 429, code: "too_many_requests", message: "rate limit exceeded; slow down" },
        { "retry-after": "1" },
      );
      return;
    }
    // Nothing larger than Lambda's synchronous invocation quota can reach a function.
    const body = await readBody(req, api.payload.lambdaInvokeBytes);
    if (body === "too_large") {
      sendError(res, invokeTooLarge(), { connection: "close" });
      return;
    }
    const match = route.pattern.exec(url.pathname);
    const pathParameters: Record<string, string> = {};
    route.params.forEach((name, i) => {
      const value = match?.[i + 1];
      if (value !== undefined) pathParameters[name] = decodeURIComponent(value);
    });
    const event = toProxyEvent(req, url, route.spec, pathParameters, body);
    if (exceedsInvokeQuota(event)) {
      sendError(res, invokeTooLarge());
      return;
    }
    let result: APIGatewayProxyResult;
    try {
      result = (await this.#options.functionFor(route.spec).invoke(event)) as APIGatewayProxyResult;
    } catch (error) {
      // What API Gateway answers when the integration fails or times out.
      const timedOut = error instanceof LambdaTimeoutError;
      this.#options.log?.(`[api] ${method} ${url.pathname}: ${String(error)}`);
      sendError(res, {
        status: timedOut ? 504 : 502,
        code: timedOut ? "integration_timeout" : "integration_error",
        message: timedOut ? "the function timed out" : "the function failed",
      });
      return;
    }
    // Lambda refuses a result over its quota; API Gateway answers that as a failed integration.
    if (exceedsInvokeQuota(result)) {
      this.#options.log?.(`[api] ${method} ${url.pathname}: response exceeds the Lambda payload quota`);
      sendError(res, {
        status: 502,
        code: "integration_error",
        message: "the function's response is too large",
      });
      return;
    }
    const headers: Record<string, string> = { ...corsHeaders() };
    for (const [k, v] of Object.entries(result.headers ?? {})) headers[k.toLowerCase()] = String(v);
    const payload = result.isBase64Encoded
      ? Buffer.from(result.body, "base64")
      : Buffer.from(result.body ?? "");
    headers["content-length"] = String(payload.length);
    res.writeHead(result.statusCode, headers);
    res.end(payload);
  }
}

function invokeTooLarge(): ApiError {
  return {
    status: 413,
    code: "payload_too_large",
    message: `request exceeds the ${api.payload.maxRequestBodyBytes}-byte body limit`,
  };
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | "too_large"> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) {
    req.resume();
    return "too_large";
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) return "too_large";
    chunks.push(buf);
  }
  return chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, size);
}

/**
 * Whether an invocation payload (event or result) passes Lambda's quota, as Lambda counts it: its
 * JSON. Serializing a 1,000-event body inside the event (every quote escaped) cost the local API
 * as much CPU as validating the events, so it is skipped when the answer is certain: JSON escaping
 * turns a UTF-16 code unit into at most 6 bytes.
 */
export function exceedsInvokeQuota(payload: { readonly body?: string | null }): boolean {
  const body = payload.body ?? "";
  const rest = Buffer.byteLength(JSON.stringify({ ...payload, body: "" }));
  if (rest + body.length * 6 <= api.payload.lambdaInvokeBytes) return false;
  return Buffer.byteLength(JSON.stringify(payload)) > api.payload.lambdaInvokeBytes;
}

function toProxyEvent(
  req: IncomingMessage,
  url: URL,
  route: RouteSpec,
  pathParameters: Record<string, string>,
  body: Buffer,
): APIGatewayProxyEvent {
  // Built through Maps and Object.fromEntries: a header or query parameter named `__proto__` is
  // an own property, as in the JSON event AWS delivers, not a write to the object's prototype.
  // The single-value forms hold each name's last value, as API Gateway's do.
  const multiHeaderMap = new Map<string, string[]>();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] ?? "";
    const values = multiHeaderMap.get(name) ?? [];
    values.push(req.rawHeaders[i + 1] ?? "");
    multiHeaderMap.set(name, values);
  }
  const multiQueryMap = new Map<string, string[]>();
  for (const [k, v] of url.searchParams) {
    const values = multiQueryMap.get(k) ?? [];
    values.push(v);
    multiQueryMap.set(k, values);
  }
  const lastOf = (m: Map<string, string[]>): Record<string, string> =>
    Object.fromEntries([...m].map(([k, values]) => [k, values.at(-1) ?? ""]));
  const headers = lastOf(multiHeaderMap);
  const multiValueHeaders: Record<string, string[]> = Object.fromEntries(multiHeaderMap);
  const query = lastOf(multiQueryMap);
  const multiQuery: Record<string, string[]> = Object.fromEntries(multiQueryMap);
  const hasQuery = Object.keys(query).length > 0;
  const contentType = (req.headers["content-type"] ?? "").toLowerCase();
  const isText = contentType === "" || /json|text|xml|urlencoded/.test(contentType);
  const now = Date.now();
  return {
    resource: route.path,
    path: url.pathname,
    httpMethod: route.method,
    headers,
    multiValueHeaders,
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multiQuery : null,
    pathParameters: Object.keys(pathParameters).length > 0 ? pathParameters : null,
    stageVariables: null,
    body: body.length === 0 ? null : isText ? body.toString("utf8") : body.toString("base64"),
    isBase64Encoded: body.length > 0 && !isText,
    requestContext: {
      accountId: "000000000000",
      apiId: "local",
      authorizer: null,
      protocol: `HTTP/${req.httpVersion}`,
      httpMethod: route.method,
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: typeof req.headers["x-api-key"] === "string" ? req.headers["x-api-key"] : null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
        user: null,
        userAgent: req.headers["user-agent"] ?? null,
        userArn: null,
      },
      path: `/local${url.pathname}`,
      stage: "local",
      requestId: randomUUID(),
      requestTimeEpoch: now,
      resourceId: "local",
      resourcePath: route.path,
    },
  };
}

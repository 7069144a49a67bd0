import type { APIGatewayProxyWebsocketEventV2 } from "aws-lambda";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ApiGatewayConnectionNotifier } from "../../lib/adapters/connection-notifier.ts";
import { type FunctionName, webSocketApi } from "../../lib/topology.ts";
import { type LocalFunction, localFunction } from "../../local/lambda-runtime.ts";
import { LocalWebSocketGateway } from "../../local/websocket-gateway.ts";

/**
 * The local WebSocket API with recording stand-ins for the route functions; with `apiKey`, the
 * `$connect` authorizer is the real module (or `authorizer`, a stand-in).
 */
async function gateway(
  answer: (event: APIGatewayProxyWebsocketEventV2) => number = () => 200,
  auth: { apiKey?: string; authorizer?: (event: unknown) => Promise<unknown> } = {},
) {
  const events: APIGatewayProxyWebsocketEventV2[] = [];
  const authorizerEvents: unknown[] = [];
  const functionFor = (name: FunctionName): LocalFunction => {
    if (name === webSocketApi.connectAuthorizer.function) {
      const real = localFunction(name);
      return {
        name,
        async invoke(event) {
          authorizerEvents.push(event);
          return auth.authorizer ? auth.authorizer(event) : real.invoke(event);
        },
      };
    }
    return {
      name,
      async invoke(event) {
        const e = event as APIGatewayProxyWebsocketEventV2;
        events.push(e);
        return { statusCode: answer(e) };
      },
    };
  };
  const gw = new LocalWebSocketGateway({
    port: 0,
    functionFor,
    ...(auth.apiKey ? { apiKey: auth.apiKey } : {}),
  });
  const { url, managementEndpoint } = await gw.start();
  return { gw, url, managementEndpoint, events, authorizerEvents };
}

async function open(url: string) {
  const socket = new WebSocket(url);
  const received: string[] = [];
  socket.on("message", (d) => received.push(d.toString()));
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  return { socket, received };
}

/** `requestContext.authorizer` (API Gateway adds it; the event type does not have it). */
const authorizerOf = (event: APIGatewayProxyWebsocketEventV2 | undefined) =>
  (event?.requestContext as { authorizer?: unknown } | undefined)?.authorizer;

/** The HTTP status with which the upgrade was refused (the `ws` client reports it). */
async function refusal(url: string): Promise<number> {
  const socket = new WebSocket(url);
  return new Promise((resolve, reject) => {
    socket.once("unexpected-response", (req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      req.destroy();
    });
    socket.once("open", () => reject(new Error("the connection was accepted")));
  });
}

const until = async (probe: () => boolean) => {
  for (let i = 0; i < 200 && !probe(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(probe()).toBe(true);
};

describe("local WebSocket gateway", () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const s of stops.splice(0)) await s();
  });

  it("invokes $connect, routes messages by action, invokes $disconnect, as API Gateway does", async () => {
    const { gw, url, events } = await gateway();
    stops.push(() => gw.stop());
    const { socket, received } = await open(url);
    socket.send(JSON.stringify({ action: "subscribe", event_types: ["page_view"] }));
    socket.send(JSON.stringify({ action: "unknown" }));
    await until(() => received.length === 1 && events.length === 2);
    expect(JSON.parse(received[0] ?? "{}")).toMatchObject({ message: "Forbidden" });
    socket.close();
    await until(() => events.length === 3);
    const [connect, subscribe, disconnect] = events;
    expect(connect?.requestContext).toMatchObject({
      routeKey: "$connect",
      eventType: "CONNECT",
      stage: "live",
    });
    expect(subscribe?.requestContext).toMatchObject({ routeKey: "subscribe", eventType: "MESSAGE" });
    expect(JSON.parse(subscribe?.body ?? "{}")).toEqual({ action: "subscribe", event_types: ["page_view"] });
    expect(disconnect?.requestContext).toMatchObject({ routeKey: "$disconnect", eventType: "DISCONNECT" });
    const id = connect?.requestContext.connectionId;
    expect(id).toBeTruthy();
    expect(new Set(events.map((e) => e.requestContext.connectionId))).toEqual(new Set([id]));
    expect(connect?.requestContext.domainName).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it("refuses the connection when $connect answers non-2xx", async () => {
    const { gw, url } = await gateway((e) => (e.requestContext.routeKey === "$connect" ? 403 : 200));
    stops.push(() => gw.stop());
    await expect(open(url)).rejects.toThrow(/403/);
  });

  it("posts through @connections with the AWS SDK client, and answers 410 Gone once the client left", async () => {
    const { gw, url, managementEndpoint, events } = await gateway();
    stops.push(() => gw.stop());
    // The local endpoint accepts any signature, as local/stack.ts's function environment assumes.
    process.env.AWS_ACCESS_KEY_ID ??= "local";
    process.env.AWS_SECRET_ACCESS_KEY ??= "local";
    const notifier = new ApiGatewayConnectionNotifier(managementEndpoint, "us-east-1");
    const { socket, received } = await open(url);
    const id = events[0]?.requestContext.connectionId ?? "";
    expect(await notifier.post(id, '{"hello":"world"}')).toBe("sent");
    await until(() => received.length === 1);
    expect(received[0]).toBe('{"hello":"world"}');
    socket.close();
    await until(() => gw.connectionIds.length === 0);
    expect(await notifier.post(id, "{}")).toBe("gone");
    expect(await notifier.post("never-connected", "{}")).toBe("gone");
  });

  it("refuses a post over API Gateway's 128 KB message quota with 413 PayloadTooLargeException, as AWS does", async () => {
    const { gw, url, managementEndpoint, events } = await gateway();
    stops.push(() => gw.stop());
    process.env.AWS_ACCESS_KEY_ID ??= "local";
    process.env.AWS_SECRET_ACCESS_KEY ??= "local";
    const notifier = new ApiGatewayConnectionNotifier(managementEndpoint, "us-east-1");
    const { received } = await open(url);
    const id = events[0]?.requestContext.connectionId ?? "";
    // API Gateway docs, "quotas for configuring and running a WebSocket API": message payload 128 KB.
    const quota = 128 * 1024;
    await expect(notifier.post(id, "x".repeat(quota + 1))).rejects.toMatchObject({
      name: "PayloadTooLargeException",
      $metadata: { httpStatusCode: 413 },
    });
    // Bytes, not characters: 2-byte characters count twice.
    await expect(notifier.post(id, "é".repeat(quota / 2 + 1))).rejects.toMatchObject({
      name: "PayloadTooLargeException",
    });
    expect(await notifier.post(id, "x".repeat(quota))).toBe("sent");
    await until(() => received.length === 1);
    expect(received[0]?.length).toBe(quota);
  });

  describe("with an API key: the $connect authorizer and the usage-plan check", () => {
    const KEY = "local-key-0123456789abcdef";
    const policy = (effect: "Allow" | "Deny", resource = "*") => ({
      Version: "2012-10-17",
      Statement: [{ Action: "execute-api:Invoke", Effect: effect, Resource: resource }],
    });

    it("refuses a connection without the key (401) or with a wrong one (403), before $connect runs", async () => {
      const { gw, url, events, authorizerEvents } = await gateway(() => 200, { apiKey: KEY });
      stops.push(() => gw.stop());
      expect(await refusal(url)).toBe(401);
      expect(await refusal(`${url}?key=`)).toBe(401);
      // No identity source, no authorizer call (API Gateway's identity-source check).
      expect(authorizerEvents).toHaveLength(0);
      expect(await refusal(`${url}?key=wrong-key-0123456789abcdef`)).toBe(403);
      expect(await refusal(`${url}?key=${encodeURIComponent("x".repeat(200))}`)).toBe(403);
      expect(events).toEqual([]);
    });

    it("runs the authorizer module with API Gateway's REQUEST event, and passes its context to every route", async () => {
      const { gw, url, events, authorizerEvents } = await gateway(() => 200, { apiKey: KEY });
      stops.push(() => gw.stop());
      const { socket } = await open(`${url}?key=${KEY}&lang=en`);
      socket.send(JSON.stringify({ action: "subscribe" }));
      await until(() => events.length === 2);
      socket.close();
      await until(() => events.length === 3);
      expect(authorizerEvents).toHaveLength(1);
      const [connect] = events;
      const connectionId = connect?.requestContext.connectionId;
      expect(authorizerEvents[0]).toMatchObject({
        type: "REQUEST",
        methodArn: expect.stringMatching(/^arn:aws:execute-api:[a-z0-9-]+:\d{12}:local\/live\/\$connect$/),
        queryStringParameters: { key: KEY, lang: "en" },
        multiValueQueryStringParameters: { key: [KEY], lang: ["en"] },
        headers: expect.objectContaining({ upgrade: "websocket" }),
        requestContext: {
          routeKey: "$connect",
          eventType: "CONNECT",
          connectionId,
          stage: "live",
          apiId: "local",
          identity: expect.objectContaining({ sourceIp: expect.any(String) }),
        },
      });
      for (const e of events)
        expect(authorizerOf(e), e.requestContext.routeKey).toEqual({
          credential: "api_key",
          key_fingerprint: expect.stringMatching(/^key-[0-9a-f]{16}$/),
          principalId: expect.stringMatching(/^key-[0-9a-f]{16}$/),
          integrationLatency: expect.any(Number),
        });
    });

    it("answers as API Gateway does for what the authorizer returns", async () => {
      const cases: [string, (event: unknown) => Promise<unknown>, number][] = [
        ["throws Unauthorized", async () => Promise.reject(new Error("Unauthorized")), 401],
        ["fails otherwise", async () => Promise.reject(new Error("boom")), 500],
        ["returns no policy", async () => ({ principalId: "p" }), 500],
        [
          "denies",
          async () => ({ principalId: "p", policyDocument: policy("Deny"), usageIdentifierKey: KEY }),
          403,
        ],
        [
          "allows another method only",
          async () => ({
            principalId: "p",
            policyDocument: policy("Allow", "arn:aws:execute-api:*:*:other/*"),
            usageIdentifierKey: KEY,
          }),
          403,
        ],
        [
          "allows without a key for the usage plan",
          async () => ({ principalId: "p", policyDocument: policy("Allow") }),
          403,
        ],
      ];
      for (const [what, authorizer, status] of cases) {
        const { gw, url, events } = await gateway(() => 200, { apiKey: KEY, authorizer });
        stops.push(() => gw.stop());
        expect(await refusal(`${url}?key=${KEY}`), what).toBe(status);
        expect(events, what).toEqual([]);
      }
      const allowing = async () => ({
        principalId: "p",
        policyDocument: policy("Allow", "arn:aws:execute-api:*:*:local/live/*"),
        usageIdentifierKey: KEY,
        context: { tenant: "t1" },
      });
      const { gw, url, events } = await gateway(() => 200, { apiKey: KEY, authorizer: allowing });
      stops.push(() => gw.stop());
      const { socket } = await open(`${url}?key=${KEY}`);
      await until(() => events.length === 1);
      expect(authorizerOf(events[0])).toMatchObject({
        tenant: "t1",
        principalId: "p",
      });
      socket.close();
    });

    it("without an API key configured, neither runs the authorizer nor checks a key (like the local REST API)", async () => {
      const { gw, url, events, authorizerEvents } = await gateway();
      stops.push(() => gw.stop());
      const { socket } = await open(url);
      await until(() => events.length === 1);
      expect(authorizerEvents).toEqual([]);
      expect(authorizerOf(events[0])).toBeUndefined();
      socket.close();
    });
  });
});

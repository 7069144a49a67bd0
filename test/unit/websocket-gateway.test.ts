import type { APIGatewayProxyWebsocketEventV2 } from "aws-lambda";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ApiGatewayConnectionNotifier } from "../../lib/adapters/connection-notifier.ts";
import type { FunctionName } from "../../lib/topology.ts";
import type { LocalFunction } from "../../local/lambda-runtime.ts";
import { LocalWebSocketGateway } from "../../local/websocket-gateway.ts";

/** The local WebSocket API with recording stand-ins for the route functions. */
async function gateway(answer: (event: APIGatewayProxyWebsocketEventV2) => number = () => 200) {
  const events: APIGatewayProxyWebsocketEventV2[] = [];
  const functionFor = (name: FunctionName): LocalFunction => ({
    name,
    async invoke(event) {
      const e = event as APIGatewayProxyWebsocketEventV2;
      events.push(e);
      return { statusCode: answer(e) };
    },
  });
  const gw = new LocalWebSocketGateway({ port: 0, functionFor });
  const { url, managementEndpoint } = await gw.start();
  return { gw, url, managementEndpoint, events };
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
});

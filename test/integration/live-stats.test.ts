import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { DynamoConnectionStore } from "../../lib/adapters/connection-store.ts";
import type { LocalStack } from "../../local/stack.ts";
import { liveUrlWithKey, postJson, startPipeline, waitFor } from "./support.ts";

/** Both APIs want it, as one usage plan's key does in AWS. */
const API_KEY = "live-stats-test-key-0123456789";
const auth = { "x-api-key": API_KEY };

interface Frame {
  schema: string;
  type: string;
  connection_id?: string;
  messages?: { rule_id: string; group: string; count: number; window_id: string }[];
}

/** A live-stats client (with the API key): every frame it received, in order. */
async function connect(url: string) {
  const socket = new WebSocket(liveUrlWithKey(url, API_KEY));
  const frames: Frame[] = [];
  socket.on("message", (data) => frames.push(JSON.parse(data.toString()) as Frame));
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const stats = () => frames.flatMap((f) => (f.type === "stats" ? (f.messages ?? []) : []));
  return {
    socket,
    frames,
    stats,
    async subscribe(filter: { rule_ids?: string[]; event_types?: string[] }) {
      socket.send(JSON.stringify({ action: "subscribe", ...filter }));
      return waitFor(async () => frames.find((f) => f.type === "subscribed"));
    },
  };
}

describe("live stats over WebSocket", () => {
  let stack: LocalStack;
  let db: DynamoDBDocumentClient;
  beforeAll(async () => {
    stack = await startPipeline({ apiKey: API_KEY });
    db = DynamoDBDocumentClient.from(
      new DynamoDBClient({ region: "us-east-1", endpoint: stack.endpoints.dynamodbEndpoint }),
    );
  });
  afterAll(async () => {
    db?.destroy();
    await stack?.stop();
  });

  it("refuses a connection without the API key (401) or with a wrong one (403), accepts the right one", async () => {
    const status = (url: string) =>
      new Promise<number>((resolve, reject) => {
        const socket = new WebSocket(url);
        socket.once("unexpected-response", (req, res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
          req.destroy();
        });
        socket.once("open", () => {
          socket.close();
          resolve(101);
        });
        socket.once("error", reject);
      });
    const before = stack.webSocket.connectionIds.length;
    expect(await status(stack.liveUrl)).toBe(401);
    expect(await status(liveUrlWithKey(stack.liveUrl, "not-the-key-0123456789"))).toBe(403);
    // The REST API's header does not open a WebSocket either: browsers cannot send it.
    expect(await status(`${stack.liveUrl}?x-api-key=${API_KEY}`)).toBe(401);
    expect(stack.webSocket.connectionIds).toHaveLength(before);
    expect(await status(liveUrlWithKey(stack.liveUrl, API_KEY))).toBe(101);
    // The accepted one is a working connection: it subscribes.
    const client = await connect(stack.liveUrl);
    expect(await client.subscribe({ event_types: ["page_view"] })).toMatchObject({ type: "subscribed" });
    client.socket.close();
  });

  it("pushes the analytics.stats messages a subscription matches, and not the others", async () => {
    const wanted = `live_a_${Date.now()}`;
    const other = `live_b_${Date.now()}`;
    const client = await connect(stack.liveUrl);
    const control = await connect(stack.liveUrl);
    const ack = await client.subscribe({ rule_ids: ["events_by_type"], event_types: [wanted] });
    expect(ack).toMatchObject({ schema: "tidemark.live.v1", type: "subscribed", event_types: [wanted] });
    const registered = await db.send(
      new GetCommand({
        TableName: stack.names.tables.connections,
        Key: { connection_id: ack.connection_id },
      }),
    );
    expect(registered.Item?.expires_at).toBeGreaterThan(Date.now() / 1000 + 3600);
    await control.subscribe({ event_types: [other] });

    const now = Date.now();
    const posted = performance.now();
    const accepted = await postJson(
      `${stack.url}/events`,
      [
        { user_id: "u1", event_type: wanted, timestamp: now },
        { user_id: "u2", event_type: wanted, timestamp: now },
        { user_id: "u3", event_type: other, timestamp: now },
      ],
      auth,
    );
    expect(accepted.status).toBe(202);

    const got = await waitFor(async () => client.stats().find((m) => m.group === wanted && m.count === 2));
    const latencyMs = performance.now() - posted;
    expect(got).toMatchObject({ rule_id: "events_by_type", group: wanted, count: 2 });
    // The control client saw the other type's update, so it was broadcast: the first client must not have it.
    await waitFor(async () => control.stats().find((m) => m.group === other));
    expect(client.stats().filter((m) => m.group === other || m.rule_id !== "events_by_type")).toEqual([]);
    expect(control.stats().filter((m) => m.group === wanted)).toEqual([]);
    process.stderr.write(`live stats: accepted → pushed in ${latencyMs.toFixed(0)} ms\n`);

    client.socket.close();
    control.socket.close();
    // $disconnect forgets the connection.
    await waitFor(async () => {
      const item = await db.send(
        new GetCommand({
          TableName: stack.names.tables.connections,
          Key: { connection_id: ack.connection_id },
        }),
      );
      return item.Item ? undefined : true;
    });
  });

  it("deletes a connection that is gone (410) when posting to it, and still serves the others", async () => {
    const type = `live_gone_${Date.now()}`;
    // A connection the table knows but API Gateway no longer has: its $disconnect was missed.
    const goneId = `gone-${Date.now()}`;
    await db.send(
      new PutCommand({
        TableName: stack.names.tables.connections,
        Item: {
          connection_id: goneId,
          connected_at: Date.now(),
          expires_at: Math.ceil(Date.now() / 1000) + 3600,
          subscription: { rule_ids: [], event_types: [type] },
        },
      }),
    );
    const client = await connect(stack.liveUrl);
    await client.subscribe({ event_types: [type] });

    await postJson(`${stack.url}/events`, [{ user_id: "g1", event_type: type, timestamp: Date.now() }], auth);
    await waitFor(async () => client.stats().find((m) => m.group === type));
    await waitFor(async () => {
      const item = await db.send(
        new GetCommand({ TableName: stack.names.tables.connections, Key: { connection_id: goneId } }),
      );
      return item.Item ? undefined : true;
    });
    client.socket.close();
  });

  it("keeps the filters of the subscribe sent last when two are handled in the other order", async () => {
    // API Gateway invokes the subscribe route once per message; two messages of one connection
    // in flight at once may finish in either order. The connections table itself must decide.
    const store = new DynamoConnectionStore(db, stack.names.tables.connections, 3600);
    const id = `order-${Date.now()}`;
    const sentAt = Date.now();
    await store.add(id, sentAt);
    const later = { rule_ids: [], event_types: ["sent_second"] };
    const earlier = { rule_ids: [], event_types: ["sent_first"] };
    expect(await store.subscribe(id, later, sentAt + 20)).toBe("stored");
    expect(await store.subscribe(id, earlier, sentAt + 10)).toBe("superseded");
    const item = await db.send(
      new GetCommand({ TableName: stack.names.tables.connections, Key: { connection_id: id } }),
    );
    expect(item.Item?.subscription).toEqual(later);
    // In order, each replaces the last; a connection that is gone stays gone.
    expect(await store.subscribe(id, earlier, sentAt + 30)).toBe("stored");
    await store.remove(id);
    expect(await store.subscribe(id, later, sentAt + 40)).toBe("gone");
  });

  it("answers an invalid subscription with the problems, and unknown actions like API Gateway", async () => {
    const client = await connect(stack.liveUrl);
    client.socket.send(JSON.stringify({ action: "subscribe", event_types: ["Not A Type"] }));
    const error = await waitFor(async () => client.frames.find((f) => f.type === "error"));
    expect(JSON.stringify(error)).toContain("event_types.0");
    client.socket.send(JSON.stringify({ action: "dance" }));
    const forbidden = await waitFor(async () =>
      client.frames.find((f) => (f as unknown as { message?: string }).message === "Forbidden"),
    );
    expect(forbidden).toBeDefined();
    client.socket.close();
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalStack } from "../../local/stack.ts";
import { getJson, postJson, startPipeline, waitFor } from "./support.ts";

describe("first path: POST /events → Kafka → aggregate ESM → DynamoDB → GET /stats", () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startPipeline();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("reports every backing service healthy", async () => {
    const { status, json } = await getJson(`${stack.url}/health`);
    expect(status).toBe(200);
    expect(json).toMatchObject({
      status: "ok",
      services: { kafka: { ok: true }, dynamodb: { ok: true }, s3: { ok: true } },
    });
  });

  it("counts a posted event in GET /stats within 2 seconds", async () => {
    const eventType = `first_path_${Date.now()}`;
    const posted = await postJson(`${stack.url}/events`, {
      user_id: "u-1",
      event_type: eventType,
      timestamp: new Date().toISOString(),
    });
    expect(posted.status).toBe(202);
    expect(posted.json).toMatchObject({ accepted: 1 });
    const started = Date.now();
    const stats = await waitFor(
      async () => {
        const { json } = await getJson(`${stack.url}/stats?event_type=${eventType}&interval=5m`);
        return (json as { count: number }).count === 1 ? json : undefined;
      },
      { timeoutMs: 2_000 },
    );
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(stats).toMatchObject({ event_type: eventType, count: 1 });
  });

  it("answers 400 with the problem named for an invalid event and publishes nothing", async () => {
    const eventType = `rejected_${Date.now()}`;
    const posted = await postJson(`${stack.url}/events`, [
      { user_id: "u-1", event_type: eventType, timestamp: Date.now() },
      { user_id: "u-2", event_type: eventType, timestamp: Date.now(), colour: "red" },
    ]);
    expect(posted.status).toBe(400);
    expect(JSON.stringify(posted.json)).toContain("colour");
    await new Promise((r) => setTimeout(r, 1_000));
    const { json } = await getJson(`${stack.url}/stats?event_type=${eventType}&interval=5m`);
    expect((json as { count: number }).count).toBe(0);
  });

  it("answers unknown routes and methods with the one error shape", async () => {
    const missing = await getJson(`${stack.url}/nope`);
    expect(missing.status).toBe(404);
    expect(missing.json).toMatchObject({ error: { code: "not_found" } });
    const res = await fetch(`${stack.url}/stats`, { method: "DELETE" });
    expect(res.status).toBe(405);
  });
});

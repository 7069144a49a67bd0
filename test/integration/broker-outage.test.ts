import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type RunningServices, startServices } from "../../local/services/index.ts";
import { type LocalStack, startLocalStack } from "../../local/stack.ts";
import { postJson, waitFor } from "./support.ts";

/**
 * A broker of its own (so stopping it does not disturb the other tests), with the shared
 * DynamoDB and S3 servers.
 */
describe("broker outage", () => {
  let services: RunningServices;
  let stack: LocalStack;

  beforeAll(async () => {
    const shared = inject("endpoints");
    process.env.TIDEMARK_KAFKA_BROKERS = "";
    delete process.env.TIDEMARK_KAFKA_BROKERS;
    process.env.TIDEMARK_KAFKA_PORT = "29092";
    process.env.TIDEMARK_DYNAMODB_ENDPOINT = shared.dynamodbEndpoint;
    process.env.TIDEMARK_S3_ENDPOINT = shared.s3Endpoint;
    services = await startServices({ dataDir: mkdtempSync(join(tmpdir(), "tidemark-outage-")) });
    stack = await startLocalStack({ services, port: 0, mappings: "none", namePrefix: "outage" });
  });
  afterAll(async () => {
    await stack?.stop();
    await services?.stop();
  });

  const event = () => ({ user_id: "u", event_type: "outage_probe", timestamp: Date.now() });

  it("answers 503 with Retry-After while the broker is down, and resumes on its own", async () => {
    expect((await postJson(`${stack.url}/events`, event())).status).toBe(202);

    await services.stopService("kafka");
    const down = await postJson(`${stack.url}/events`, [event(), event()]);
    expect(down.status).toBe(503);
    expect(down.headers.get("retry-after")).toBe("1");
    expect(down.json).toMatchObject({ error: { code: "service_unavailable" } });
    expect(JSON.stringify(down.json)).not.toContain("event_ids");

    await services.startService("kafka");
    const back = await waitFor(
      async () => {
        const res = await postJson(`${stack.url}/events`, event());
        return res.status === 202 ? res : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(back.json).toMatchObject({ accepted: 1 });
  });
});

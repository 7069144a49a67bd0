import { existsSync } from "node:fs";
import { describe, expect, it, vi } from "vitest";
import type { StartOptions } from "../../local/services/index.ts";

/**
 * LocalStackOptions.freshData started the services in a temporary directory of its own (a0af12f)
 * and never removed it: every stack started with fresh data left its Kafka log, DynamoDB and S3
 * data under the system's temporary directory. It is removed when the stack's services stop,
 * also when the stack fails to start.
 */
const calls: StartOptions[] = [];
vi.mock("../../local/services/index.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../local/services/index.ts")>();
  return {
    ...real,
    startServices: vi.fn(async (options: StartOptions = {}) => {
      calls.push(options);
      // No broker to bootstrap against: the stack fails to start right after the services.
      return {
        endpoints: {
          kafkaBrokers: [],
          dynamodbEndpoint: "http://127.0.0.1:1",
          s3Endpoint: "http://127.0.0.1:1",
        },
        stop: async () => undefined,
      };
    }),
  };
});

describe("a local stack with fresh data", () => {
  it("removes its temporary data directory when its services stop", async () => {
    const { startLocalStack } = await import("../../local/stack.ts");
    await expect(startLocalStack({ freshData: true, port: 0, mappings: "none" })).rejects.toThrow();
    expect(calls).toHaveLength(1);
    const dataDir = calls[0]?.dataDir;
    expect(dataDir).toBeDefined();
    expect(existsSync(dataDir as string)).toBe(false);
  });
});

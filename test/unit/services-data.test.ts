import { resolve, sep } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { StartOptions } from "../../local/services/index.ts";

/**
 * The integration tests' global setup started the services with `fresh: true` in the default
 * data directory, `.cache/data`, which is where `npm start` keeps its stats, archive and rules
 * across restarts: `npm test` (or one integration test file) deleted a developer's local data,
 * and left the tests' own rules in it for the next `npm start`. The setup now uses a temporary
 * directory of its own, and startServices refuses fresh data in the default one.
 */
const calls: StartOptions[] = [];
vi.mock("../../local/services/index.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../local/services/index.ts")>();
  return {
    ...real,
    startServices: vi.fn(async (options: StartOptions = {}) => {
      calls.push(options);
      return {
        endpoints: {
          kafkaBrokers: ["127.0.0.1:1"],
          dynamodbEndpoint: "http://127.0.0.1:1",
          s3Endpoint: "http://127.0.0.1:1",
        },
        stop: async () => undefined,
      };
    }),
  };
});

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("fresh data for the integration tests", () => {
  it("is a directory of the run's own, not npm start's", async () => {
    const { DEFAULT_DATA_DIR } = await import("../../local/services/index.ts");
    const { default: setup } = await import("../integration/global-setup.ts");
    const provided: Record<string, unknown> = {};
    const teardown = await setup({
      provide: (key: string, value: unknown) => {
        provided[key] = value;
      },
    } as unknown as Parameters<typeof setup>[0]);
    expect(calls).toHaveLength(1);
    const options = calls[0] as StartOptions;
    expect(options.fresh).toBe(true);
    expect(options.dataDir).toBeDefined();
    const dir = resolve(options.dataDir as string);
    const kept = resolve(DEFAULT_DATA_DIR);
    expect(dir === kept || dir.startsWith(`${kept}${sep}`) || kept.startsWith(`${dir}${sep}`)).toBe(false);
    expect(provided.endpoints).toBeDefined();
    await teardown();
  });

  it("is refused in npm start's directory, before any service starts", async () => {
    const real = await vi.importActual<typeof import("../../local/services/index.ts")>(
      "../../local/services/index.ts",
    );
    // Were the guard missing, nothing would be launched or wiped: every service is "external"
    // and unreachable, so the call fails on its health checks instead of the guard's message.
    vi.stubEnv("TIDEMARK_KAFKA_BROKERS", "127.0.0.1:1");
    vi.stubEnv("TIDEMARK_DYNAMODB_ENDPOINT", "http://127.0.0.1:1");
    vi.stubEnv("TIDEMARK_S3_ENDPOINT", "http://127.0.0.1:1");
    for (const dataDir of [undefined, real.DEFAULT_DATA_DIR, `${real.DEFAULT_DATA_DIR}${sep}`]) {
      await expect(
        real.startServices({ fresh: true, startTimeoutMs: 1_000, ...(dataDir ? { dataDir } : {}) }),
      ).rejects.toThrow(/npm start/);
    }
  });
});

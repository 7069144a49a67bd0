import { afterEach, describe, expect, it } from "vitest";
import { type EnvironmentPool, environmentPool, LambdaTimeoutError } from "../../local/lambda-runtime.ts";

/**
 * Lambda runs one invocation per execution environment at a time and starts environments for
 * concurrent requests; the local API does the same with worker threads.
 */
const entry = "test/unit/support/environment-probe-handler.ts";
type Probe = { threadId: number; started: number; ended: number; invocations: number };
let pool: EnvironmentPool | undefined;
afterEach(async () => {
  await pool?.stop();
  pool = undefined;
});

describe("environment pool", () => {
  it("runs concurrent requests in separate environments, one invocation each at a time", async () => {
    pool = environmentPool("health", { entry, maxEnvironments: 4 });
    const results = (await Promise.all([1, 2, 3].map(() => pool?.invoke({ ms: 300 })))) as Probe[];
    expect(new Set(results.map((r) => r.threadId)).size).toBe(3);
    expect(pool.environments).toBe(3);
    // A warm environment is reused: module state survives between invocations.
    const again = (await pool.invoke({ ms: 1 })) as Probe;
    expect(results.map((r) => r.threadId)).toContain(again.threadId);
    expect(again.invocations).toBe(2);
  });

  it("queues requests beyond its environments instead of overlapping them in one", async () => {
    pool = environmentPool("health", { entry, maxEnvironments: 1 });
    const [a, b] = (await Promise.all([pool.invoke({ ms: 200 }), pool.invoke({ ms: 200 })])) as Probe[];
    expect(a?.threadId).toBe(b?.threadId);
    const [first, second] = [a, b].sort((x, y) => (x?.started ?? 0) - (y?.started ?? 0));
    expect(second?.started).toBeGreaterThanOrEqual(first?.ended ?? Number.POSITIVE_INFINITY);
  });

  it("discards an environment that timed out and serves the next request from a fresh one", async () => {
    pool = environmentPool("health", { entry, maxEnvironments: 1, timeoutSeconds: 0.5 });
    const warm = (await pool.invoke({ ms: 1 })) as Probe;
    await expect(pool.invoke({ ms: 5_000 })).rejects.toBeInstanceOf(LambdaTimeoutError);
    const next = (await pool.invoke({ ms: 1 })) as Probe;
    expect(next.threadId).not.toBe(warm.threadId);
    expect(next.invocations).toBe(1);
  });
});

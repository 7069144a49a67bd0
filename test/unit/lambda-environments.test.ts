import { threadId } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import {
  type EnvironmentPool,
  environmentPool,
  functionThreads,
  LambdaTimeoutError,
} from "../../local/lambda-runtime.ts";

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

  it("shares one environment between concurrent invocations when asked to, off the caller's thread", async () => {
    pool = environmentPool("health", { entry, maxEnvironments: 1, invocationsPerEnvironment: Infinity });
    const results = (await Promise.all([1, 2, 3].map(() => pool?.invoke({ ms: 300 })))) as Probe[];
    expect(new Set(results.map((r) => r.threadId)).size).toBe(1);
    expect(results[0]?.threadId).not.toBe(threadId);
    expect(pool.environments).toBe(1);
    // They overlapped: each started before any ended.
    const firstEnd = Math.min(...results.map((r) => r.ended));
    for (const r of results) expect(r.started).toBeLessThan(firstEnd);
  });

  it("spreads concurrent invocations over its shared environments, least busy first", async () => {
    pool = environmentPool("health", { entry, maxEnvironments: 2, invocationsPerEnvironment: Infinity });
    const results = (await Promise.all([1, 2, 3, 4].map(() => pool?.invoke({ ms: 300 })))) as Probe[];
    expect(pool.environments).toBe(2);
    const perThread = new Map<number, number>();
    for (const r of results) perThread.set(r.threadId, (perThread.get(r.threadId) ?? 0) + 1);
    expect([...perThread.values()]).toEqual([2, 2]);
  });

  it("keeps a shared environment when one of its invocations times out", async () => {
    pool = environmentPool("health", {
      entry,
      maxEnvironments: 1,
      invocationsPerEnvironment: Infinity,
      timeoutSeconds: 0.5,
    });
    const warm = (await pool.invoke({ ms: 1 })) as Probe;
    const [slow, quick] = await Promise.allSettled([pool.invoke({ ms: 5_000 }), pool.invoke({ ms: 50 })]);
    expect(slow.status === "rejected" && slow.reason).toBeInstanceOf(LambdaTimeoutError);
    expect(quick.status === "fulfilled" && (quick.value as Probe).threadId).toBe(warm.threadId);
    const next = (await pool.invoke({ ms: 1 })) as Probe;
    expect(next.threadId).toBe(warm.threadId);
    expect(next.invocations).toBe(4);
  });
});

describe("functions in threads of their own (TIDEMARK_FUNCTION_THREADS)", () => {
  const saved = process.env.TIDEMARK_FUNCTION_THREADS;
  afterEach(() => {
    if (saved === undefined) delete process.env.TIDEMARK_FUNCTION_THREADS;
    else process.env.TIDEMARK_FUNCTION_THREADS = saved;
  });
  const threads = (value: string | undefined) => {
    if (value === undefined) delete process.env.TIDEMARK_FUNCTION_THREADS;
    else process.env.TIDEMARK_FUNCTION_THREADS = value;
    return [...functionThreads()].sort();
  };

  it("runs ingest off the gateway's event loop by default, in one thread", () => {
    expect(threads(undefined)).toEqual([["ingest", 1]]);
  });

  it("takes a list of the topology's functions with their threads, or none, and refuses other names", () => {
    expect(threads("stats, ingest:3")).toEqual([
      ["ingest", 3],
      ["stats", 1],
    ]);
    expect(threads("none")).toEqual([]);
    expect(() => threads("ingest,stat")).toThrow(/"stat" is not a function/);
    expect(() => threads("ingest:0")).toThrow(/whole number of threads/);
    expect(() => threads("ingest:two")).toThrow(/whole number of threads/);
  });
});

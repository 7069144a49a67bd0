import { randomUUID } from "node:crypto";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { Context } from "aws-lambda";
import { z } from "zod";
import {
  addUsage,
  emptyUsage,
  type UsageSnapshot,
  UsageSnapshotSchema,
} from "../lib/adapters/usage-meter.ts";
import { type FunctionName, functions } from "../lib/topology.ts";

/**
 * What the Lambda service does around a handler, and no more: load the module once (cold
 * start), hand it a Context, enforce the function's timeout. The module is the very one CDK
 * bundles from the topology's `entry`.
 */
export type LambdaHandler = (event: unknown, context: Context) => Promise<unknown>;

export class LambdaTimeoutError extends Error {
  override name = "LambdaTimeoutError";
}

export interface LocalFunction {
  readonly name: FunctionName;
  invoke(event: unknown): Promise<unknown>;
}

const loaded = new Map<FunctionName, Promise<LambdaHandler>>();

export async function loadHandler(
  name: FunctionName,
  root: string,
  entry: string = functions[name].entry,
): Promise<LambdaHandler> {
  const url = pathToFileURL(resolve(root, entry)).href;
  const mod = (await import(url)) as { handler?: unknown };
  if (typeof mod.handler !== "function") throw new Error(`${entry} does not export a handler`);
  return mod.handler as LambdaHandler;
}

export function localFunction(name: FunctionName, root = process.cwd()): LocalFunction {
  const spec = functions[name];
  return {
    name,
    async invoke(event) {
      let handlerPromise = loaded.get(name);
      if (!handlerPromise) {
        handlerPromise = loadHandler(name, root);
        loaded.set(name, handlerPromise);
      }
      const handler = await handlerPromise;
      const deadline = Date.now() + spec.timeoutSeconds * 1000;
      const context = lambdaContext(name, deadline);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new LambdaTimeoutError(`${name} timed out after ${spec.timeoutSeconds} s`)),
          spec.timeoutSeconds * 1000,
        );
      });
      try {
        return await Promise.race([handler(event, context), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export function lambdaContext(name: FunctionName, deadline: number): Context {
  const functionName = `tidemark-${name}`;
  const memoryMb = functions[name].memoryMb;
  const fail = (): never => {
    throw new Error("callback-style completion is not supported; return a promise");
  };
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: String(memoryMb),
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: "local",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: fail,
    fail,
    succeed: fail,
  };
}

export interface EnvironmentPool extends LocalFunction {
  /** Environments started so far and alive. */
  readonly environments: number;
  /** What the environments' AWS clients used (their usage meters), including ended ones. */
  usage(): UsageSnapshot;
  stop(): Promise<void>;
}

const ReplySchema = z.union([
  z.object({ ready: z.literal(true) }),
  z.object({ id: z.number(), ok: z.literal(true), result: z.unknown(), usage: UsageSnapshotSchema }),
  z.object({
    id: z.number(),
    ok: z.literal(false),
    error: z.object({ name: z.string(), message: z.string(), stack: z.string().optional() }),
    usage: UsageSnapshotSchema,
  }),
]);

interface Environment {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  usage: UsageSnapshot;
  /** Invocations running in it, by message id. */
  readonly pending: Map<number, { resolve(value: unknown): void; reject(error: Error): void }>;
  /** Invocations handed to it and not yet released (`invocationsPerEnvironment` at most). */
  handed: number;
}

/**
 * `TIDEMARK_API_ENVIRONMENTS=N`: the API's functions run in up to N execution environments each
 * (worker threads, one invocation at a time, as Lambda does). Unset: in the stack's own process,
 * where concurrent invocations share one environment — cheaper on a small machine (measured on
 * 2 cores: the API's CPU per event 28 → 45–55 µs with 4 environments, GC and JIT per isolate), but
 * module state is shared by overlapping invocations, which Lambda never does.
 */
export function apiEnvironments(): number | undefined {
  const configured = process.env.TIDEMARK_API_ENVIRONMENTS;
  if (configured === undefined || configured === "") return undefined;
  const n = Number(configured);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`TIDEMARK_API_ENVIRONMENTS must be a whole number ≥ 1, not "${configured}"`);
  return n;
}

/**
 * The API's functions that run off the stack's process, in worker threads of their own shared by
 * concurrent requests (each thread one execution environment with many invocations at a time; a
 * request goes to the least busy): `TIDEMARK_FUNCTION_THREADS`, a comma-separated list of function
 * names, each optionally with `:N` threads (default 1; `none` for none). Default `ingest`.
 *
 * In AWS every function has environments and CPU of its own. In the process that also runs API
 * Gateway and every other function, each 1,000-event POST parsed, validated and encoded for Kafka
 * on the one event loop (tens of ms of CPU), and every callback behind it waited: a GET /stats'
 * DynamoDB responses under load, most of its latency (docs/performance.md, session 10). Moving
 * GET /stats instead does not help: its requests and answers still cross that event loop.
 *
 * One thread holds ingest to one core: 95,000 events/s with the consumers stopped on two cores,
 * 114,000 with `ingest:2` (docs/performance.md, session 12). One is the default because on two
 * cores a second thread takes CPU the consumers need while they run: the archive was 25 s behind
 * after a 60 s load (10 s is the target). On a machine with cores to spare, use two.
 */
export function functionThreads(): ReadonlyMap<FunctionName, number> {
  const configured = process.env.TIDEMARK_FUNCTION_THREADS ?? "ingest";
  const threads = new Map<FunctionName, number>();
  for (const entry of configured.split(",").map((n) => n.trim())) {
    if (entry === "" || entry === "none") continue;
    const [name = "", count = "1"] = entry.split(":").map((p) => p.trim());
    if (!Object.hasOwn(functions, name))
      throw new Error(`TIDEMARK_FUNCTION_THREADS: "${name}" is not a function of the topology`);
    const n = Number(count);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`TIDEMARK_FUNCTION_THREADS: "${entry}" needs a whole number of threads ≥ 1`);
    threads.set(name as FunctionName, n);
  }
  return threads;
}

/**
 * A function as Lambda runs it behind API Gateway: execution environments (worker threads,
 * `local/lambda-environment.ts`), each running ONE invocation at a time; a request finds an idle
 * environment, or starts one (a cold start) while fewer than `maxEnvironments` exist, or waits
 * for one. An environment whose invocation times out is discarded, as Lambda does. Invocations in
 * separate environments share no event loop: a GET /stats does not wait behind the JSON parsing
 * of a 1,000-event POST, and the API uses more than one core.
 *
 * `invocationsPerEnvironment` above 1 lets concurrent invocations share an environment, as the
 * stack's own process does for the functions it runs (cheaper: one isolate's GC and JIT), but off
 * the process's event loop. A timed-out invocation then fails alone; its environment is kept.
 */
export function environmentPool(
  name: FunctionName,
  options: {
    readonly maxEnvironments: number;
    readonly root?: string;
    /** Another module than the topology's entry (tests). */
    readonly entry?: string;
    /** @default the function's timeout */
    readonly timeoutSeconds?: number;
    /** @default 1, as in Lambda */
    readonly invocationsPerEnvironment?: number;
  },
): EnvironmentPool {
  const spec = functions[name];
  const max = options.maxEnvironments;
  const perEnvironment = options.invocationsPerEnvironment ?? 1;
  const root = options.root ?? process.cwd();
  const timeoutSeconds = options.timeoutSeconds ?? spec.timeoutSeconds;
  const all = new Set<Environment>();
  const waiting: ((env: Environment) => void)[] = [];
  let ended = emptyUsage();
  let nextId = 0;
  let stopped = false;

  const start = (): Environment => {
    const worker = new Worker(new URL("./lambda-environment.ts", import.meta.url), {
      workerData: { name, root, ...(options.entry ? { entry: options.entry } : {}) },
      execArgv: [
        "--import",
        "tsx",
        // TIDEMARK_API_CPU_PROF=<dir>: a V8 CPU profile of every environment (docs/performance.md).
        ...(process.env.TIDEMARK_API_CPU_PROF
          ? ["--cpu-prof", `--cpu-prof-dir=${process.env.TIDEMARK_API_CPU_PROF}`]
          : []),
      ],
      resourceLimits: {
        maxOldGenerationSizeMb: Math.floor((spec.memoryMb * 3) / 4),
      },
    });
    let markReady: () => void = () => {};
    let failReady: (error: Error) => void = () => {};
    const env: Environment = {
      worker,
      ready: new Promise<void>((resolve, reject) => {
        markReady = resolve;
        failReady = reject;
      }),
      usage: emptyUsage(),
      pending: new Map(),
      handed: 0,
    };
    worker.on("message", (message: unknown) => {
      const reply = ReplySchema.parse(message);
      if ("ready" in reply) return markReady();
      env.usage = reply.usage;
      const pending = env.pending.get(reply.id);
      env.pending.delete(reply.id);
      if (reply.ok) pending?.resolve(reply.result);
      else pending?.reject(Object.assign(new Error(reply.error.message), reply.error));
    });
    const lost = (error: Error) => {
      failReady(error);
      for (const pending of env.pending.values()) pending.reject(error);
      env.pending.clear();
      discard(env);
    };
    worker.on("error", lost);
    worker.on("exit", (code) => lost(new Error(`${name}: the execution environment exited (${code})`)));
    all.add(env);
    return env;
  };

  const discard = (env: Environment) => {
    if (all.delete(env)) ended = addUsage(ended, env.usage);
  };

  const hand = (env: Environment) => {
    env.handed++;
    return env;
  };

  const release = (env: Environment) => {
    env.handed--;
    const next = waiting.shift();
    if (!next) return;
    // A discarded environment (timed out, crashed) is replaced for the request waiting on it.
    next(hand(all.has(env) ? env : start()));
  };

  // The least busy environment that can take one more invocation; a new one (while fewer than
  // `max` exist) rather than doubling up on a busy one, so concurrent requests spread over them.
  const acquire = (): Promise<Environment> => {
    let least: Environment | undefined;
    for (const env of all)
      if (env.handed < perEnvironment && env.handed < (least?.handed ?? Number.POSITIVE_INFINITY))
        least = env;
    if (least && least.handed === 0) return Promise.resolve(hand(least));
    if (all.size < max) return Promise.resolve(hand(start()));
    if (least) return Promise.resolve(hand(least));
    return new Promise((resolve) => waiting.push(resolve));
  };

  return {
    name,
    get environments() {
      return all.size;
    },
    usage: () => [...all].reduce((u, env) => addUsage(u, env.usage), ended),
    async invoke(event) {
      if (stopped) throw new Error(`${name}: stopped`);
      const env = await acquire();
      let timer: NodeJS.Timeout | undefined;
      try {
        await env.ready;
        const deadline = Date.now() + timeoutSeconds * 1000;
        const id = nextId++;
        return await new Promise<unknown>((resolve, reject) => {
          env.pending.set(id, { resolve, reject });
          timer = setTimeout(() => {
            reject(new LambdaTimeoutError(`${name} timed out after ${timeoutSeconds} s`));
            env.pending.delete(id);
            // Lambda ends a timed-out environment; the next request starts a fresh one. One
            // shared by other invocations is kept, as the stack's process keeps running.
            if (perEnvironment > 1) return;
            discard(env);
            void env.worker.terminate();
          }, timeoutSeconds * 1000);
          env.worker.postMessage({ id, event, deadline });
        });
      } finally {
        clearTimeout(timer);
        release(env);
      }
    },
    async stop() {
      stopped = true;
      await Promise.all([...all].map((env) => env.worker.terminate()));
    },
  };
}

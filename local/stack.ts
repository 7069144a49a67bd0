import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import { Kafka, logLevel } from "kafkajs";
import { z } from "zod";
import { localS3Options } from "../lib/adapters/s3-client.ts";
import {
  addUsage,
  emptyUsage,
  type UsageSnapshot,
  UsageSnapshotSchema,
  usageMeter,
} from "../lib/adapters/usage-meter.ts";
import {
  buckets,
  eventSourceMappings,
  type FunctionName,
  type FunctionSpec,
  functions,
  type RouteSpec,
  tableStreamMappings,
  tables,
  topicEnvVar,
  topics,
  webSocketApi,
} from "../lib/topology.ts";
import { LocalApiGateway } from "./api-gateway.ts";
import { bootstrap, localNames } from "./bootstrap.ts";
import type { LocalEventSourceMapping } from "./event-source-mapping.ts";
import {
  apiEnvironments,
  type EnvironmentPool,
  environmentPool,
  functionThreads,
  type LocalFunction,
  localFunction,
} from "./lambda-runtime.ts";
import { startMappings } from "./mappings.ts";
import { backgroundNiceness, deprioritize } from "./priority.ts";
import { type RunningServices, type ServiceEndpoints, startServices } from "./services/index.ts";
import { LocalWebSocketGateway } from "./websocket-gateway.ts";

/**
 * The whole pipeline on one machine: real services (Kafka, DynamoDB Local, S3 server), the
 * topology's topics/tables/buckets, the handler modules behind a local API Gateway, and one
 * emulated MSK event-source mapping per topology mapping. `npm start` and the integration
 * tests both run this.
 */
export interface LocalStackOptions {
  /** HTTP port of the local API Gateway (0 = any free port). */
  readonly port?: number;
  /** Port of the live-stats WebSocket server and its `@connections` endpoint (0 = any free port; default: API port + 1). */
  readonly webSocketPort?: number;
  /** Prefix of local table and bucket names. */
  readonly namePrefix?: string;
  /**
   * Where the event-source mappings run: `process` (a child process, as in AWS the pollers do not
   * share the API's CPU; the default), `inline` (this process: tests can inspect them), or `none`.
   */
  readonly mappings?: "process" | "inline" | "none";
  /** Use already running services instead of starting them. */
  readonly services?: RunningServices;
  /** Start the services on fresh data in a temporary directory, removed when they stop. */
  readonly freshData?: boolean;
  readonly log?: (line: string) => void;
  /**
   * The API key the routes that require one (`apiKeyRequired`) must present in `x-api-key`, and a
   * live-stats WebSocket in `?key=` (through the `$connect` authorizer), as API Gateway's usage
   * plan does. @default `TIDEMARK_API_KEY` from the environment, or no check
   */
  readonly apiKey?: string;
}

export interface LocalStack {
  readonly url: string;
  /** `ws://` URL of the live-stats WebSocket API. */
  readonly liveUrl: string;
  readonly webSocket: LocalWebSocketGateway;
  readonly endpoints: ServiceEndpoints;
  readonly services: RunningServices;
  readonly mappings: ReadonlyMap<string, LocalEventSourceMapping>;
  readonly names: ReturnType<typeof localNames>;
  /**
   * DynamoDB units and S3 requests so far (`lib/adapters/usage-meter.ts`): this process (the API
   * functions, and the mappings when inline) plus the mappings process, asked for a fresh snapshot.
   */
  usage(): Promise<UsageSnapshot>;
  /** The same per process: the API functions' (`api`) and the consumers' (`mappings`). */
  usageByProcess(): Promise<{ readonly api: UsageSnapshot; readonly mappings: UsageSnapshot }>;
  /**
   * RSS in bytes of this process (the API functions) and of the consumer functions' processes:
   * their sum (`mappings`) and each (`byFunction`), if they run in processes of their own.
   */
  memory(): Promise<{
    readonly api: number;
    readonly mappings?: number;
    readonly byFunction?: Readonly<Record<string, number>>;
  }>;
  /**
   * Stops the consumer functions' processes (SIGSTOP) and lets them go on (SIGCONT): the bench
   * measures the API alone this way. No-ops when the mappings run inline.
   */
  pauseConsumers(): Promise<void>;
  resumeConsumers(): Promise<void>;
  /** Process ids of the consumer functions' processes, by label (`aggregate`, `aggregate#2`, …). */
  consumerPids(): Record<string, number>;
  stop(): Promise<void>;
}

/** What the mappings process reports over IPC, every second and when asked (`usage?`). */
export const MappingsProcessReportSchema = z.object({
  kind: z.literal("usage"),
  /** The request answered, if any. */
  id: z.number().optional(),
  usage: UsageSnapshotSchema,
  rss: z.number(),
});
export type MappingsProcessReport = z.infer<typeof MappingsProcessReportSchema>;

/** The environment every local function sees: what CDK sets in AWS, pointed at local services. */
export function functionEnvironment(
  endpoints: ServiceEndpoints,
  names: ReturnType<typeof localNames>,
): Record<string, string> {
  const env: Record<string, string> = {
    KAFKA_AUTH: "none",
    KAFKA_BROKERS: endpoints.kafkaBrokers.join(","),
    DYNAMODB_ENDPOINT: endpoints.dynamodbEndpoint,
    S3_ENDPOINT: endpoints.s3Endpoint,
    AWS_REGION: process.env.AWS_REGION ?? "us-east-1",
    // Local services accept any credentials; the SDK only needs some.
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? "local",
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? "local",
    EVENTS_QUERY_ENGINE: "duckdb",
    POWERTOOLS_SERVICE_NAME: "tidemark",
    POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? "WARN",
  };
  for (const [key, spec] of Object.entries(tables))
    env[spec.envVar] = names.tables[key as keyof typeof tables];
  for (const [key, spec] of Object.entries(buckets))
    env[spec.envVar] = names.buckets[key as keyof typeof buckets];
  for (const [key, spec] of Object.entries(topics)) env[topicEnvVar(key as keyof typeof topics)] = spec.name;
  return env;
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const log = options.log ?? (() => undefined);
  const ownsServices = !options.services;
  // Fresh data in a directory of its own (the default one is npm start's), removed with the
  // services: left behind, every such stack kept its Kafka log and tables in the temp directory.
  const freshDir =
    options.services || !options.freshData ? undefined : mkdtempSync(join(tmpdir(), "tidemark-stack-"));
  const removeFreshDir = () => {
    if (freshDir) rmSync(freshDir, { recursive: true, force: true });
  };
  let services: RunningServices;
  try {
    services =
      options.services ??
      (await startServices({ log, ...(freshDir ? { fresh: true, dataDir: freshDir } : {}) }));
  } catch (error) {
    removeFreshDir();
    throw error;
  }
  const stopServices = async () => {
    if (!ownsServices) return;
    try {
      await services.stop();
    } finally {
      removeFreshDir();
    }
  };
  const started: { stop(): Promise<void> }[] = [];
  try {
    const { endpoints } = services;
    const names = localNames(options.namePrefix ?? "tidemark");
    const env = functionEnvironment(endpoints, names);
    Object.assign(process.env, env);

    const kafka = new Kafka({
      clientId: "tidemark-local",
      brokers: endpoints.kafkaBrokers,
      logLevel: logLevel.NOTHING,
    });
    const dynamodb = new DynamoDBClient({ region: env.AWS_REGION, endpoint: endpoints.dynamodbEndpoint });
    const s3 = new S3Client({ region: env.AWS_REGION, ...localS3Options(endpoints.s3Endpoint) });
    await bootstrap({ kafka, dynamodb, s3, names });
    dynamodb.destroy();
    s3.destroy();

    // The API's and the WebSocket API's functions: in this process; those of
    // TIDEMARK_FUNCTION_THREADS (ingest by default) in threads of their own; or all in execution
    // environments of their own (TIDEMARK_API_ENVIRONMENTS). See local/lambda-runtime.ts.
    const environments = apiEnvironments();
    const threads = functionThreads();
    const fns = new Map<FunctionName, LocalFunction>();
    const pools: EnvironmentPool[] = [];
    const fn = (name: FunctionName) => {
      let f = fns.get(name);
      if (!f) {
        const pool =
          environments !== undefined
            ? environmentPool(name, { maxEnvironments: environments })
            : threads.has(name)
              ? environmentPool(name, {
                  maxEnvironments: threads.get(name) ?? 1,
                  invocationsPerEnvironment: Number.POSITIVE_INFINITY,
                })
              : undefined;
        if (pool) pools.push(pool);
        f = pool ?? localFunction(name);
        fns.set(name, f);
      }
      return f;
    };
    started.push({ stop: () => Promise.all(pools.map((p) => p.stop())).then(() => {}) });

    // One key for both APIs, as one usage plan holds both stages in AWS.
    const apiKey = options.apiKey ?? process.env.TIDEMARK_API_KEY;
    // Before the mappings start: the broadcaster reads the management endpoint from its environment.
    const apiPort = options.port ?? 3000;
    const webSocket = new LocalWebSocketGateway({
      port: options.webSocketPort ?? (apiPort === 0 ? 0 : apiPort + webSocketApi.localPortOffset),
      functionFor: fn,
      log,
      ...(apiKey ? { apiKey } : {}),
    });
    const live = await webSocket.start();
    started.push(webSocket);
    process.env[webSocketApi.managementEndpointEnvVar] = live.managementEndpoint;
    process.env[webSocketApi.urlEnvVar] = live.url;

    let mappings: ReadonlyMap<string, LocalEventSourceMapping> = new Map();
    const mode = options.mappings ?? "process";
    let child: MappingsProcesses | undefined;
    if (mode === "process") {
      child = await startMappingsProcesses(log);
      started.push(child);
    }
    if (mode === "inline") {
      const running = await startMappings(log);
      started.push(running);
      mappings = running.kafka;
    }

    // Inline mappings share this process's meter: everything is reported under `api` then.
    const usageByProcess = async () => ({
      api: pools.reduce((u, p) => addUsage(u, p.usage()), usageMeter.snapshot()),
      mappings: child ? (await child.report()).usage : emptyUsage(),
    });

    const gateway = new LocalApiGateway({
      port: apiPort,
      functionFor: (route: RouteSpec) => fn(route.function),
      log,
      ...(apiKey ? { apiKey } : {}),
    });
    const url = await gateway.start();
    started.push(gateway);

    return {
      url,
      liveUrl: live.url,
      webSocket,
      endpoints,
      services,
      mappings,
      names,
      usageByProcess,
      async usage() {
        const { api, mappings } = await usageByProcess();
        return addUsage(api, mappings);
      },
      async memory() {
        const api = process.memoryUsage().rss;
        if (!child) return { api };
        const byFunction = await child.rssByFunction();
        return { api, mappings: Object.values(byFunction).reduce((a, b) => a + b, 0), byFunction };
      },
      async pauseConsumers() {
        child?.signal("SIGSTOP");
      },
      async resumeConsumers() {
        child?.signal("SIGCONT");
      },
      consumerPids() {
        return child?.pids() ?? {};
      },
      async stop() {
        for (const s of started.reverse()) await s.stop().catch(() => undefined);
        await stopServices();
      },
    };
  } catch (error) {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    await stopServices();
    throw error;
  }
}

interface MappingsProcess {
  readonly functionName: FunctionName;
  /** The function, numbered from its second environment on (`aggregate#2`). */
  readonly label: string;
  readonly pid: number | undefined;
  signal(signal: NodeJS.Signals): void;
  /** A fresh report (the last periodic one if the process does not answer within 2 s). */
  report(): Promise<MappingsProcessReport>;
  stop(): Promise<void>;
}

interface MappingsProcesses {
  /** Usage summed over the processes (each answers within 2 s or gives its last report). */
  report(): Promise<MappingsProcessReport>;
  rssByFunction(): Promise<Record<string, number>>;
  signal(signal: NodeJS.Signals): void;
  pids(): Record<string, number>;
  stop(): Promise<void>;
}

/** The consumer functions: every function an event-source or table-stream mapping invokes. */
const consumerFunctions = [
  ...new Set<FunctionName>([...eventSourceMappings, ...tableStreamMappings].map((m) => m.function)),
];

/**
 * Consumers off the freshness path (accepted → counted in GET /stats): their processes run at a
 * lower CPU priority, so that on a busy machine they wait rather than the aggregator (see
 * local/priority.ts). The archive has the most work per event and must still drain its lag
 * within seconds of a load, so it yields less ("heavy": half the niceness) than the stats
 * publisher and the broadcaster ("light").
 */
const BACKGROUND_FUNCTIONS: ReadonlyMap<FunctionName, "light" | "heavy"> = new Map([
  ["archive", "heavy"],
  ["publish", "light"],
  ["broadcast", "light"],
]);

/**
 * Execution environments (processes) of a consumer function. In AWS a Kafka mapping invokes a
 * function concurrently, one invocation per partition at a time, up to its reserved concurrency:
 * locally the function's mappings run in as many processes as that and this machine's cores
 * allow, all members of the mapping's consumer group, so Kafka splits the partitions between
 * them (each partition still in order, one batch at a time). A function fed by a table stream
 * keeps one process: every poller of a stream reads every shard.
 * `TIDEMARK_CONSUMER_ENVIRONMENTS=1` runs one process per function.
 */
function environmentsOf(fn: FunctionName): number {
  if (tableStreamMappings.some((m) => m.function === fn)) return 1;
  const cap = Number(process.env.TIDEMARK_CONSUMER_ENVIRONMENTS ?? availableParallelism());
  if (!Number.isInteger(cap) || cap < 1)
    throw new Error(
      `TIDEMARK_CONSUMER_ENVIRONMENTS must be a whole number ≥ 1, not '${process.env.TIDEMARK_CONSUMER_ENVIRONMENTS}'`,
    );
  const spec: FunctionSpec = functions[fn];
  return Math.max(1, Math.min(spec.reservedConcurrency ?? 1, cap));
}

/**
 * The consumer functions' processes, as in AWS where each function runs in execution
 * environments of its own: the aggregator never waits behind the archive's gzip or the
 * publisher's reads on one event loop, and each process's heap is held to its function's memory.
 */
async function startMappingsProcesses(log: (line: string) => void): Promise<MappingsProcesses> {
  const wanted = consumerFunctions.flatMap((f) =>
    Array.from({ length: environmentsOf(f) }, (_, i) => ({ fn: f, label: i === 0 ? f : `${f}#${i + 1}` })),
  );
  const started = await Promise.allSettled(wanted.map((w) => startMappingsProcess(w.fn, w.label, log)));
  const children = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = started.find((r) => r.status === "rejected");
  if (failed) {
    await Promise.all(children.map((c) => c.stop()));
    throw failed.reason;
  }
  for (const c of children) {
    const weight = BACKGROUND_FUNCTIONS.get(c.functionName);
    if (weight && c.pid && !deprioritize(c.pid, backgroundNiceness(weight)))
      log(`[mappings] could not lower the priority of ${c.label} (pid ${c.pid})`);
  }
  return {
    async report() {
      const reports = await Promise.all(children.map((c) => c.report()));
      return {
        kind: "usage",
        usage: reports.reduce((sum, r) => addUsage(sum, r.usage), emptyUsage()),
        rss: reports.reduce((sum, r) => sum + r.rss, 0),
      };
    },
    async rssByFunction() {
      const reports = await Promise.all(
        children.map(async (c) => [c.label, (await c.report()).rss] as const),
      );
      return Object.fromEntries(reports);
    },
    signal(signal) {
      for (const c of children) c.signal(signal);
    },
    pids() {
      return Object.fromEntries(children.flatMap((c) => (c.pid ? [[c.label, c.pid] as const] : [])));
    },
    async stop() {
      await Promise.all(children.map((c) => c.stop()));
    },
  };
}

/**
 * Forks `local/mappings-main.ts` for one function's mappings, with this process's (function)
 * environment; resolves when it consumes.
 */
async function startMappingsProcess(
  functionName: FunctionName,
  label: string,
  log: (line: string) => void,
): Promise<MappingsProcess> {
  const child = fork(fileURLToPath(new URL("./mappings-main.ts", import.meta.url)), [functionName], {
    execArgv: [
      "--import",
      "tsx",
      // The heap held to what the function has in AWS (lib/topology.ts memoryMb, less a quarter
      // for buffers): V8 otherwise lets garbage pile up to a quarter of the machine's memory
      // before collecting it, which looks like growth with the events processed (issue 10.5).
      `--max-old-space-size=${Math.floor((functions[functionName].memoryMb * 3) / 4)}`,
      // A larger young generation: the consumers allocate a short-lived copy of every record
      // (MSK event, decoded value, parsed event), and with V8's default 16 MB semi-space most
      // scavenges promote it. Measured: GC 19 % → 14 % of the aggregate+archive process's
      // CPU. A local setting only: the functions in AWS keep Node's defaults (NODE_OPTIONS
      // would carry it there, unmeasured).
      `--max-semi-space-size=${process.env.TIDEMARK_MAPPINGS_SEMI_SPACE_MB ?? "64"}`,
      // TIDEMARK_MAPPINGS_CPU_PROF=<dir>: a V8 CPU profile of the consumers (docs/performance.md).
      ...(process.env.TIDEMARK_MAPPINGS_CPU_PROF
        ? ["--cpu-prof", `--cpu-prof-dir=${process.env.TIDEMARK_MAPPINGS_CPU_PROF}`]
        : []),
    ],
    env: process.env,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let last: MappingsProcessReport = { kind: "usage", usage: emptyUsage(), rss: 0 };
  const waiting = new Map<number, (r: MappingsProcessReport) => void>();
  let nextId = 0;
  await new Promise<void>((resolve, reject) => {
    child.on("message", (m: { kind: string; line?: string }) => {
      if (m.kind === "ready") resolve();
      if (m.kind === "log" && m.line) log(m.line);
      if (m.kind === "usage") {
        const parsed = MappingsProcessReportSchema.safeParse(m);
        if (!parsed.success) return log(`mappings process: malformed usage report: ${parsed.error.message}`);
        last = parsed.data;
        if (last.id !== undefined) waiting.get(last.id)?.(last);
      }
    });
    child.once("exit", (code) =>
      reject(new Error(`event-source mappings process of ${functionName} exited with ${code}`)),
    );
  });
  return {
    functionName,
    label,
    pid: child.pid,
    signal(signal) {
      if (child.exitCode === null) child.kill(signal);
    },
    report() {
      if (!child.connected) return Promise.resolve(last);
      const id = nextId++;
      return new Promise((resolve) => {
        const done = (r: MappingsProcessReport) => {
          clearTimeout(timer);
          waiting.delete(id);
          resolve(r);
        };
        const timer = setTimeout(() => done(last), 2_000);
        waiting.set(id, done);
        child.send({ kind: "usage?", id });
      });
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

import { fork } from "node:child_process";
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
  type FunctionName,
  functions,
  type RouteSpec,
  tables,
  topicEnvVar,
  topics,
  webSocketApi,
} from "../lib/topology.ts";
import { LocalApiGateway } from "./api-gateway.ts";
import { bootstrap, localNames } from "./bootstrap.ts";
import type { LocalEventSourceMapping } from "./event-source-mapping.ts";
import { type LocalFunction, localFunction } from "./lambda-runtime.ts";
import { startMappings } from "./mappings.ts";
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
  readonly freshData?: boolean;
  readonly log?: (line: string) => void;
  /**
   * The API key the routes that require one (`apiKeyRequired`) must present in `x-api-key`, as
   * API Gateway's usage plan does. @default `TIDEMARK_API_KEY` from the environment, or no check
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
  /** RSS in bytes of this process (the API functions) and of the mappings process if there is one. */
  memory(): Promise<{ readonly api: number; readonly mappings?: number }>;
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
  const services =
    options.services ?? (await startServices({ log, ...(options.freshData ? { fresh: true } : {}) }));
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

    const fns = new Map<FunctionName, LocalFunction>();
    const fn = (name: FunctionName) => {
      let f = fns.get(name);
      if (!f) {
        f = localFunction(name);
        fns.set(name, f);
      }
      return f;
    };

    // Before the mappings start: the broadcaster reads the management endpoint from its environment.
    const apiPort = options.port ?? 3000;
    const webSocket = new LocalWebSocketGateway({
      port: options.webSocketPort ?? (apiPort === 0 ? 0 : apiPort + webSocketApi.localPortOffset),
      functionFor: fn,
      log,
    });
    const live = await webSocket.start();
    started.push(webSocket);
    process.env[webSocketApi.managementEndpointEnvVar] = live.managementEndpoint;
    process.env[webSocketApi.urlEnvVar] = live.url;

    let mappings: ReadonlyMap<string, LocalEventSourceMapping> = new Map();
    const mode = options.mappings ?? "process";
    let child: MappingsProcess | undefined;
    if (mode === "process") {
      child = await startMappingsProcess(log);
      started.push(child);
    }
    if (mode === "inline") {
      const running = await startMappings(log);
      started.push(running);
      mappings = running.kafka;
    }

    // Inline mappings share this process's meter: everything is reported under `api` then.
    const usageByProcess = async () => ({
      api: usageMeter.snapshot(),
      mappings: child ? (await child.report()).usage : emptyUsage(),
    });

    const apiKey = options.apiKey ?? process.env.TIDEMARK_API_KEY;
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
        return child ? { api, mappings: (await child.report()).rss } : { api };
      },
      async stop() {
        for (const s of started.reverse()) await s.stop().catch(() => undefined);
        if (ownsServices) await services.stop();
      },
    };
  } catch (error) {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    if (ownsServices) await services.stop();
    throw error;
  }
}

/** Heap of the mappings process: the aggregate function's memory in AWS, less a quarter for buffers. */
const MAPPINGS_HEAP_MB = Math.floor((functions.aggregate.memoryMb * 3) / 4);

interface MappingsProcess {
  /** A fresh report (the last periodic one if the process does not answer within 2 s). */
  report(): Promise<MappingsProcessReport>;
  stop(): Promise<void>;
}

/** Forks `local/mappings-main.ts` with this process's (function) environment; resolves when it consumes. */
async function startMappingsProcess(log: (line: string) => void): Promise<MappingsProcess> {
  const child = fork(fileURLToPath(new URL("./mappings-main.ts", import.meta.url)), [], {
    // The consumers' heap held to what one consumer function has in AWS (lib/topology.ts
    // memoryMb): V8 otherwise lets garbage pile up to a quarter of the machine's memory before
    // collecting it, which looks like growth with the events processed (issue 10.5).
    execArgv: [
      "--import",
      "tsx",
      `--max-old-space-size=${MAPPINGS_HEAP_MB}`,
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
    child.once("exit", (code) => reject(new Error(`event-source mappings process exited with ${code}`)));
  });
  return {
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

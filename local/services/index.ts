import { type ChildProcess, spawn } from "node:child_process";
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { ListBucketsCommand, S3Client } from "@aws-sdk/client-s3";
import { Kafka, logLevel } from "kafkajs";
import { localS3Options } from "../../lib/adapters/s3-client.ts";
import { backgroundNiceness, deprioritize } from "../priority.ts";
// @ts-expect-error -- plain ESM script shared with `npm run services:install`, no type declarations
import { installServices, serviceLibDir } from "./install.mjs";

/**
 * The real backing services of the local runtime, each a JVM fetched from Maven Central:
 * Apache Kafka (KRaft, single node), AWS DynamoDB Local and S3Proxy. Started in parallel,
 * health-checked through their own protocols, and never left behind: stop() on request, on
 * SIGINT/SIGTERM/exit of this process, and a watchdog that kills them if this process dies
 * without a chance to clean up (SIGKILL). See docs/local-runtime.md.
 */
export interface ServiceEndpoints {
  kafkaBrokers: string[];
  dynamodbEndpoint: string;
  s3Endpoint: string;
}

export interface ServiceHealth {
  ok: boolean;
  detail: string;
}

export type ServiceName = "kafka" | "dynamodb" | "s3";

export interface RunningServices {
  endpoints: ServiceEndpoints;
  health(): Promise<Record<ServiceName, ServiceHealth>>;
  /** RSS in bytes of each service process this module started. */
  memory(): Promise<Record<string, number>>;
  /** Process ids of the service processes this module started and that still run. */
  pids(): Record<string, number>;
  /** Stops everything it started and waits for the processes to exit. */
  stop(): Promise<void>;
  /** Stops one service this module started (its data stays), e.g. to test a broker outage. */
  stopService(name: ServiceName): Promise<void>;
  /** Starts a service stopped by stopService again, on the same data, and waits until healthy. */
  startService(name: ServiceName): Promise<void>;
}

export interface StartOptions {
  /** Where the services keep their data (default `.cache/data`). */
  readonly dataDir?: string;
  /**
   * Wipe the data first. Only with a `dataDir` of its own: the default one holds what `npm start`
   * keeps across restarts (stats, archive, rules), which a test run must not delete.
   */
  readonly fresh?: boolean;
  readonly log?: (line: string) => void;
  /** How long each service may take to become healthy (default 90 s). */
  readonly startTimeoutMs?: number;
}

const repoRoot = resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");
const cacheRoot = join(repoRoot, ".cache");

function port(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value <= 0 || value > 65535) throw new Error(`${name} must be a TCP port`);
  return value;
}

/** Ports (overridable) chosen away from the common defaults (9092, 8000, 9090, 4566). */
export function configuredEndpoints(): ServiceEndpoints & { external: Record<ServiceName, boolean> } {
  const kafkaPort = port("TIDEMARK_KAFKA_PORT", 19092);
  const dynamoPort = port("TIDEMARK_DYNAMODB_PORT", 18000);
  const s3Port = port("TIDEMARK_S3_PORT", 19090);
  const kafkaExternal = process.env.TIDEMARK_KAFKA_BROKERS;
  const dynamoExternal = process.env.TIDEMARK_DYNAMODB_ENDPOINT;
  const s3External = process.env.TIDEMARK_S3_ENDPOINT;
  return {
    kafkaBrokers: kafkaExternal ? kafkaExternal.split(",").map((b) => b.trim()) : [`127.0.0.1:${kafkaPort}`],
    dynamodbEndpoint: dynamoExternal ?? `http://127.0.0.1:${dynamoPort}`,
    s3Endpoint: s3External ?? `http://127.0.0.1:${s3Port}`,
    external: { kafka: !!kafkaExternal, dynamodb: !!dynamoExternal, s3: !!s3External },
  };
}

interface Started {
  readonly name: ServiceName;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly logFile: string;
}

function servicePort(name: ServiceName, endpoints: ServiceEndpoints): string {
  if (name === "kafka") return endpoints.kafkaBrokers[0]?.split(":")[1] ?? "0";
  return new URL(name === "dynamodb" ? endpoints.dynamodbEndpoint : endpoints.s3Endpoint).port;
}

const pidFile = (name: ServiceName, port: string) => join(cacheRoot, "run", `${name}-${port}.pid`);

/** Kills a service left running on this port by an earlier process that died without stopping it. */
function killStale(name: ServiceName, port: string): void {
  const file = pidFile(name, port);
  if (!existsSync(file)) return;
  const pid = Number(readFileSync(file, "utf8"));
  rmSync(file, { force: true });
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    if (cmdline.includes(`tidemark.service=${name}`)) process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

function kafkaProperties(dataDir: string, brokerPort: number): string {
  return [
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.voters=1@127.0.0.1:${brokerPort + 1}`,
    `listeners=PLAINTEXT://127.0.0.1:${brokerPort},CONTROLLER://127.0.0.1:${brokerPort + 1}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${brokerPort}`,
    "controller.listener.names=CONTROLLER",
    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "inter.broker.listener.name=PLAINTEXT",
    `log.dirs=${join(dataDir, "logs")}`,
    "num.partitions=1",
    "offsets.topic.replication.factor=1",
    "offsets.topic.num.partitions=8",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "share.coordinator.state.topic.replication.factor=1",
    "share.coordinator.state.topic.min.isr=1",
    "min.insync.replicas=1",
    "auto.create.topics.enable=false",
    "group.initial.rebalance.delay.ms=0",
    "num.network.threads=2",
    "num.io.threads=4",
    "",
  ].join("\n");
}

const log4j2 = `Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
`;

/**
 * A KRaft cluster id: 16 random bytes, base64url, as Kafka's own `Uuid.randomUuid()` makes them,
 * which also draws again when the text starts with "-": `kafka-storage format -t -Xyz…` reads such
 * an id as an option and fails ("argument --cluster-id/-t: expected one argument"), one fresh data
 * directory in 64.
 */
export function kafkaClusterId(): string {
  for (;;) {
    const id = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

/**
 * Where DynamoDB Local keeps its tables: SQLite files in the data dir (kept across restarts), or
 * with `TIDEMARK_DYNAMODB_IN_MEMORY=1` in memory, gone when it stops. On disk, each of its writes
 * waits for SQLite on the disk the broker also writes to; in memory, GET /stats' p95 under load
 * was about a third lower (docs/performance.md, session 9).
 */
export const dynamoDbStorageArgs = (dataDir: string, env: NodeJS.ProcessEnv = process.env) =>
  env.TIDEMARK_DYNAMODB_IN_MEMORY === "1" ? ["-inMemory"] : ["-dbPath", dataDir];

/**
 * The JIT compiler the local services' JVMs run. By default the client compiler alone
 * (`-XX:TieredStopAtLevel=1`): with tiered compilation, C2 took half of the broker's and of
 * DynamoDB Local's CPU in their first minutes (their C1 and C2 compiler threads, per-thread CPU
 * after a bench), CPU that two shared cores take from the pipeline. With C1 alone they spent
 * 55-60 % less CPU per event under load, and about as much on a quiet stream once the tiered
 * JVMs had compiled what they run (docs/performance.md, session 18). `TIDEMARK_SERVICES_JIT=tiered`
 * restores the JVM's default (C1, then C2 for hot code): it may pay in a service left running
 * for hours under load.
 */
export function serviceJitArgs(env: NodeJS.ProcessEnv = process.env): string[] {
  const jit = env.TIDEMARK_SERVICES_JIT ?? "c1";
  if (jit === "c1") return ["-XX:TieredStopAtLevel=1"];
  if (jit === "tiered") return [];
  throw new Error(`TIDEMARK_SERVICES_JIT must be 'c1' or 'tiered', not '${jit}'`);
}

export function javaCommand(
  name: ServiceName,
  dataDir: string,
  endpoints: ServiceEndpoints,
): { args: string[]; prepare?: (log: (line: string) => void) => Promise<void> } {
  const lib = serviceLibDir(name, cacheRoot) as string;
  const marker = `-Dtidemark.service=${name}`;
  const jit = serviceJitArgs();
  if (name === "kafka") {
    const brokerPort = Number(endpoints.kafkaBrokers[0]?.split(":")[1] ?? 19092);
    const config = join(dataDir, "server.properties");
    const logConfig = join(dataDir, "log4j2.yaml");
    return {
      prepare: async () => {
        mkdirSync(dataDir, { recursive: true });
        writeFileSync(config, kafkaProperties(dataDir, brokerPort));
        writeFileSync(logConfig, log4j2);
        if (!existsSync(join(dataDir, "logs", "meta.properties"))) {
          const clusterId = kafkaClusterId();
          await run("java", [
            "-cp",
            `${lib}/*`,
            `-Dlog4j2.configurationFile=${logConfig}`,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            clusterId,
            "-c",
            config,
          ]);
        }
      },
      args: [
        marker,
        "-Xms256m",
        "-Xmx1g",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        ...jit,
        `-Dlog4j2.configurationFile=${logConfig}`,
        "-cp",
        `${lib}/*`,
        "kafka.Kafka",
        config,
      ],
    };
  }
  if (name === "dynamodb") {
    const dynamoPort = new URL(endpoints.dynamodbEndpoint).port;
    return {
      prepare: async () => {
        mkdirSync(dataDir, { recursive: true });
      },
      args: [
        marker,
        "-Xmx512m",
        "-XX:+UseSerialGC",
        ...jit,
        `-Dsqlite4java.library.path=${lib}`,
        "-cp",
        `${lib}/*`,
        "com.amazonaws.services.dynamodbv2.local.main.ServerRunner",
        ...dynamoDbStorageArgs(dataDir),
        "-sharedDb",
        "-port",
        dynamoPort,
      ],
    };
  }
  const s3Port = new URL(endpoints.s3Endpoint).port;
  const properties = join(dataDir, "s3proxy.properties");
  const logConfig = join(dataDir, "logback.xml");
  return {
    prepare: async (log) => {
      const legacy = s3MockBuckets(dataDir);
      if (legacy.length > 0)
        log(
          `[services] ${join(dataDir, legacy[0] ?? "")}${legacy.length > 1 ? ` (and ${legacy.length - 1} more)` : ""} holds objects in S3Mock's layout, from before S3Proxy: the S3 server does not read them (delete the directory, or replay events.raw into the archive)`,
        );
      mkdirSync(join(dataDir, "buckets"), { recursive: true });
      writeFileSync(properties, s3ProxyProperties(join(dataDir, "buckets"), s3Port));
      writeFileSync(logConfig, s3ProxyLogback);
    },
    args: [
      marker,
      "-Xmx512m",
      "-XX:+UseSerialGC",
      ...jit,
      `-Dlogback.configurationFile=${logConfig}`,
      "-cp",
      // The version is pinned once, in local/services/s3/pom.xml.
      `${lib}/*`,
      "org.gaul.s3proxy.Main",
      "--properties",
      properties,
    ],
  };
}

/** Bucket directories S3Mock (the local S3 server before S3Proxy) left in the data directory. */
function s3MockBuckets(dataDir: string): string[] {
  if (!existsSync(dataDir)) return [];
  return readdirSync(dataDir, { withFileTypes: true })
    .filter(
      (d) =>
        d.isDirectory() && d.name !== "buckets" && existsSync(join(dataDir, d.name, "bucketMetadata.json")),
    )
    .map((d) => d.name);
}

/**
 * S3Proxy over the filesystem-nio2 store: one file per object under `<bucket>/<key>`, user
 * metadata in extended attributes. No authorization locally (requests are still signed by the SDK;
 * the signature is not checked), as with DynamoDB Local.
 */
function s3ProxyProperties(baseDir: string, port: string): string {
  return [
    `s3proxy.endpoint=http://127.0.0.1:${port}`,
    "s3proxy.authorization=none",
    "jclouds.provider=filesystem-nio2",
    `jclouds.filesystem.basedir=${baseDir}`,
    "jclouds.identity=local",
    "jclouds.credential=local",
    "",
  ].join("\n");
}

// Jetty and jclouds log every request at DEBUG by default: that alone costs CPU under load.
const s3ProxyLogback = `<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>[%d] %level %msg (%logger)%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
</configuration>
`;

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolvePromise() : reject(new Error(`${command} exited ${code}: ${output.slice(-2000)}`)),
    );
  });
}

async function probe(name: ServiceName, endpoints: ServiceEndpoints): Promise<string> {
  if (name === "kafka") {
    const admin = new Kafka({
      clientId: "tidemark-health",
      brokers: endpoints.kafkaBrokers,
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
      connectionTimeout: 1_000,
    }).admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      return `${cluster.brokers.length} broker(s) at ${endpoints.kafkaBrokers.join(",")}`;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }
  const credentials = { accessKeyId: "local", secretAccessKey: "local" };
  if (name === "dynamodb") {
    const client = new DynamoDBClient({
      region: "us-east-1",
      endpoint: endpoints.dynamodbEndpoint,
      credentials,
      maxAttempts: 1,
    });
    try {
      const out = await client.send(new ListTablesCommand({}));
      return `${out.TableNames?.length ?? 0} table(s) at ${endpoints.dynamodbEndpoint}`;
    } finally {
      client.destroy();
    }
  }
  const client = new S3Client({
    region: "us-east-1",
    ...localS3Options(endpoints.s3Endpoint),
    credentials,
    maxAttempts: 1,
  });
  try {
    const out = await client.send(new ListBucketsCommand({}));
    return `${out.Buckets?.length ?? 0} bucket(s) at ${endpoints.s3Endpoint}`;
  } finally {
    client.destroy();
  }
}

async function health(endpoints: ServiceEndpoints): Promise<Record<ServiceName, ServiceHealth>> {
  const names: ServiceName[] = ["kafka", "dynamodb", "s3"];
  const results = await Promise.all(
    names.map(async (name) => {
      try {
        return [name, { ok: true, detail: await probe(name, endpoints) }] as const;
      } catch (error) {
        return [name, { ok: false, detail: error instanceof Error ? error.message : String(error) }] as const;
      }
    }),
  );
  return Object.fromEntries(results) as Record<ServiceName, ServiceHealth>;
}

async function waitHealthy(
  name: ServiceName,
  endpoints: ServiceEndpoints,
  timeoutMs: number,
  started?: Started,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (started && started.child.exitCode !== null) break;
    try {
      await probe(name, endpoints);
      return;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  const tail =
    started && existsSync(started.logFile) ? (await readFile(started.logFile, "utf8")).slice(-3000) : "";
  throw new Error(
    `${name} did not become healthy${started?.child.exitCode != null ? ` (exited ${started.child.exitCode})` : ` within ${timeoutMs} ms`}: ${last}${tail ? `\n--- ${started?.logFile} ---\n${tail}` : ""}`,
  );
}

/** A shell loop that kills the services if this process disappears without stopping them. */
function startWatchdog(pids: number[]): ChildProcess {
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; kill -9 ${pids.join(" ")} 2>/dev/null; exit 0`;
  const watchdog = spawn("sh", ["-c", script], { stdio: "ignore", detached: true });
  watchdog.unref();
  return watchdog;
}

/** Where `npm start` keeps the services' data across restarts. */
export const DEFAULT_DATA_DIR = join(cacheRoot, "data");

export async function startServices(options: StartOptions = {}): Promise<RunningServices> {
  const log = options.log ?? (() => undefined);
  const dataRoot = resolve(options.dataDir ?? DEFAULT_DATA_DIR);
  // The integration tests' setup once wiped this directory: `npm test` deleted the developer's
  // local stats, archive and rules, and left the tests' rules in it.
  if (options.fresh && dataRoot === resolve(DEFAULT_DATA_DIR))
    throw new Error(
      `startServices: fresh data needs a dataDir of its own; ${DEFAULT_DATA_DIR} holds npm start's data`,
    );
  const { external, ...endpoints } = configuredEndpoints();
  const toStart = (["kafka", "dynamodb", "s3"] as const).filter((n) => !external[n]);
  if (toStart.length > 0) installServices({ cacheRoot, log });
  mkdirSync(join(cacheRoot, "run"), { recursive: true });
  mkdirSync(join(cacheRoot, "logs"), { recursive: true });

  const started: Started[] = [];
  const watchdogs: ChildProcess[] = [];
  let stopping: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    void stop().finally(() => {
      process.off(signal, onSignal);
      process.kill(process.pid, signal);
    });
  };
  const onExit = () => {
    for (const s of started) if (s.child.exitCode === null) s.child.kill("SIGKILL");
  };
  const timeout = options.startTimeoutMs ?? 90_000;

  async function launch(name: ServiceName, wipe: boolean): Promise<Started> {
    const port = servicePort(name, endpoints);
    killStale(name, port);
    const dataDir = join(dataRoot, name);
    if (wipe) rmSync(dataDir, { recursive: true, force: true });
    const command = javaCommand(name, dataDir, endpoints);
    await command.prepare?.(log);
    const logFile = join(cacheRoot, "logs", `${name}-${port}.log`);
    const out = createWriteStream(logFile);
    const child = spawn("java", command.args, { cwd: dataDir, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    if (child.pid) {
      writeFileSync(pidFile(name, port), String(child.pid));
      watchdogs.push(startWatchdog([child.pid]));
    }
    const entry = { name, child, exited, logFile, port };
    started.push(entry);
    log(`[services] starting ${name} (pid ${child.pid}, log ${logFile})`);
    return entry;
  }

  /** The S3 server serves only the archive, off the freshness path (local/priority.ts). */
  function yieldIfBackground(s: Started): void {
    if (s.name === "s3" && s.child.pid) deprioritize(s.child.pid, backgroundNiceness("heavy"));
  }

  async function halt(s: Started & { port: string }): Promise<void> {
    if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill("SIGTERM");
    const timer = setTimeout(() => s.child.kill("SIGKILL"), 15_000);
    await s.exited;
    clearTimeout(timer);
    rmSync(pidFile(s.name, s.port), { force: true });
  }

  async function stop(): Promise<void> {
    stopping ??= (async () => {
      await Promise.all((started as (Started & { port: string })[]).map(halt));
      for (const w of watchdogs) w.kill("SIGKILL");
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      process.off("exit", onExit);
    })();
    return stopping;
  }

  try {
    await Promise.all(toStart.map((name) => launch(name, options.fresh === true)));
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    process.on("exit", onExit);
    await Promise.all(
      (["kafka", "dynamodb", "s3"] as const).map((name) =>
        waitHealthy(
          name,
          endpoints,
          timeout,
          started.find((s) => s.name === name),
        ),
      ),
    );
    for (const s of started) yieldIfBackground(s);
    log(
      `[services] healthy: kafka ${endpoints.kafkaBrokers.join(",")}, dynamodb ${endpoints.dynamodbEndpoint}, s3 ${endpoints.s3Endpoint}`,
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const current = (name: ServiceName) =>
    [...started].reverse().find((s) => s.name === name) as (Started & { port: string }) | undefined;
  return {
    endpoints,
    health: () => health(endpoints),
    async memory() {
      const out: Record<string, number> = {};
      for (const s of started) {
        if (s.child.exitCode !== null || s.child.signalCode !== null) continue;
        try {
          const status = await readFile(`/proc/${s.child.pid}/status`, "utf8");
          const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
          out[s.name] = kb * 1024;
        } catch {
          out[s.name] = 0;
        }
      }
      return out;
    },
    pids() {
      const out: Record<string, number> = {};
      for (const s of started) {
        if (s.child.exitCode === null && s.child.signalCode === null && s.child.pid)
          out[s.name] = s.child.pid;
      }
      return out;
    },
    stop,
    async stopService(name) {
      const s = current(name);
      if (!s) throw new Error(`${name} was not started by this process`);
      await halt(s);
    },
    async startService(name) {
      const s = current(name);
      if (!s) throw new Error(`${name} was not started by this process`);
      if (s.child.exitCode === null && s.child.signalCode === null) return;
      const again = await launch(name, false);
      await waitHealthy(name, endpoints, timeout, again);
      yieldIfBackground(again);
    },
  };
}

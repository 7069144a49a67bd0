import { type ChildProcess, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { S3Client } from "@aws-sdk/client-s3";
import { Kafka, logLevel } from "kafkajs";
import { z } from "zod";
import { createDynamoDb } from "../lib/adapters/dynamodb-client.ts";
import { DuckDbEventsEngine } from "../lib/adapters/events-duckdb.ts";
import { localS3Options } from "../lib/adapters/s3-client.ts";
import {
  addUsage,
  s3PutClassRequests,
  type UsageSnapshot,
  usageMeter,
  usageSince,
} from "../lib/adapters/usage-meter.ts";
import { DynamoWindowStore } from "../lib/adapters/window-store.ts";
import type { StatsQuery } from "../lib/contract/api.ts";
import { ClosedWindowCache } from "../lib/pipeline/closed-windows.ts";
import { readStats } from "../lib/pipeline/stats-service.ts";
import { BUILT_IN_RULES } from "../lib/stream/rules.ts";
import { buckets, eventSourceMappings, topics } from "../lib/topology.ts";
import { startLocalStack } from "../local/stack.ts";

/**
 * `npm run bench`: the figures of brief section 7 and issues 10 and 12, measured in one run
 * against the local stack (docs/performance.md says what each figure means and how it is taken).
 *
 *   0. a raw kafkajs producer into the same broker (the client's and broker's ceiling);
 *   1. phase 1: batched POST /events as fast as it goes for BENCH_SECONDS, then until every
 *      accepted event is counted in GET /stats (end-to-end rate) and every consumer lag is 0;
 *   2. phase 2: paced at BENCH_PACED_FRACTION (0.8) × phase 1's end-to-end rate (or
 *      BENCH_PACED_RATE) for BENCH_PACED_SECONDS, with freshness probes and GET /stats latency;
 *   3. phase 3: a quiet stream at BENCH_QUIET_RATE (600 events/s) for BENCH_QUIET_SECONDS: a slice
 *      then holds about a hundred events, not thousands, so this is the write cost per event of
 *      real traffic at a low rate (a floor per slice), and the latencies with cores to spare;
 *   4. GET /events over the last hour.
 *
 * DynamoDB units and S3 requests come from the usage meters of the API and mappings processes
 * (lib/adapters/usage-meter.ts), diffed around each phase; analytics.stats rate and publish lag
 * from a subscriber process (bench/stats-worker.ts) started before the load.
 */
const Knobs = z.object({
  BENCH_SECONDS: z.coerce.number().positive().default(60),
  BENCH_RAW_SECONDS: z.coerce.number().nonnegative().default(15),
  /** The API alone (the consumers' processes stopped): its own capacity, for API / raw (0: skip). */
  BENCH_API_SECONDS: z.coerce.number().nonnegative().default(15),
  BENCH_PACED_SECONDS: z.coerce.number().positive().default(30),
  BENCH_PACED_FRACTION: z.coerce.number().positive().default(0.8),
  /** Fixed paced rate (events/s) instead of BENCH_PACED_FRACTION × the end-to-end rate. */
  BENCH_PACED_RATE: z.coerce.number().positive().optional(),
  BENCH_CONCURRENCY: z.coerce.number().int().positive().default(8),
  BENCH_BATCH: z.coerce.number().int().positive().max(10_000).default(1000),
  /**
   * Events per request in phase 2; default: what makes each lane send 5 requests a second (at
   * most BENCH_BATCH), so the paced load is smooth rather than a burst every few seconds.
   */
  BENCH_PACED_BATCH: z.coerce.number().int().positive().max(10_000).optional(),
  /** Phase 3, a quiet stream: its length (0: skip) and rate. */
  BENCH_QUIET_SECONDS: z.coerce.number().nonnegative().default(30),
  BENCH_QUIET_RATE: z.coerce.number().positive().default(600),
  /** How long after the load stops to wait for counts and lags before calling it a failure. */
  BENCH_DRAIN_TIMEOUT_SECONDS: z.coerce.number().positive().default(300),
  /**
   * User ids of the load: `short` (`user-<n>`) or `uuid` (a UUID per user, as many apps have
   * them). Per-user rules store a group per user and event, so their cost follows the ids' length.
   */
  BENCH_USER_IDS: z.enum(["short", "uuid"]).default("short"),
});
const knobs = Knobs.parse(process.env);

const pct = (xs: readonly number[], p: number) => {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
};
const fmt = (n: number | null | undefined, digits = 1) =>
  n !== null && n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : "n/a";
const int = (n: number | null | undefined) =>
  n !== null && n !== undefined && Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a";
const mib = (bytes: number | undefined) => (bytes === undefined ? Number.NaN : bytes / 1048576);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => console.log(line);

/** Event types unique to this run and phase, so counts in GET /stats are this phase's only. */
const runTag = `bench_${Date.now().toString(36)}`;
const loadTypes = (phase: string) => ["a", "b", "c", "d"].map((s) => `${runTag}_${phase}_${s}`);

const startedAt = performance.now();
// The stack's own lines that mean lost or delayed data are shown and counted, never dropped.
let stackProblems = 0;
const stack = await startLocalStack({
  port: 0,
  log: (line) => {
    if (!/fail|skipp|sent to|exceed|too large|crash/i.test(line)) return;
    stackProblems++;
    if (stackProblems <= 20) console.log(`  [stack] ${line}`);
  },
});
log(`stack up in ${fmt((performance.now() - startedAt) / 1000)} s at ${stack.url}; run ${runTag}`);
const kafka = new Kafka({
  clientId: "bench",
  brokers: stack.endpoints.kafkaBrokers,
  logLevel: logLevel.NOTHING,
});
const admin = kafka.admin();
await admin.connect();

async function lag(groupId: string, topic: string): Promise<number> {
  const [ends, committed] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId, topics: [topic] }),
  ]);
  const committedBy = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  let total = 0;
  for (const p of ends) {
    const c = committedBy.get(p.partition) ?? -1;
    const end = Number(p.high);
    total += c < 0 ? end - Number(p.low) : end - c;
  }
  return total;
}
const groups = eventSourceMappings.map((m) => ({
  id: m.id,
  group: m.consumerGroup,
  topic: topics[m.topic].name,
}));
const lags = async () =>
  Object.fromEntries(
    await Promise.all(groups.map(async (g) => [g.id, await lag(g.group, g.topic)] as const)),
  );

// 0. The broker's own capacity: a raw kafkajs producer with the pipeline's settings.
const rawTopic = "bench.raw";
if (!(await admin.listTopics()).includes(rawTopic)) {
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic: rawTopic, numPartitions: topics.eventsRaw.partitions }],
  });
}
const sample = JSON.stringify({
  event_id: "0190b7b0-0000-7000-8000-000000000000",
  user_id: "user-12345",
  session_id: "s-1234",
  event_type: "page_view",
  timestamp: Date.now(),
  page_url: "https://shop.example/p/123",
  properties: { amount: 12.5, currency: "EUR", product_id: "p-12" },
  metadata: { platform: "web" },
  received_at: Date.now(),
});
let rawRate = Number.NaN;
if (knobs.BENCH_RAW_SECONDS > 0) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  let rawSent = 0;
  const rawStart = performance.now();
  const rawDeadline = rawStart + knobs.BENCH_RAW_SECONDS * 1000;
  while (performance.now() < rawDeadline) {
    const messages = Array.from({ length: 5_000 }, (_, i) => ({
      key: `user-${(rawSent + i) % 50_000}`,
      value: sample,
    }));
    await producer.send({ topic: rawTopic, acks: -1, messages });
    rawSent += messages.length;
  }
  rawRate = rawSent / ((performance.now() - rawStart) / 1000);
  await producer.disconnect();
  log(
    `raw kafkajs producer: ${int(rawRate)} events/s (${rawSent} in ${knobs.BENCH_RAW_SECONDS} s, acks=all, idempotent)`,
  );
}

// The analytics.stats subscriber, started before any load.
const StatsWindow = z.object({
  kind: z.literal("window"),
  id: z.number(),
  messages: z.number(),
  lagP50: z.number().nullable(),
  lagP99: z.number().nullable(),
  lagMax: z.number().nullable(),
  /** Topic timestamp of the phase's last message (null: none). */
  lastAt: z.number().nullable(),
  malformed: z.number(),
  complete: z.boolean(),
});
type StatsWindow = z.infer<typeof StatsWindow>;
const statsWorker: ChildProcess = fork(fileURLToPath(new URL("./stats-worker.ts", import.meta.url)), [], {
  execArgv: ["--import", "tsx"],
  env: {
    ...process.env,
    BENCH_STATS: JSON.stringify({ brokers: stack.endpoints.kafkaBrokers, topic: topics.analyticsStats.name }),
  },
});
await new Promise<void>((resolve, reject) => {
  statsWorker.once("message", () => resolve());
  statsWorker.once("exit", (code) => reject(new Error(`stats subscriber exited with ${code}`)));
});
let windowId = 0;
/** analytics.stats figures since `from`, once the publisher is done (2 s without a message). */
function statsWindow(from: number): Promise<StatsWindow> {
  const id = windowId++;
  return new Promise((resolve) => {
    const onMessage = (m: unknown) => {
      const parsed = StatsWindow.safeParse(m);
      if (!parsed.success || parsed.data.id !== id) return;
      statsWorker.off("message", onMessage);
      resolve(parsed.data);
    };
    statsWorker.on("message", onMessage);
    statsWorker.send({ kind: "window", id, from, quietMs: 2_000 });
  });
}

async function memory() {
  const [services, own] = await Promise.all([stack.services.memory(), stack.memory()]);
  const byFunction = Object.entries(own.byFunction ?? {}).map(([f, rss]) => [`mappings.${f}`, rss] as const);
  return {
    ...services,
    api: own.api,
    mappings: own.mappings ?? Number.NaN,
    ...Object.fromEntries(byFunction),
  };
}

/** GET /stats requests made by the bench, so the API's read units can be given per request. */
let statsRequests = 0;
const getStats = (query: string) => {
  statsRequests++;
  return fetch(`${stack.url}/stats?${query}`);
};
/** What GET /stats counts of a probe's event type (the last hour, 5-minute windows). */
const probeCount = async (type: string): Promise<number> => {
  const stats = (await (await getStats(`event_type=${type}&interval=5m`)).json()) as { count?: number };
  return stats.count ?? 0;
};

/** Events of the given types counted in GET /stats over the last hour. */
async function counted(types: readonly string[]): Promise<number> {
  const counts = await Promise.all(
    types.map(async (t) => {
      const res = await getStats(`event_type=${t}&interval=1h`);
      if (res.status !== 200) throw new Error(`GET /stats ${res.status}: ${await res.text()}`);
      return ((await res.json()) as { count: number }).count;
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/**
 * CPU seconds (user + system) each process of the stack has used so far, from /proc/<pid>/stat
 * (clock ticks of 1/100 s, Linux's USER_HZ): the services, every consumer environment, the API
 * (this process: the API functions and the bench's bookkeeping) and the bench's stats subscriber.
 */
function cpuSecondsByProcess(): Record<string, number> {
  const pids: Record<string, number> = {
    ...stack.services.pids(),
    api: process.pid,
    ...stack.consumerPids(),
    ...(statsWorker.pid ? { "bench subscriber": statsWorker.pid } : {}),
  };
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out[name] = (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
      // gone
    }
  }
  return out;
}
const cpuSince = (after: Record<string, number>, before: Record<string, number>) =>
  Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));

/** "<total> in all: <process> <µs>, …", largest first. */
function cpuPerEvent(cpu: Record<string, number>, events: number): string {
  const total = Object.values(cpu).reduce((a, b) => a + b, 0);
  const parts = Object.entries(cpu)
    .sort((a, b) => b[1] - a[1])
    .map(([name, sec]) => `${name} ${fmt((sec / events) * 1e6, 0)}`)
    .join(", ");
  return `${fmt((total / events) * 1e6, 0)} in all: ${parts}`;
}

interface Done {
  kind: "done";
  accepted: number;
  seconds: number;
  latencies: number[];
  statuses: Record<string, number>;
  /** The load worker's own CPU seconds. */
  cpuSeconds: number;
}

/** Runs `bench/load-worker.ts` (a process of its own) and resolves with its report. */
function runLoadWorker(
  types: readonly string[],
  seconds: number,
  rate: number,
  batch: number,
): Promise<Done> {
  const worker = fork(fileURLToPath(new URL("./load-worker.ts", import.meta.url)), [], {
    execArgv: ["--import", "tsx"],
    env: {
      ...process.env,
      BENCH_LOAD: JSON.stringify({
        url: stack.url,
        seconds,
        concurrency: knobs.BENCH_CONCURRENCY,
        batch,
        rate,
        eventTypes: types,
        userIds: knobs.BENCH_USER_IDS,
      }),
    },
  });
  return new Promise<Done>((resolve, reject) => {
    worker.on("message", (m: { kind: string }) => {
      if (m.kind === "done") resolve(m as Done);
    });
    worker.once("exit", (code) => code !== 0 && reject(new Error(`load worker exited with ${code}`)));
  });
}

/**
 * One load phase from a separate process, with lag sampling and freshness probes (a fresh event
 * type posted every 200 ms and polled in GET /stats until counted: accepted → visible); after the
 * load, GET /stats is polled until it counts every accepted event and each mapping's lag is 0.
 */
async function phase(name: string, tag: string, loadSeconds: number, rate: number, batch: number) {
  log(
    `\n${name}: ${loadSeconds} s${rate ? ` paced at ${int(rate)} events/s` : " as fast as it goes"}, ${batch} events a request`,
  );
  const types = loadTypes(tag);
  const cpuBefore = cpuSecondsByProcess();
  const usageBefore = await stack.usageByProcess();
  const statsRequestsBefore = statsRequests;
  const wallStart = Date.now();
  const loadStart = performance.now();
  // The stack's main process hosts the API Gateway and the API's functions (and this bench's
  // probes): how long its event loop keeps a ready callback waiting is part of every latency here.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const done = runLoadWorker(types, loadSeconds, rate, batch);
  const freshness: number[] = [];
  const statsLatency: number[] = [];
  let probes = 0;
  let loading = true;
  const sampler = (async () => {
    while (loading) {
      await sleep(2000);
      log(`  t=${fmt((performance.now() - loadStart) / 1000, 0)}s lag ${JSON.stringify(await lags())}`);
    }
  })();
  const prober = (async () => {
    while (loading) {
      // A type of its own per probe and phase: a type counted already (before session 13 each
      // phase numbered its probes from 0 again, so a later phase's probes reused the earlier
      // ones' types) is "visible" at the first poll, and its freshness would be one GET.
      const type = `${runTag}_${tag}_probe_${probes}`;
      const countedBefore = await probeCount(type);
      if (countedBefore !== 0)
        throw new Error(`probe type ${type} is counted (${countedBefore}) before its probe was sent`);
      const res = await fetch(`${stack.url}/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user_id: `probe-${probes}`, event_type: type, timestamp: Date.now() }),
      });
      probes++;
      if (res.status !== 202) continue;
      const acceptedAt = performance.now();
      for (;;) {
        const t0 = performance.now();
        const count = await probeCount(type);
        statsLatency.push(performance.now() - t0);
        if (count >= 1) {
          freshness.push(performance.now() - acceptedAt);
          break;
        }
        if (performance.now() - acceptedAt > 30_000) break;
        await sleep(20);
      }
      await sleep(200);
    }
  })();
  const result = await done;
  const loadEnded = performance.now();
  loading = false;
  await Promise.all([sampler, prober]);
  loopDelay.disable();
  const apiLoopDelayMs = {
    p50: loopDelay.percentile(50) / 1e6,
    p99: loopDelay.percentile(99) / 1e6,
    max: loopDelay.max / 1e6,
  };

  // Drain: every accepted event counted in GET /stats, every consumer lag back to 0.
  const drainDeadline = loadEnded + knobs.BENCH_DRAIN_TIMEOUT_SECONDS * 1000;
  let total = 0;
  let countedAt = Number.NaN;
  const counting = (async () => {
    while (performance.now() < drainDeadline) {
      total = await counted(types);
      if (total >= result.accepted) {
        countedAt = performance.now();
        return;
      }
      await sleep(250);
    }
  })();
  const catchUp: Record<string, number> = {};
  const lagging = (async () => {
    while (Object.keys(catchUp).length < groups.length && performance.now() < drainDeadline) {
      for (const [id, v] of Object.entries(await lags())) {
        if (v === 0 && catchUp[id] === undefined) catchUp[id] = (performance.now() - loadEnded) / 1000;
      }
      await sleep(200);
    }
  })();
  await Promise.all([counting, lagging]);
  // The publisher (table-stream mapping) may still be behind: wait for it before the usage
  // snapshot, so its reads belong to this phase.
  const stats = await statsWindow(wallStart);
  const loadEndedAt = wallStart + (loadEnded - loadStart);
  const usageAfter = await stack.usageByProcess();
  const cpu = cpuSince(cpuSecondsByProcess(), cpuBefore);
  const byProcess = {
    api: usageSince(usageAfter.api, usageBefore.api),
    mappings: usageSince(usageAfter.mappings, usageBefore.mappings),
  };
  const ingestRate = result.accepted / result.seconds;
  const e2eSeconds = (countedAt - loadStart) / 1000;
  return {
    result,
    ingestRate,
    counted: total,
    e2eSeconds,
    e2eRate: result.accepted / e2eSeconds,
    freshness,
    statsLatency,
    apiLoopDelayMs,
    catchUp,
    probes,
    usage: addUsage(byProcess.api, byProcess.mappings),
    byProcess,
    /** CPU seconds per process from the load's start to the end of the drain. */
    cpu,
    statsRequests: statsRequests - statsRequestsBefore,
    stats,
    statsRate: stats.lastAt === null ? 0 : stats.messages / ((stats.lastAt - wallStart) / 1000),
    /** Seconds from the load's end to the phase's last analytics.stats message. */
    statsTail: stats.lastAt === null ? Number.NaN : (stats.lastAt - loadEndedAt) / 1000,
    events: result.accepted + probes,
  };
}
type Phase = Awaited<ReturnType<typeof phase>>;

// 0b. The API alone: the consumer functions' processes are stopped (SIGSTOP) while the API takes
// as much as it can, so its figure and API / raw compare like with like (the raw producer ran
// alone too); in AWS the consumers do not share the API's CPU. Then the consumers resume and
// drain that load before phase 1 starts.
let apiAlone: Done | undefined;
/** CPU seconds per process while the API ran alone (the consumers stopped), the load generator's too. */
let apiAloneCpu: Record<string, number> = {};
if (knobs.BENCH_API_SECONDS > 0) {
  log(`\nAPI alone: ${knobs.BENCH_API_SECONDS} s, consumers stopped, ${knobs.BENCH_BATCH} events a request`);
  await stack.pauseConsumers();
  const cpuBefore = cpuSecondsByProcess();
  try {
    apiAlone = await runLoadWorker(loadTypes("p0"), knobs.BENCH_API_SECONDS, 0, knobs.BENCH_BATCH);
    apiAloneCpu = { ...cpuSince(cpuSecondsByProcess(), cpuBefore), "load generator": apiAlone.cpuSeconds };
  } finally {
    await stack.resumeConsumers();
  }
  log(`  ${int(apiAlone.accepted / apiAlone.seconds)} events/s; draining it before phase 1 …`);
  const drainStart = performance.now();
  while (performance.now() - drainStart < knobs.BENCH_DRAIN_TIMEOUT_SECONDS * 1000) {
    if (Object.values(await lags()).every((v) => v === 0)) break;
    await sleep(500);
  }
  await statsWindow(Date.now());
  log(`  drained in ${fmt((performance.now() - drainStart) / 1000)} s`);
}
const apiAloneRate = apiAlone ? apiAlone.accepted / apiAlone.seconds : Number.NaN;

const memBefore = await memory();
const p1 = await phase("Phase 1, sustained load", "p1", knobs.BENCH_SECONDS, 0, knobs.BENCH_BATCH);
const memAfter1 = await memory();
if (!Number.isFinite(p1.e2eRate))
  log("phase 1: not every accepted event was counted; pacing at 80 % of ingest");
const pacedRate = Math.max(
  1,
  Math.round(
    knobs.BENCH_PACED_RATE ??
      knobs.BENCH_PACED_FRACTION * (Number.isFinite(p1.e2eRate) ? p1.e2eRate : p1.ingestRate),
  ),
);
const pacedBatch =
  knobs.BENCH_PACED_BATCH ??
  Math.min(knobs.BENCH_BATCH, Math.max(1, Math.round(pacedRate / (5 * knobs.BENCH_CONCURRENCY))));
const p2 = await phase("Phase 2, paced load", "p2", knobs.BENCH_PACED_SECONDS, pacedRate, pacedBatch);
const quietBatch = Math.min(
  knobs.BENCH_BATCH,
  Math.max(1, Math.round(knobs.BENCH_QUIET_RATE / (5 * knobs.BENCH_CONCURRENCY))),
);
const p3 =
  knobs.BENCH_QUIET_SECONDS > 0
    ? await phase("Phase 3, quiet load", "p3", knobs.BENCH_QUIET_SECONDS, knobs.BENCH_QUIET_RATE, quietBatch)
    : undefined;

// 3. GET /events over the last hour.
// The function's first request is its cold start (module load; locally also DuckDB's native
// module): taken on another event type, reported on its own, so the 20 timed requests measure
// queries, the first of them still reading the hour's archive objects for the first time.
const eventsColdStart = await (async () => {
  const t0 = performance.now();
  const res = await fetch(`${stack.url}/events?event_type=${loadTypes("p2")[1]}&limit=100`);
  await res.arrayBuffer();
  return performance.now() - t0;
})();
const eventsLatency: number[] = [];
for (let i = 0; i < 20; i++) {
  const t0 = performance.now();
  const res = await fetch(`${stack.url}/events?event_type=${loadTypes("p1")[0]}&limit=100`);
  await res.arrayBuffer();
  eventsLatency.push(performance.now() - t0);
}
// The same query straight through the local engine, both plans in this run: the whole hour in
// one round (the plan before session 6) and newest possible event first (rounds), each from a
// cold cache, then warm; archive objects fetched by the first query.
const eventsPlans: Record<string, { first: number; warm: number; fetched: number }> = {};
{
  const s3 = new S3Client({
    region: "us-east-1",
    ...localS3Options(stack.endpoints.s3Endpoint),
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });
  let fetched = 0;
  s3.middlewareStack.add(
    (next, context) => (args) => {
      if ((context as { commandName?: string }).commandName === "GetObjectCommand") fetched++;
      return next(args);
    },
    { step: "initialize" },
  );
  const to = Date.now() + 1;
  const query = { eventType: loadTypes("p1")[0] ?? "", from: to - 3_600_000, to, limit: 101 };
  for (const [plan, firstRound] of [
    ["whole hour", Number.POSITIVE_INFINITY],
    ["newest first", undefined],
  ] as const) {
    const engine = new DuckDbEventsEngine(s3, stack.names.buckets.archive, buckets.archive.prefix, {
      ...(firstRound !== undefined ? { firstRound } : {}),
    });
    await engine.prepare();
    const times: number[] = [];
    let firstFetched = 0;
    for (let i = 0; i < 6; i++) {
      fetched = 0;
      const t0 = performance.now();
      await engine.query(query);
      times.push(performance.now() - t0);
      if (i === 0) firstFetched = fetched;
    }
    eventsPlans[plan] = {
      first: times[0] ?? Number.NaN,
      warm: pct(times.slice(1), 50),
      fetched: firstFetched,
    };
  }
  s3.destroy();
}
// 3b. GET /stats' own reads over the last hour, without and with the closed-window cache
// (lib/pipeline/closed-windows.ts), through the same store GET /stats uses: read units and
// time per request, on phase 1's first type. The phases' windows are a few minutes old by now:
// the older ones are closed. A long-running deployment's hour is all closed windows but the
// last three minutes.
const statsReads = await (async () => {
  const db = createDynamoDb({ AWS_REGION: "us-east-1", DYNAMODB_ENDPOINT: stack.endpoints.dynamodbEndpoint });
  const store = new DynamoWindowStore(db, stack.names.tables.aggregates, stack.names.tables.streamState);
  const cache = new ClosedWindowCache(() =>
    store.fenceSnapshot(topics.eventsRaw.name, topics.eventsRaw.partitions),
  );
  const query: StatsQuery = {
    kind: "event_type",
    event_type: loadTypes("p1")[0] ?? "",
    interval: "1h",
    intervalMs: 3_600_000,
    group_by: [],
  };
  const measure = async (withCache?: ClosedWindowCache) => {
    const before = usageMeter.snapshot();
    const t0 = performance.now();
    await readStats(store, BUILT_IN_RULES, query, Date.now(), withCache);
    return {
      ms: performance.now() - t0,
      readUnits: usageSince(usageMeter.snapshot(), before).dynamodb.readUnits,
    };
  };
  // A fence answer is used once it is a second old (ClosedWindowCache's settleMs).
  await cache.closedBefore();
  await cache.refreshed();
  await sleep(1_100);
  const uncached: { ms: number; readUnits: number }[] = [];
  for (let i = 0; i < 5; i++) uncached.push(await measure());
  await measure(cache); // fills the cache
  const cached: { ms: number; readUnits: number }[] = [];
  for (let i = 0; i < 5; i++) cached.push(await measure(cache));
  const closedBefore = await cache.closedBefore();
  db.destroy();
  const median = (xs: { ms: number; readUnits: number }[]) => ({
    ms: pct(
      xs.map((x) => x.ms),
      50,
    ),
    readUnits: pct(
      xs.map((x) => x.readUnits),
      50,
    ),
  });
  return {
    uncached: median(uncached),
    cached: median(cached),
    windowsCached: cache.size,
    closedSecondsAgo: (Date.now() - closedBefore) / 1000,
  };
})();
const memEnd = await memory();

/**
 * Write units per `n` events by DynamoDB's billing rule, computed from the items written
 * (DynamoDB Local reports transactions by a rule of its own: test/integration/dynamodb-item-size.test.ts),
 * plus what deleting the phase's delta items will still cost: its whole cost, once compacted.
 */
const writeUnitsPer = (p: Phase, n: number) =>
  ((p.usage.dynamodb.computedWriteUnits + p.usage.dynamodb.owedWriteUnits) / p.events) * n;
/** The same, as the phase paid it by its end (its deltas' deletion not yet counted). */
const paidWriteUnitsPer = (p: Phase, n: number) => (p.usage.dynamodb.computedWriteUnits / p.events) * n;
/** What DynamoDB Local reported (ReturnConsumedCapacity). */
const reportedWriteUnitsPer = (p: Phase, n: number) => (p.usage.dynamodb.writeUnits / p.events) * n;
/** The consumers' reads (aggregator, publisher): what the pipeline costs per event, polling aside. */
const readUnitsPer = (p: Phase, n: number) => (p.byProcess.mappings.dynamodb.readUnits / p.events) * n;
/** The API process's reads (GET /stats and its rules cache) per GET /stats request. */
const readUnitsPerStatsGet = (p: Phase) => p.byProcess.api.dynamodb.readUnits / p.statsRequests;
/** DynamoDB Queries per GET /stats (DynamoDB Local's CPU goes by requests more than by bytes). */
const queriesPerStatsGet = (p: Phase) => (p.byProcess.api.dynamodb.requests.Query ?? 0) / p.statsRequests;
const s3PutsPerMillion = (p: Phase) => (s3PutClassRequests(p.usage) / p.events) * 1e6;
const s3PutObjectsPerMillion = (p: Phase) => ((p.usage.s3.requests.PutObject ?? 0) / p.events) * 1e6;
const catchUpText = (p: Phase) =>
  groups
    .map((g) => `${g.id} ${p.catchUp[g.id] === undefined ? "not reached" : `${fmt(p.catchUp[g.id])} s`}`)
    .join(", ");
const lost = (p: Phase) => p.result.accepted - p.counted;
const memRow = (m: Awaited<ReturnType<typeof memory>>) =>
  Object.entries(m)
    .map(([k, v]) => `${k} ${fmt(mib(v), 0)}`)
    .join(", ");

const rows: [string, string][] = [
  ["raw kafkajs producer (acks=all, idempotent)", `${int(rawRate)} events/s`],
  [
    "ingest: batched POST /events, phase 1",
    `${int(p1.ingestRate)} events/s (${int(p1.result.accepted)} in ${fmt(p1.result.seconds)} s); statuses ${JSON.stringify(p1.result.statuses)}`,
  ],
  [
    "  request latency p50 / p95 / p99",
    `${fmt(pct(p1.result.latencies, 50), 0)} / ${fmt(pct(p1.result.latencies, 95), 0)} / ${fmt(pct(p1.result.latencies, 99), 0)} ms`,
  ],
  [
    "ingest, the API alone (consumers stopped)",
    apiAlone
      ? `${int(apiAloneRate)} events/s; request p50 / p99 ${fmt(pct(apiAlone.latencies, 50), 0)} / ${fmt(pct(apiAlone.latencies, 99), 0)} ms`
      : "n/a",
  ],
  ["  API alone / raw producer", fmt(apiAloneRate / rawRate, 2)],
  ["  API with the pipeline running / raw producer", fmt(p1.ingestRate / rawRate, 2)],
  [
    "  batch × concurrency",
    `${knobs.BENCH_BATCH} × ${knobs.BENCH_CONCURRENCY} (phase 2: ${pacedBatch} × ${knobs.BENCH_CONCURRENCY})`,
  ],
  [
    "end-to-end: accepted → counted in GET /stats",
    Number.isFinite(p1.e2eRate)
      ? `${int(p1.e2eRate)} events/s (all counted ${fmt(p1.e2eSeconds)} s after load start)`
      : `NOT all counted: ${int(p1.counted)} of ${int(p1.result.accepted)} after ${knobs.BENCH_DRAIN_TIMEOUT_SECONDS} s`,
  ],
  ["  end-to-end / ingest", fmt(p1.e2eRate / p1.ingestRate, 2)],
  ["  lag back to 0 after load stopped", catchUpText(p1)],
  [
    `phase 2: paced at ${int(pacedRate)} events/s`,
    `${int(p2.ingestRate)} events/s accepted; end-to-end ${Number.isFinite(p2.e2eRate) ? `all counted` : `NOT all counted (${int(p2.counted)} of ${int(p2.result.accepted)})`}; lag back to 0: ${catchUpText(p2)}`,
  ],
  [
    "  freshness p50 / p99 (accepted → visible)",
    `${fmt(pct(p2.freshness, 50), 0)} / ${fmt(pct(p2.freshness, 99), 0)} ms over ${p2.freshness.length} probes (phase 1: ${fmt(pct(p1.freshness, 50), 0)} / ${fmt(pct(p1.freshness, 99), 0)} ms)`,
  ],
  [
    "  GET /stats p50 / p95",
    `${fmt(pct(p2.statsLatency, 50))} / ${fmt(pct(p2.statsLatency, 95))} ms over ${p2.statsLatency.length} requests (phase 1 p95 ${fmt(pct(p1.statsLatency, 95))} ms)`,
  ],
  [
    "  API process's event-loop delay p50 / p99 / max",
    `${fmt(p2.apiLoopDelayMs.p50)} / ${fmt(p2.apiLoopDelayMs.p99)} / ${fmt(p2.apiLoopDelayMs.max)} ms (phase 1: ${fmt(p1.apiLoopDelayMs.p99)} ms at p99)`,
  ],
  [
    "DynamoDB write units per 100 events",
    `phase 1 ${fmt(writeUnitsPer(p1, 100), 2)}, phase 2 ${fmt(writeUnitsPer(p2, 100), 2)} (deltas' later deletion included)`,
  ],
  [
    "  paid by the phase's end; DynamoDB Local reported",
    `phase 1 ${fmt(paidWriteUnitsPer(p1, 100), 2)}; ${fmt(reportedWriteUnitsPer(p1, 100), 2)}, phase 2 ${fmt(paidWriteUnitsPer(p2, 100), 2)}; ${fmt(reportedWriteUnitsPer(p2, 100), 2)}`,
  ],
  [
    "  by rule and granularity, phase 1 (per 100 events)",
    Object.entries(p1.usage.dynamodb.costByWindowKind)
      .filter(([, units]) => units !== 0)
      .sort((a, b) => b[1] - a[1])
      .map(([kind, units]) => `${kind} ${fmt((units / p1.events) * 100, 2)}`)
      .join(", "),
  ],
  [
    "DynamoDB write / read units per million events",
    `phase 1 ${int(writeUnitsPer(p1, 1e6))} / ${int(readUnitsPer(p1, 1e6))}, phase 2 ${int(writeUnitsPer(p2, 1e6))} / ${int(readUnitsPer(p2, 1e6))} (reads: consumers only)`,
  ],
  [
    "DynamoDB read units / Queries per GET /stats",
    `phase 1 ${fmt(readUnitsPerStatsGet(p1))} / ${fmt(queriesPerStatsGet(p1))} (${p1.statsRequests} requests), phase 2 ${fmt(readUnitsPerStatsGet(p2))} / ${fmt(queriesPerStatsGet(p2))} (${p2.statsRequests})`,
  ],
  ...(p3
    ? ([
        [
          `phase 3: quiet at ${int(knobs.BENCH_QUIET_RATE)} events/s`,
          `${int(p3.ingestRate)} events/s accepted; end-to-end ${Number.isFinite(p3.e2eRate) ? "all counted" : `NOT all counted (${int(p3.counted)} of ${int(p3.result.accepted)})`}`,
        ],
        [
          "  write units per 100 events (a slice's floor)",
          `${fmt(writeUnitsPer(p3, 100), 2)}: ${Object.entries(p3.usage.dynamodb.costByWindowKind)
            .filter(([, units]) => units !== 0)
            .sort((a, b) => b[1] - a[1])
            .map(([kind, units]) => `${kind} ${fmt((units / p3.events) * 100, 2)}`)
            .join(", ")}`,
        ],
        [
          "  freshness p50 / p99; GET /stats p50 / p95",
          `${fmt(pct(p3.freshness, 50), 0)} / ${fmt(pct(p3.freshness, 99), 0)} ms over ${p3.freshness.length} probes; ${fmt(pct(p3.statsLatency, 50))} / ${fmt(pct(p3.statsLatency, 95))} ms over ${p3.statsLatency.length} requests`,
        ],
      ] satisfies [string, string][])
    : []),
  [
    "S3 PUT-class requests per million events",
    `phase 1 ${int(s3PutsPerMillion(p1))} (PutObject ${int(s3PutObjectsPerMillion(p1))}), phase 2 ${int(s3PutsPerMillion(p2))} (PutObject ${int(s3PutObjectsPerMillion(p2))})`,
  ],
  ...(apiAlone
    ? [
        [
          "CPU µs per event, the API alone (and the load)",
          cpuPerEvent(apiAloneCpu, apiAlone.accepted),
        ] satisfies [string, string],
      ]
    : []),
  ...(["p1", "p2"] as const).map((k): [string, string] => {
    const p = k === "p1" ? p1 : p2;
    return [`CPU µs per event, phase ${k === "p1" ? 1 : 2} (load + drain)`, cpuPerEvent(p.cpu, p.events)];
  }),
  [
    "analytics.stats messages/s, phase 1",
    `${int(p1.statsRate)} (${int(p1.stats.messages)} messages${p1.stats.complete ? "" : ", subscriber not caught up"}; last one ${fmt(p1.statsTail)} s after load stopped); phase 2 ${int(p2.statsRate)} (last ${fmt(p2.statsTail)} s after)`,
  ],
  [
    "  publish lag p50 / p99 (topic time − written_at)",
    `phase 1 ${fmt(p1.stats.lagP50, 0)} / ${fmt(p1.stats.lagP99, 0)} ms, phase 2 ${fmt(p2.stats.lagP50, 0)} / ${fmt(p2.stats.lagP99, 0)} ms`,
  ],
  [
    "GET /events (1 h, event_type, limit 100) p50 / p95",
    `${fmt(pct(eventsLatency, 50), 0)} / ${fmt(pct(eventsLatency, 95), 0)} ms (first ${fmt(eventsLatency[0], 0)} ms); the function's cold start, another type: ${fmt(eventsColdStart, 0)} ms`,
  ],
  [
    "  the engine alone, per plan: first / warm, fetched",
    Object.entries(eventsPlans)
      .map(([plan, r]) => `${plan} ${fmt(r.first, 0)} / ${fmt(r.warm, 0)} ms, ${r.fetched} objects`)
      .join("; "),
  ],
  [
    "GET /stats' reads, last hour: without / with cache",
    `${fmt(statsReads.uncached.readUnits)} / ${fmt(statsReads.cached.readUnits)} read units, ${fmt(statsReads.uncached.ms)} / ${fmt(statsReads.cached.ms)} ms (median of 5; ${statsReads.windowsCached} closed windows cached, closed up to ${fmt(statsReads.closedSecondsAgo, 0)} s ago)`,
  ],
  ["RSS MiB before load", memRow(memBefore)],
  ["RSS MiB after phase 1", memRow(memAfter1)],
  ["RSS MiB at the end", memRow(memEnd)],
];
const width = Math.max(...rows.map(([k]) => k.length));
log("\n=== Tidemark bench (local stack, every service co-located) ===");
log(`stack lines reporting failures, skips or on-failure deliveries: ${stackProblems}`);
for (const [k, v] of rows) log(`${k.padEnd(width)}  ${v}`);
for (const [name, p] of [
  ["phase 1", p1],
  ["phase 2", p2],
] as const) {
  if (lost(p) > 0) log(`!!! ${name}: ${int(lost(p))} accepted events never counted in GET /stats (lost?)`);
  if (lost(p) < 0) log(`!!! ${name}: ${int(-lost(p))} more events counted than accepted (duplicates?)`);
  if (p.stats.malformed > 0)
    log(`!!! ${name}: ${p.stats.malformed} analytics.stats messages without written_at`);
}

const phaseJson = (p: Phase) => ({
  accepted: p.result.accepted,
  counted: p.counted,
  load_seconds: p.result.seconds,
  ingest_events_per_s: p.ingestRate,
  latency_ms: {
    p50: pct(p.result.latencies, 50),
    p95: pct(p.result.latencies, 95),
    p99: pct(p.result.latencies, 99),
  },
  statuses: p.result.statuses,
  e2e_seconds: p.e2eSeconds,
  e2e_events_per_s: p.e2eRate,
  e2e_over_ingest: p.e2eRate / p.ingestRate,
  lag_to_zero_s: p.catchUp,
  freshness_ms: { p50: pct(p.freshness, 50), p99: pct(p.freshness, 99), probes: p.freshness.length },
  stats_get_ms: {
    p50: pct(p.statsLatency, 50),
    p95: pct(p.statsLatency, 95),
    requests: p.statsLatency.length,
  },
  api_event_loop_delay_ms: p.apiLoopDelayMs,
  metered_events: p.events,
  dynamodb_write_units_per_100: writeUnitsPer(p, 100),
  dynamodb_write_units_paid_per_100: paidWriteUnitsPer(p, 100),
  dynamodb_write_units_reported_by_dynamodb_local_per_100: reportedWriteUnitsPer(p, 100),
  dynamodb_write_units_per_million: writeUnitsPer(p, 1e6),
  dynamodb_read_units_per_million: readUnitsPer(p, 1e6),
  dynamodb_read_units_per_stats_get: readUnitsPerStatsGet(p),
  dynamodb_queries_per_stats_get: queriesPerStatsGet(p),
  stats_gets: p.statsRequests,
  cpu_seconds: p.cpu,
  s3_put_class_per_million: s3PutsPerMillion(p),
  s3_put_object_per_million: s3PutObjectsPerMillion(p),
  usage: p.byProcess satisfies Record<string, UsageSnapshot>,
  stats_topic: {
    messages: p.stats.messages,
    messages_per_s: p.statsRate,
    last_message_after_load_s: p.statsTail,
    publish_lag_ms: { p50: p.stats.lagP50, p99: p.stats.lagP99, max: p.stats.lagMax },
    malformed: p.stats.malformed,
    complete: p.stats.complete,
  },
});
// One line with every figure, so docs/performance.md can be regenerated from a run.
log(
  `BENCH_JSON ${JSON.stringify({
    run: runTag,
    at: new Date().toISOString(),
    knobs,
    raw_producer_events_per_s: rawRate,
    api_over_raw: p1.ingestRate / rawRate,
    api_alone_events_per_s: apiAloneRate,
    api_alone_cpu_seconds: apiAloneCpu,
    api_alone_over_raw: apiAloneRate / rawRate,
    paced_rate: pacedRate,
    paced_batch: pacedBatch,
    phase1: phaseJson(p1),
    phase2: phaseJson(p2),
    quiet_rate: knobs.BENCH_QUIET_RATE,
    phase3: p3 ? phaseJson(p3) : null,
    get_events_ms: {
      p50: pct(eventsLatency, 50),
      p95: pct(eventsLatency, 95),
      first: eventsLatency[0],
      cold_start: eventsColdStart,
      engine_plans: eventsPlans,
    },
    stats_reads_last_hour: statsReads,
    rss_mib: {
      before: Object.fromEntries(Object.entries(memBefore).map(([k, v]) => [k, mib(v)])),
      after_phase1: Object.fromEntries(Object.entries(memAfter1).map(([k, v]) => [k, mib(v)])),
      end: Object.fromEntries(Object.entries(memEnd).map(([k, v]) => [k, mib(v)])),
    },
  })}`,
);

statsWorker.disconnect();
await admin.disconnect();
await stack.stop();
process.exit(0);

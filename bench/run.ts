import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Kafka, logLevel } from "kafkajs";
import { eventSourceMappings, topics } from "../lib/topology.ts";
import { startLocalStack } from "../local/stack.ts";

/**
 * `npm run bench`: figures of brief section 7 measured against the local stack on this machine.
 * Environment: BENCH_SECONDS (60), BENCH_CONCURRENCY (8), BENCH_BATCH (1000), BENCH_RAW_SECONDS (15).
 */
const seconds = Number(process.env.BENCH_SECONDS ?? 60);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 8);
const batch = Number(process.env.BENCH_BATCH ?? 1000);
const rawSeconds = Number(process.env.BENCH_RAW_SECONDS ?? 15);

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
};
const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");
const log = (line: string) => console.log(line);

const startedAt = performance.now();
const stack = await startLocalStack({ port: 0 });
log(`stack up in ${fmt((performance.now() - startedAt) / 1000)} s at ${stack.url}`);
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

// 1. The broker's own capacity: a raw kafkajs producer with the pipeline's settings.
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
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
await producer.connect();
let rawSent = 0;
const rawDeadline = performance.now() + rawSeconds * 1000;
const rawStart = performance.now();
while (performance.now() < rawDeadline) {
  const messages = Array.from({ length: 5_000 }, (_, i) => ({
    key: `user-${(rawSent + i) % 50_000}`,
    value: sample,
  }));
  await producer.send({ topic: rawTopic, acks: -1, messages });
  rawSent += messages.length;
}
const rawRate = rawSent / ((performance.now() - rawStart) / 1000);
await producer.disconnect();
log(
  `raw kafkajs producer: ${fmt(rawRate, 0)} events/s (${rawSent} in ${rawSeconds} s, acks=all, idempotent)`,
);

// 2. Sustained batched POST /events from a separate process, with lag sampling and a freshness probe.
const worker = fork(fileURLToPath(new URL("./load-worker.ts", import.meta.url)), [], {
  execArgv: ["--import", "tsx"],
  env: {
    ...process.env,
    BENCH_LOAD: JSON.stringify({
      url: stack.url,
      seconds,
      concurrency,
      batch,
      eventTypes: ["page_view", "click", "purchase_completed", "add_to_cart"],
    }),
  },
});
interface Done {
  kind: "done";
  accepted: number;
  seconds: number;
  latencies: number[];
  statuses: Record<string, number>;
}
const done = new Promise<Done>((resolve) => {
  worker.on("message", (m: { kind: string }) => {
    if (m.kind === "done") resolve(m as Done);
  });
});

const lagSeries: { t: number; lag: Record<string, number> }[] = [];
const freshness: number[] = [];
const statsLatency: number[] = [];
let loading = true;
const loadStart = performance.now();
const sampler = (async () => {
  while (loading) {
    await new Promise((r) => setTimeout(r, 1000));
    const l = await lags();
    lagSeries.push({ t: (performance.now() - loadStart) / 1000, lag: l });
    log(`  t=${fmt(lagSeries.at(-1)?.t ?? 0, 0)}s lag ${JSON.stringify(l)}`);
  }
})();
const prober = (async () => {
  let i = 0;
  while (loading) {
    const type = `freshness_probe_${Date.now()}_${i++}`;
    const res = await fetch(`${stack.url}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user_id: "probe", event_type: type, timestamp: Date.now() }),
    });
    if (res.status !== 202) continue;
    const acceptedAt = performance.now();
    for (;;) {
      const t0 = performance.now();
      const stats = (await (await fetch(`${stack.url}/stats?event_type=${type}&interval=5m`)).json()) as {
        count?: number;
      };
      statsLatency.push(performance.now() - t0);
      if ((stats.count ?? 0) >= 1) {
        freshness.push(performance.now() - acceptedAt);
        break;
      }
      if (performance.now() - acceptedAt > 30_000) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 200));
  }
})();

const result = await done;
loading = false;
await Promise.all([sampler, prober]);
const loadEnded = performance.now();

// 3. Catch-up: time until every mapping's lag is back to zero.
const catchUp: Record<string, number> = {};
while (Object.keys(catchUp).length < groups.length && performance.now() - loadEnded < 300_000) {
  const l = await lags();
  for (const [id, v] of Object.entries(l))
    if (v === 0 && catchUp[id] === undefined) catchUp[id] = (performance.now() - loadEnded) / 1000;
  await new Promise((r) => setTimeout(r, 200));
}

// 4. GET /events over the last hour.
const eventsLatency: number[] = [];
for (let i = 0; i < 20; i++) {
  const t0 = performance.now();
  const res = await fetch(`${stack.url}/events?event_type=page_view&limit=100`);
  await res.arrayBuffer();
  eventsLatency.push(performance.now() - t0);
}

const rate = result.accepted / result.seconds;
log("\n=== Tidemark bench (local stack, every service co-located) ===");
log(
  `ingest: ${fmt(rate, 0)} events/s accepted over ${fmt(result.seconds, 0)} s (target ≥ 100000), batch ${batch}, concurrency ${concurrency}`,
);
log(
  `  request latency ms: p50 ${fmt(pct(result.latencies, 50))} p95 ${fmt(pct(result.latencies, 95))} p99 ${fmt(pct(result.latencies, 99))}; statuses ${JSON.stringify(result.statuses)}`,
);
log(
  `  raw kafkajs producer into the same broker: ${fmt(rawRate, 0)} events/s → pipeline/raw = ${fmt(rate / rawRate, 2)}`,
);
log(
  `catch-up after load stopped (lag back to 0): ${
    Object.entries(catchUp)
      .map(([k, v]) => `${k} ${fmt(v)} s`)
      .join(", ") || "not reached in 300 s"
  } (target ≤ 10 s)`,
);
log(
  `freshness accepted → visible in GET /stats: p50 ${fmt(pct(freshness, 50), 0)} ms p99 ${fmt(pct(freshness, 99), 0)} ms over ${freshness.length} probes (target p99 ≤ 1000 ms)`,
);
log(
  `GET /stats latency: p50 ${fmt(pct(statsLatency, 50))} ms p95 ${fmt(pct(statsLatency, 95))} ms (target p95 ≤ 50 ms)`,
);
log(
  `GET /events (1 h range, limit 100): p50 ${fmt(pct(eventsLatency, 50))} ms p95 ${fmt(pct(eventsLatency, 95))} ms (target p95 ≤ 500 ms)`,
);
log(
  `service memory (RSS MiB): ${Object.entries(await stack.services.memory())
    .map(([k, v]) => `${k} ${fmt(v / 1048576, 0)}`)
    .join(", ")}; node (pipeline) ${fmt(process.memoryUsage().rss / 1048576, 0)}`,
);

await admin.disconnect();
await stack.stop();
process.exit(0);

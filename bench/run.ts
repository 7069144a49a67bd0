import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Kafka, logLevel } from "kafkajs";
import { eventSourceMappings, topics } from "../lib/topology.ts";
import { startLocalStack } from "../local/stack.ts";

/**
 * `npm run bench`: figures of brief section 7 measured against the local stack on this machine.
 * Phase 1 drives batched POST /events as fast as it goes for BENCH_SECONDS (60); phase 2 paces
 * BENCH_PACED_RATE events/s (5000) for BENCH_PACED_SECONDS (30), so freshness is also measured
 * while the consumers keep up. Also: BENCH_CONCURRENCY (8), BENCH_BATCH (1000), BENCH_RAW_SECONDS (15).
 */
const seconds = Number(process.env.BENCH_SECONDS ?? 60);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 8);
const batch = Number(process.env.BENCH_BATCH ?? 1000);
const rawSeconds = Number(process.env.BENCH_RAW_SECONDS ?? 15);
const pacedSeconds = Number(process.env.BENCH_PACED_SECONDS ?? 30);
const pacedRate = Number(process.env.BENCH_PACED_RATE ?? 5000);

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

interface Done {
  kind: "done";
  accepted: number;
  seconds: number;
  latencies: number[];
  statuses: Record<string, number>;
}

/**
 * One load phase from a separate process, with lag sampling and a freshness probe (a fresh
 * event type posted every 200 ms, polled in GET /stats until counted), then the catch-up time.
 */
async function phase(name: string, loadSeconds: number, rate: number) {
  log(`\n${name}: ${loadSeconds} s${rate ? ` paced at ${rate} events/s` : " as fast as it goes"}`);
  const worker = fork(fileURLToPath(new URL("./load-worker.ts", import.meta.url)), [], {
    execArgv: ["--import", "tsx"],
    env: {
      ...process.env,
      BENCH_LOAD: JSON.stringify({
        url: stack.url,
        seconds: loadSeconds,
        concurrency,
        batch,
        rate,
        eventTypes: ["page_view", "click", "purchase_completed", "add_to_cart"],
      }),
    },
  });
  const done = new Promise<Done>((resolve) => {
    worker.on("message", (m: { kind: string }) => {
      if (m.kind === "done") resolve(m as Done);
    });
  });
  const freshness: number[] = [];
  const statsLatency: number[] = [];
  let loading = true;
  const loadStart = performance.now();
  const sampler = (async () => {
    while (loading) {
      await new Promise((r) => setTimeout(r, 2000));
      const l = await lags();
      log(`  t=${fmt((performance.now() - loadStart) / 1000, 0)}s lag ${JSON.stringify(l)}`);
    }
  })();
  const prober = (async () => {
    let i = 0;
    while (loading) {
      const type = `freshness_probe_${Date.now()}_${i++}`;
      const res = await fetch(`${stack.url}/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user_id: `probe-${i}`, event_type: type, timestamp: Date.now() }),
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
  const catchUp: Record<string, number> = {};
  while (Object.keys(catchUp).length < groups.length && performance.now() - loadEnded < 300_000) {
    const l = await lags();
    for (const [id, v] of Object.entries(l)) {
      if (v === 0 && catchUp[id] === undefined) catchUp[id] = (performance.now() - loadEnded) / 1000;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { result, freshness, statsLatency, catchUp };
}

const full = await phase("Phase 1, sustained load", seconds, 0);
const paced = await phase("Phase 2, paced load", pacedSeconds, pacedRate);

// 4. GET /events over the last hour.
const eventsLatency: number[] = [];
for (let i = 0; i < 20; i++) {
  const t0 = performance.now();
  const res = await fetch(`${stack.url}/events?event_type=page_view&limit=100`);
  await res.arrayBuffer();
  eventsLatency.push(performance.now() - t0);
}

function report(name: string, p: Awaited<ReturnType<typeof phase>>) {
  const rate = p.result.accepted / p.result.seconds;
  log(`\n--- ${name} ---`);
  log(
    `ingest: ${fmt(rate, 0)} events/s accepted over ${fmt(p.result.seconds, 0)} s (target ≥ 100000), batch ${batch}, concurrency ${concurrency}`,
  );
  log(
    `  request latency ms: p50 ${fmt(pct(p.result.latencies, 50))} p95 ${fmt(pct(p.result.latencies, 95))} p99 ${fmt(pct(p.result.latencies, 99))}; statuses ${JSON.stringify(p.result.statuses)}`,
  );
  log(`  pipeline / raw kafkajs producer into the same broker: ${fmt(rate / rawRate, 2)}`);
  log(
    `catch-up after load stopped (lag back to 0): ${
      Object.entries(p.catchUp)
        .map(([k, v]) => `${k} ${fmt(v)} s`)
        .join(", ") || "not reached in 300 s"
    } (target ≤ 10 s)`,
  );
  log(
    `freshness accepted → visible in GET /stats: p50 ${fmt(pct(p.freshness, 50), 0)} ms p99 ${fmt(pct(p.freshness, 99), 0)} ms over ${p.freshness.length} probes (target p99 ≤ 1000 ms)`,
  );
  log(
    `GET /stats latency: p50 ${fmt(pct(p.statsLatency, 50))} ms p95 ${fmt(pct(p.statsLatency, 95))} ms over ${p.statsLatency.length} requests (target p95 ≤ 50 ms)`,
  );
}

log("\n=== Tidemark bench (local stack, every service co-located) ===");
log(`raw kafkajs producer (acks=all, idempotent): ${fmt(rawRate, 0)} events/s`);
report("Phase 1, sustained load", full);
report("Phase 2, paced load", paced);
log(
  `\nGET /events (1 h range, event_type, limit 100): p50 ${fmt(pct(eventsLatency, 50))} ms p95 ${fmt(pct(eventsLatency, 95))} ms (target p95 ≤ 500 ms)`,
);
log(
  `service memory (RSS MiB): ${Object.entries(await stack.services.memory())
    .map(([k, v]) => `${k} ${fmt(v / 1048576, 0)}`)
    .join(", ")}; node (API) ${fmt(process.memoryUsage().rss / 1048576, 0)}`,
);

await admin.disconnect();
await stack.stop();
process.exit(0);

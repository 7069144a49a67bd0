import { fork } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { LocalApiGateway } from "../local/api-gateway.ts";
import { environmentPool } from "../local/lambda-runtime.ts";
import { withOwnServices } from "./own-services.ts";

/**
 * `npx tsx bench/api-ingest.ts [seconds] [concurrency] [events a request,...]`: the CPU per event
 * that POST /events costs the local API process, the way `npm start` runs it: the local API
 * Gateway over HTTP, ingest in its worker thread (`TIDEMARK_FUNCTION_THREADS`' default), against
 * Kafka of its own (the local services on a temporary data directory, as bench/ingest-handler.ts).
 * The load comes from bench/load-worker.ts in a child process, so its CPU is not counted. Prints,
 * per batch size, events/s and CPU µs per event of the whole process and of its threads by name
 * (`/proc/self/task`): the main thread (HTTP, the API Gateway event, the structured clone) against
 * the worker's. Read CPU per event, not rates: this machine's speed drifts. With
 * TIDEMARK_API_CPU_PROF=<dir> the worker writes a V8 CPU profile; `--cpu-prof` profiles the main
 * thread (scripts/cpu-profile-top.ts).
 */
const seconds = Number(process.argv[2] ?? 10);
const concurrency = Number(process.argv[3] ?? 8);
const batches = (process.argv[4] ?? "1000,125").split(",").map(Number);

/** CPU ticks (user + system) by thread name, from /proc/self/task. */
function threadTicks(): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const tid of readdirSync("/proc/self/task")) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread ended
    }
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const t = Number(fields[11]) + Number(fields[12]);
    const key = tid === String(process.pid) ? "main" : `${name}/${tid}`;
    ticks.set(key, (ticks.get(key) ?? 0) + t);
  }
  return ticks;
}

function load(url: string, secs: number, batch: number): Promise<{ accepted: number; seconds: number }> {
  const worker = fork(fileURLToPath(new URL("./load-worker.ts", import.meta.url)), [], {
    execArgv: ["--import", "tsx"],
    env: {
      ...process.env,
      BENCH_LOAD: JSON.stringify({ url, seconds: secs, concurrency, batch, eventTypes: ["bench_api"] }),
    },
  });
  return new Promise((resolve, reject) => {
    worker.on("message", (m: { kind: string; accepted: number; seconds: number; statuses: object }) => {
      if (m.kind !== "done") return;
      if (Object.keys(m.statuses).some((s) => s !== "202"))
        reject(new Error(`statuses ${JSON.stringify(m.statuses)}`));
      resolve(m);
    });
    worker.once("exit", (code) => code !== 0 && reject(new Error(`load worker exited with ${code}`)));
  });
}

await withOwnServices("bench-api", async () => {
  const pool = environmentPool("ingest", {
    maxEnvironments: 1,
    invocationsPerEnvironment: Number.POSITIVE_INFINITY,
  });
  const gateway = new LocalApiGateway({
    port: Number(process.env.PORT ?? 3700),
    functionFor: () => pool,
    // Not what is measured: 125-event requests at 100,000 events/s are 800 requests a second.
    throttle: { rateLimit: 1e6, burstLimit: 1e6 },
    log: (line) => console.error(line),
  });
  const url = await gateway.start();
  try {
    for (const batch of batches) {
      await load(url, 3, batch); // warm-up: JIT, the producer's connection
      const ticks0 = threadTicks();
      const cpu0 = process.cpuUsage();
      const done = await load(url, seconds, batch);
      const cpu = process.cpuUsage(cpu0);
      const ticks = threadTicks();
      const perEvent = (us: number) => (us / done.accepted).toFixed(2);
      const tickUs = 1e6 / 100; // USER_HZ
      const threads = [...ticks]
        .map(([name, t]) => [name, (t - (ticks0.get(name) ?? 0)) * tickUs] as const)
        .filter(([, us]) => us > 0)
        .sort((a, b) => b[1] - a[1])
        .map(([name, us]) => `${name} ${perEvent(us)}`)
        .join(", ");
      console.log(
        `${batch} events a request: ${Math.round(done.accepted / done.seconds).toLocaleString("en")} events/s; ` +
          `CPU ${perEvent(cpu.user + cpu.system)} µs per event (threads: ${threads})`,
      );
    }
  } finally {
    await gateway.stop();
    await pool.stop();
  }
});

import { Agent, request } from "node:http";
import { benchEvent, type UserIdKind, userIdsOf } from "./load-events.ts";

/**
 * Load generator (a child process, so it does not share the pipeline's event loop):
 * keeps `concurrency` batched POST /events requests in flight for `seconds`, and reports
 * per-request latency and accepted counts. Paced (`rate`), lane i sends its k-th request at
 * (k + i / concurrency) × pace, catching up when late, so the offered rate is the one asked for.
 * Event timestamps are refreshed in place before every request: bodies built once would age past
 * the aggregator's allowed lateness (2 min) in a long run, and late events are not counted.
 */
interface LoadConfig {
  url: string;
  seconds: number;
  concurrency: number;
  batch: number;
  eventTypes: string[];
  /** Events per second to pace at (all lanes together); 0 = as fast as possible. */
  rate?: number;
  /** `user-<n>`, or a UUID per user (the same in every process: derived from n). */
  userIds?: UserIdKind;
}

const config = JSON.parse(process.env.BENCH_LOAD ?? "{}") as LoadConfig;
const userId = userIdsOf(config.userIds);
const send = (message: unknown) => process.send?.(message);
const agent = new Agent({ keepAlive: true, maxSockets: config.concurrency });
const target = new URL(`${config.url}/events`);

/** Same width (13 digits) as every timestamp until 2286, so it can be overwritten in place. */
const STAMP = "1000000000000";

function makeBody(seed: number): Body {
  const now = Number(STAMP);
  const events = Array.from({ length: config.batch }, (_, i) => {
    const n = seed * config.batch + i;
    const type = config.eventTypes[n % config.eventTypes.length] ?? "page_view";
    return benchEvent(n, userId, type, now);
  });
  const bytes = Buffer.from(JSON.stringify({ events }));
  const stamps: number[] = [];
  const needle = Buffer.from(`"timestamp":${STAMP}`);
  for (let at = bytes.indexOf(needle); at >= 0; at = bytes.indexOf(needle, at + needle.length))
    stamps.push(at + needle.length - STAMP.length);
  return { bytes, stamps };
}

interface Body {
  bytes: Buffer;
  /** Offsets of the timestamps' digits. */
  stamps: number[];
}

function stamped(body: Body): Buffer {
  const now = String(Date.now());
  for (const at of body.stamps) body.bytes.write(now, at, "latin1");
  return body.bytes;
}

function post(body: Buffer): Promise<{ status: number; accepted: number }> {
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          let accepted = 0;
          if (res.statusCode === 202)
            accepted = (JSON.parse(Buffer.concat(chunks).toString()) as { accepted: number }).accepted;
          resolve({ status: res.statusCode ?? 0, accepted });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const bodies = Array.from({ length: 16 }, (_, i) => makeBody(i));
if (bodies.some((b) => b.stamps.length !== config.batch)) throw new Error("timestamps not found in body");
const latencies: number[] = [];
const statuses: Record<string, number> = {};
let accepted = 0;
const started = performance.now();
const deadline = started + config.seconds * 1000;
let sent = 0;

const pace = config.rate ? (config.batch * config.concurrency * 1000) / config.rate : 0;

async function lane(i: number): Promise<void> {
  for (let k = 0; ; k++) {
    if (pace) {
      const due = started + (k + i / config.concurrency) * pace;
      if (due >= deadline) return;
      if (due > performance.now()) await new Promise((r) => setTimeout(r, due - performance.now()));
    } else if (performance.now() >= deadline) return;
    // Bodies are reused across lanes; a body still queued on a socket may get a newer timestamp,
    // which keeps it valid (same width, only the digits change).
    const body = stamped(bodies[sent++ % bodies.length] as Body);
    const t0 = performance.now();
    try {
      const res = await post(body);
      latencies.push(performance.now() - t0);
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      accepted += res.accepted;
    } catch {
      statuses.error = (statuses.error ?? 0) + 1;
    }
  }
}

const ticker = setInterval(() => send({ kind: "progress", accepted }), 1000);
await Promise.all(Array.from({ length: config.concurrency }, (_, i) => lane(i)));
clearInterval(ticker);
send({
  kind: "done",
  accepted,
  seconds: (performance.now() - started) / 1000,
  latencies,
  statuses,
  // The load generator's own CPU: on two cores it is part of what the API competes with.
  cpuSeconds: ((u) => (u.user + u.system) / 1e6)(process.cpuUsage()),
});
agent.destroy();
process.disconnect?.();

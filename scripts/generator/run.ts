import { randomInt } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { GeneratorOptions } from "./options.ts";
import { LatencyHistogram, Pacer } from "./pacing.ts";
import { TrafficModel } from "./traffic.ts";

/**
 * Sends the traffic model's events to `POST /events`: batched, paced by a token bucket at the
 * requested rate, at most `concurrency` requests in flight (when the API is slower than the rate,
 * the generator falls behind instead of piling up requests). Reports progress every
 * `reportEveryMs` and returns a summary when the duration is over or `signal` aborts.
 */
export interface Progress {
  readonly elapsedSeconds: number;
  /** Events accepted (202) per second over the last interval. */
  readonly acceptedPerSecond: number;
  readonly accepted: number;
  readonly sent: number;
  /** Failed requests by HTTP status (or `network`), over the whole run. */
  readonly errors: Readonly<Record<string, number>>;
  /** Request latency over the last interval, ms. */
  readonly p50: number;
  readonly p99: number;
  readonly inFlight: number;
}

export interface Summary {
  readonly seconds: number;
  readonly requests: number;
  /** Events sent, duplicates and late ones included. */
  readonly sent: number;
  /** Events in 202 responses. */
  readonly accepted: number;
  readonly acceptedPerSecond: number;
  /** Accepted events that were resends of an earlier event_id: downstream counts them once. */
  readonly acceptedDuplicates: number;
  /** Accepted events sent with an event time older than the allowed lateness. */
  readonly acceptedLate: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly latencyMs: {
    readonly p50: number;
    readonly p95: number;
    readonly p99: number;
    readonly max: number;
  };
  readonly seed: number;
}

export interface RunOptions extends GeneratorOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: Progress) => void;
  /** Per-request timeout (ms). @default 30000 */
  readonly requestTimeoutMs?: number;
}

export async function runGenerator(options: RunOptions): Promise<Summary> {
  const seed = options.seed ?? randomInt(2 ** 32 - 1);
  const model = new TrafficModel({
    seed,
    users: options.users,
    lateRatio: options.lateRatio,
    duplicateRatio: options.duplicateRatio,
    eventTypePrefix: options.typePrefix,
  });
  const started = performance.now();
  const deadline = options.durationMs === undefined ? Number.POSITIVE_INFINITY : started + options.durationMs;
  // A tenth of a second of burst, and always room for one batch.
  const pacer = new Pacer(options.rate, Math.max(options.batch, options.rate / 10), started);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.apiKey) headers["x-api-key"] = options.apiKey;
  const endpoint = `${options.url}/events`;

  const total = new LatencyHistogram();
  let interval = new LatencyHistogram();
  const errors: Record<string, number> = {};
  let requests = 0;
  let sent = 0;
  let accepted = 0;
  let acceptedDuplicates = 0;
  let acceptedLate = 0;
  let acceptedAtLastReport = 0;
  let lastReport = started;
  const inFlight = new Set<Promise<void>>();

  const report = () => {
    const now = performance.now();
    options.onProgress?.({
      elapsedSeconds: (now - started) / 1000,
      acceptedPerSecond: ((accepted - acceptedAtLastReport) * 1000) / Math.max(1, now - lastReport),
      accepted,
      sent,
      errors: { ...errors },
      p50: interval.percentile(50),
      p99: interval.percentile(99),
      inFlight: inFlight.size,
    });
    acceptedAtLastReport = accepted;
    lastReport = now;
    interval = new LatencyHistogram();
  };
  const ticker = setInterval(report, options.reportEveryMs);

  async function send(size: number): Promise<void> {
    const batch = model.batch(size, Date.now());
    const body = JSON.stringify(
      size === 1 && batch[0] ? batch[0].event : { events: batch.map((g) => g.event) },
    );
    sent += size;
    requests++;
    const t0 = performance.now();
    try {
      const res = await fetch(endpoint, {
        method: "POST",
        headers,
        body,
        signal: AbortSignal.timeout(options.requestTimeoutMs ?? 30_000),
      });
      const text = await res.text();
      const ms = performance.now() - t0;
      total.record(ms);
      interval.record(ms);
      if (res.status === 202) {
        const n = (JSON.parse(text) as { accepted?: number }).accepted ?? size;
        accepted += n;
        acceptedDuplicates += batch.filter((g) => g.kind === "duplicate").length;
        acceptedLate += batch.filter((g) => g.kind === "late").length;
      } else {
        errors[res.status] = (errors[res.status] ?? 0) + 1;
      }
    } catch (error) {
      const key = (error as Error).name === "TimeoutError" ? "timeout" : "network";
      errors[key] = (errors[key] ?? 0) + 1;
    }
  }

  try {
    while (!options.signal?.aborted) {
      if (inFlight.size >= options.concurrency) await Promise.race(inFlight);
      const now = performance.now();
      if (now >= deadline) break;
      // The last batch of a timed run is trimmed so that the run sends rate × duration events.
      const remaining =
        options.durationMs === undefined
          ? options.batch
          : Math.ceil((options.rate * options.durationMs) / 1000) - sent;
      const size = Math.min(options.batch, remaining);
      if (size <= 0) break;
      const wait = pacer.take(size, now);
      if (wait > 0) await sleep(wait, undefined, { signal: options.signal }).catch(() => undefined);
      if (options.signal?.aborted) break;
      const request = send(size).finally(() => inFlight.delete(request));
      inFlight.add(request);
    }
    await Promise.all(inFlight);
  } finally {
    clearInterval(ticker);
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    seconds,
    requests,
    sent,
    accepted,
    acceptedPerSecond: accepted / seconds,
    acceptedDuplicates,
    acceptedLate,
    errors,
    latencyMs: {
      p50: total.percentile(50),
      p95: total.percentile(95),
      p99: total.percentile(99),
      max: total.max,
    },
    seed,
  };
}

import { parseGeneratorArgs, USAGE } from "./generator/options.ts";
import { type Progress, runGenerator, type Summary } from "./generator/run.ts";

/**
 * `npm run generate -- --rate 2000 --users 5000 --duration 10m`: realistic e-commerce traffic
 * against a running API (`npm start` or a deployed stage) until the duration is over or Ctrl-C.
 */
const parsed = parseGeneratorArgs(process.argv.slice(2), process.env);
if (!parsed.ok) {
  if (parsed.message) console.error(`${parsed.message}\n`);
  console.error(USAGE);
  process.exit(parsed.message ? 2 : 0);
}
const options = parsed.options;

const n = (x: number, digits = 0) =>
  Number.isFinite(x)
    ? x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "–";
const errorsText = (errors: Readonly<Record<string, number>>) =>
  Object.keys(errors).length === 0
    ? "none"
    : Object.entries(errors)
        .map(([status, count]) => `${status}×${count}`)
        .join(" ");

const controller = new AbortController();
process.on("SIGINT", () => {
  if (controller.signal.aborted) process.exit(130);
  console.log("\nstopping: waiting for the requests in flight (Ctrl-C again to quit now)…");
  controller.abort();
});
process.on("SIGTERM", () => controller.abort());

console.log(
  `generating ${n(options.rate)} events/s for ${n(options.users)} users to ${options.url}/events` +
    ` (batches of ${options.batch}, ≤ ${options.concurrency} in flight` +
    `${options.lateRatio ? `, ${options.lateRatio * 100}% late` : ""}` +
    `${options.duplicateRatio ? `, ${options.duplicateRatio * 100}% duplicates` : ""})` +
    `${options.durationMs ? ` for ${n(options.durationMs / 1000)} s` : "; Ctrl-C stops"}`,
);

const summary: Summary = await runGenerator({
  ...options,
  signal: controller.signal,
  onProgress: (p: Progress) =>
    console.log(
      `t=${n(p.elapsedSeconds).padStart(5)}s  accepted ${n(p.acceptedPerSecond).padStart(7)}/s` +
        `  total ${n(p.accepted).padStart(10)}  errors ${errorsText(p.errors)}` +
        `  latency p50 ${n(p.p50, 1)} ms p99 ${n(p.p99, 1)} ms  in flight ${p.inFlight}`,
    ),
});

console.log(
  `
summary (seed ${summary.seed})
  duration     ${n(summary.seconds, 1)} s
  sent         ${n(summary.sent)} events in ${n(summary.requests)} requests
  accepted     ${n(summary.accepted)} events = ${n(summary.acceptedPerSecond)} events/s` +
    ` (of which ${n(summary.acceptedLate)} late, ${n(summary.acceptedDuplicates)} duplicates)
  errors       ${errorsText(summary.errors)}
  latency      p50 ${n(summary.latencyMs.p50, 1)} ms  p95 ${n(summary.latencyMs.p95, 1)} ms` +
    `  p99 ${n(summary.latencyMs.p99, 1)} ms  max ${n(summary.latencyMs.max, 1)} ms`,
);
process.exit(Object.keys(summary.errors).length > 0 && summary.accepted === 0 ? 1 : 0);

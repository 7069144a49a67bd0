import { spawn } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { z } from "zod";
import { type LocalStack, startLocalStack } from "../local/stack.ts";

/**
 * `npm run load [-- <scenario.yml>] [--target <url>] [artillery options…]`: runs an Artillery
 * scenario (default `artillery/soak.yml`) against the local API. When nothing answers
 * `GET /health` on a local target it starts the local stack itself and stops it afterwards.
 * Writes the JSON report under `reports/`, prints a short summary, and exits with Artillery's
 * code (non-zero when an `ensure` check failed). Other options go to `artillery run` unchanged.
 */
const args = process.argv.slice(2);
const scenarioIndex = args.findIndex((a) => /\.ya?ml$/.test(a));
const scenario = scenarioIndex >= 0 ? (args.splice(scenarioIndex, 1)[0] as string) : "artillery/soak.yml";
const targetIndex = args.indexOf("--target");
const target = (
  targetIndex >= 0 ? (args.splice(targetIndex, 2)[1] ?? "") : `http://localhost:${process.env.PORT ?? 3000}`
).replace(/\/+$/, "");

async function answers(url: string): Promise<boolean> {
  const headers: Record<string, string> = {};
  if (process.env.TIDEMARK_API_KEY) headers["x-api-key"] = process.env.TIDEMARK_API_KEY;
  try {
    const res = await fetch(`${url}/health`, { headers, signal: AbortSignal.timeout(3000) });
    return res.status < 500;
  } catch {
    return false;
  }
}

let stack: LocalStack | undefined;
if (!(await answers(target))) {
  const url = new URL(target);
  if (!["localhost", "127.0.0.1", "[::1]"].includes(url.hostname)) {
    console.error(`nothing answers ${target}/health; start the API or check --target`);
    process.exit(2);
  }
  console.log(`nothing answers ${target}/health: starting the local stack on port ${url.port || 80}…`);
  stack = await startLocalStack({ port: Number(url.port || 80), log: (line) => console.log(line) });
}

const name = path.basename(scenario).replace(/\.ya?ml$/, "");
const report = path.join("reports", `load-${name}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
await mkdir("reports", { recursive: true });
const artilleryDir = path.dirname(createRequire(import.meta.url).resolve("artillery/package.json"));

// Ctrl-C reaches Artillery too (same process group); wait for it to finish, then clean up.
process.on("SIGINT", () => undefined);
const code = await new Promise<number>((resolve) => {
  const child = spawn(
    process.execPath,
    [path.join(artilleryDir, "bin", "run"), "run", "--target", target, "--output", report, ...args, scenario],
    { stdio: "inherit", env: { ...process.env, ARTILLERY_DISABLE_TELEMETRY: "true" } },
  );
  child.on("exit", (c, signal) => resolve(c ?? (signal ? 130 : 1)));
});
await stack?.stop();

const Summary = z.object({
  min: z.number(),
  median: z.number(),
  p95: z.number(),
  p99: z.number(),
  max: z.number(),
});
const ReportSchema = z.object({
  aggregate: z.object({
    counters: z.record(z.string(), z.number()),
    summaries: z.record(z.string(), Summary.partial()).default({}),
    firstCounterAt: z.number().optional(),
    lastCounterAt: z.number().optional(),
  }),
});
try {
  const { aggregate } = ReportSchema.parse(JSON.parse(await readFile(report, "utf8")));
  const c = aggregate.counters;
  const seconds = ((aggregate.lastCounterAt ?? 0) - (aggregate.firstCounterAt ?? 0)) / 1000;
  const latency = aggregate.summaries["http.response_time"];
  const codes = Object.entries(c)
    .filter(([k]) => k.startsWith("http.codes.") || k.startsWith("errors."))
    .map(([k, v]) => `${k.replace(/^http\.codes\./, "")}×${v}`)
    .join(" ");
  console.log(`
load summary: ${scenario} against ${target}
  requests   ${c["http.requests"] ?? 0} in ${seconds.toFixed(0)} s (${codes || "no responses"})
  events     ${c["tidemark.events_accepted"] ?? 0} accepted${seconds > 0 ? ` = ${Math.round((c["tidemark.events_accepted"] ?? 0) / seconds)}/s` : ""}
  latency    p50 ${latency?.median} ms  p95 ${latency?.p95} ms  p99 ${latency?.p99} ms  max ${latency?.max} ms
  failed     ${c["vusers.failed"] ?? 0} of ${c["vusers.created"] ?? 0} virtual users
  report     ${report}
  result     ${code === 0 ? "passed" : `FAILED (exit code ${code})`}`);
} catch (error) {
  console.error(`no readable report at ${report}: ${(error as Error).message}`);
}
process.exit(code);

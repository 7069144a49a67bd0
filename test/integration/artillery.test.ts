import { spawn } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalStack } from "../../local/stack.ts";
import { startPipeline } from "./support.ts";

const artilleryBin = path.join(
  path.dirname(createRequire(import.meta.url).resolve("artillery/package.json")),
  "bin",
  "run",
);

/** Runs a scenario for a few seconds at a low rate; resolves Artillery's exit code and report counters. */
async function artillery(scenario: string, target: string, overrides: Record<string, unknown> = {}) {
  const report = path.join(await mkdtemp(path.join(tmpdir(), "artillery-")), "report.json");
  const config = { phases: [{ duration: 3, arrivalRate: 4 }], ...overrides };
  let output = "";
  const code = await new Promise<number>((resolve) => {
    const child = spawn(
      process.execPath,
      [
        artilleryBin,
        "run",
        "--target",
        target,
        "--output",
        report,
        "--overrides",
        JSON.stringify({ config }),
        scenario,
      ],
      { env: { ...process.env, ARTILLERY_DISABLE_TELEMETRY: "true" } },
    );
    child.stdout.on("data", (d: Buffer) => (output += d));
    child.stderr.on("data", (d: Buffer) => (output += d));
    child.on("exit", (c) => resolve(c ?? 1));
  });
  const { aggregate } = JSON.parse(await readFile(report, "utf8")) as {
    aggregate: { counters: Record<string, number> };
  };
  return { code, counters: aggregate.counters, output };
}

describe("Artillery scenarios against the local stack", () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startPipeline();
    // Warm the functions, as a running stack would be.
    await fetch(`${stack.url}/stats?event_type=page_view`);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it.each([
    ["artillery/ingest-single.yml", 1],
    ["artillery/ingest-batched.yml", 100],
    ["artillery/stats.yml", 0],
    ["artillery/soak.yml", undefined],
  ])("%s runs, every request succeeds and its ensure checks pass", async (scenario, eventsPerRequest) => {
    // The scenarios' latency thresholds are sized for a quiet machine; a shared CI machine gets
    // generous ones here (the next test shows that a missed threshold fails the run).
    const { code, counters, output } = await artillery(scenario, stack.url, {
      plugins: {
        ensure: {
          thresholds: [{ "http.response_time.p99": 5000 }],
          conditions: [{ expression: "http.response_time.p95 < 5000" }],
        },
      },
    });
    expect(code, output).toBe(0);
    expect(counters["http.requests"]).toBeGreaterThanOrEqual(10);
    expect(counters["vusers.failed"]).toBe(0);
    expect(output).toMatch(/ok: maxErrorRate/);
    const accepted = counters["tidemark.events_accepted"] ?? 0;
    if (eventsPerRequest !== undefined)
      expect(accepted).toBe((counters["http.codes.202"] ?? 0) * eventsPerRequest);
    else expect(accepted).toBeGreaterThan(0);
  });

  it("fails the run when a threshold is not met or requests fail", async () => {
    const slow = await artillery("artillery/ingest-single.yml", stack.url, {
      plugins: { ensure: { thresholds: [{ "http.response_time.p99": 0 }] } },
    });
    expect(slow.code).not.toBe(0);
    expect(slow.output).toMatch(/fail: http\.response_time\.p99 < 0/);

    // A status other than the expected one fails the virtual user, and so the error-rate check.
    const wrong = await artillery("artillery/stats.yml", stack.url, {
      variables: { query: ["interval=5m"] }, // no event_type: 400
    });
    expect(wrong.code).not.toBe(0);
    expect(wrong.counters["tidemark.unexpected_status.400"]).toBeGreaterThan(0);
    expect(wrong.output).toMatch(/fail: maxErrorRate/);
  });
});

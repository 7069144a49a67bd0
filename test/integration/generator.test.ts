import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalStack } from "../../local/stack.ts";
import { runGenerator } from "../../scripts/generator/run.ts";
import { EVENT_TYPES } from "../../scripts/generator/traffic.ts";
import { getJson, postJson, startPipeline, waitFor } from "./support.ts";

describe("traffic generator against the local stack", () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startPipeline();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("sends paced traffic, all accepted, and GET /stats counts every distinct event", async () => {
    // Event types of their own, so other tests' events do not show in the counts.
    const prefix = `gen${Date.now()}_`;
    // Warm the ingest function first (module init, Kafka producer), as a running stack would be.
    const warm = await postJson(`${stack.url}/events`, {
      user_id: "w",
      event_type: `${prefix}warm`,
      timestamp: Date.now(),
    });
    expect(warm.status).toBe(202);
    const progress: number[] = [];
    const summary = await runGenerator({
      url: stack.url,
      apiKey: "test-key",
      rate: 200,
      users: 300,
      durationMs: 5000,
      batch: 20,
      concurrency: 8,
      lateRatio: 0.05,
      duplicateRatio: 0.05,
      seed: undefined,
      typePrefix: prefix,
      reportEveryMs: 1000,
      onProgress: (p) => progress.push(p.accepted),
    });
    expect(summary.errors, JSON.stringify(summary)).toEqual({});
    expect(summary.accepted).toBe(summary.sent);
    // Paced: at most 1,000 events (200/s for 5 s), spread over the 5 s rather than sent at once.
    // (On a busy 2-core machine the stack may not keep up with even that; the pacing itself is
    // unit-tested.)
    expect(summary.sent).toBeLessThanOrEqual(1000);
    expect(summary.sent).toBeGreaterThanOrEqual(500);
    expect(summary.seconds).toBeGreaterThan(4.5);
    expect(progress.length).toBeGreaterThanOrEqual(4);
    expect(summary.acceptedDuplicates).toBeGreaterThan(10);
    expect(summary.acceptedLate).toBeGreaterThan(10);

    // Every accepted event that is not a resend is counted once: on time in `count`, late (3 to
    // 10 minutes old, within the 15-minute interval) in `late_events`.
    const distinct = summary.accepted - summary.acceptedDuplicates;
    const counted = async () => {
      let total = 0;
      for (const type of EVENT_TYPES) {
        const { json } = await getJson(`${stack.url}/stats?event_type=${prefix}${type}&interval=15m`);
        const stats = json as { count: number; late_events?: number };
        total += stats.count + (stats.late_events ?? 0);
      }
      return total;
    };
    const total = await waitFor(async () => ((await counted()) === distinct ? distinct : undefined), {
      timeoutMs: 60_000,
      intervalMs: 500,
    }).catch(async (error: Error) => {
      throw new Error(`${error.message}; counted ${await counted()} of ${distinct}`);
    });
    expect(total).toBe(distinct);
  });
});

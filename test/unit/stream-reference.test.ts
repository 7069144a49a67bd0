import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CrashingStore,
  checkParameters,
  deliver,
  expectStatsMatchModel,
  modelOf,
  readPlanArb,
  STORE_PARTITIONS,
  scenarioArb,
} from "../support/stream-property.ts";
import { MemoryWindowStore } from "./support/memory-window-store.ts";

/**
 * Issue 8 "Proof": the stream core against the reference model (test/support/reference-model.ts),
 * through the real aggregateBatch and the memory window store (DynamoDB's transaction semantics).
 * Random logs (duplicates, late, out-of-order and future events, hostile keys, huge numbers) and
 * random delivery schedules (batch boundaries, replays, crashes at any store write with a retry
 * from the last committed Kafka offset, new execution environments, several partitions per
 * batch); every /stats figure must equal the model's (sums within the documented bound, unique
 * counts within 3 standard errors of the sketch).
 *
 * Duplicates are modelled exactly, container restarts included: a new execution environment
 * starts with an empty RecentEventIds, so a resend whose first copy was committed before the
 * environment started counts again (the documented guarantee); the schedule records where each
 * environment started and the model applies that rule. The id cache never fills (its capacity,
 * 200,000, is far above the logs' length).
 *
 * Fixed seed by default; FAST_CHECK_SEED / FAST_CHECK_RUNS vary it.
 */
const { seed, numRuns } = checkParameters(40, 8_2026);

describe("stream core against the reference model", () => {
  it(`every /stats figure equals the model's (seed ${seed}, ${numRuns} runs)`, async () => {
    let invocations = 0;
    let crashes = 0;
    let reads = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb(120), readPlanArb, async (scenario, plan) => {
        const store = new CrashingStore(new MemoryWindowStore(STORE_PARTITIONS));
        const run = await deliver(scenario, store);
        invocations += run.invocations;
        crashes += run.crashes;
        reads += await expectStatsMatchModel(store, modelOf(scenario, run), plan);
      }),
      { seed, numRuns },
    );
    // The schedules did exercise what they claim to.
    expect(crashes).toBeGreaterThan(0);
    expect(invocations).toBeGreaterThan(numRuns);
    expect(reads).toBeGreaterThan(numRuns);
  });
});

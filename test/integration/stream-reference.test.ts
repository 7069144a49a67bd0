import {
  CreateTableCommand,
  DeleteTableCommand,
  DynamoDBClient,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, ScanCommand } from "@aws-sdk/lib-dynamodb";
import fc from "fast-check";
import { afterAll, describe, expect, inject, it } from "vitest";
import { itemSizeBytes, writeUnits as unitsOf } from "../../lib/adapters/dynamodb-item-size.ts";
import { usageMeter, usageSince } from "../../lib/adapters/usage-meter.ts";
import { addUnrolledHours, DynamoWindowStore, FenceConflictError } from "../../lib/adapters/window-store.ts";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import { aggregateBatch, RecentEventIds } from "../../lib/pipeline/aggregate-batch.ts";
import { readStats } from "../../lib/pipeline/stats-service.ts";
import type { SourcedEvent } from "../../lib/stream/fold.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { tables } from "../../lib/topology.ts";
import {
  CrashingStore,
  checkParameters,
  deliver,
  expectStatsMatchModel,
  modelOf,
  readPlanArb,
  STORE_PARTITIONS,
  scenarioArb,
  TOPIC,
} from "../support/stream-property.ts";

/**
 * The reference-model property of test/unit/stream-reference.test.ts against DynamoDB Local
 * through DynamoWindowStore: the item encoding (binary partials, chunks), the fence condition
 * and transactions, compaction and strongly consistent Queries are the real ones. Each run gets
 * its own pair of tables (aggregates, stream state), created as local/bootstrap.ts does and
 * deleted afterwards. No Kafka: the schedule plays the event-source mapping.
 *
 * Fewer runs than the unit test (a DynamoDB transaction costs milliseconds); a fixed seed by
 * default, FAST_CHECK_SEED / FAST_CHECK_RUNS vary it.
 */
const { seed, numRuns } = checkParameters(8, 8_2026);

const client = new DynamoDBClient({
  region: "us-east-1",
  endpoint: inject("endpoints").dynamodbEndpoint,
  credentials: { accessKeyId: "local", secretAccessKey: "local" },
});
const db = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
const created: string[] = [];

async function createTable(name: string, spec: (typeof tables)["aggregates" | "streamState"]) {
  await client.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: [
        { AttributeName: spec.partitionKey.name, AttributeType: spec.partitionKey.type },
        { AttributeName: spec.sortKey.name, AttributeType: spec.sortKey.type },
      ],
      KeySchema: [
        { AttributeName: spec.partitionKey.name, KeyType: "HASH" },
        { AttributeName: spec.sortKey.name, KeyType: "RANGE" },
      ],
    }),
  );
  await waitUntilTableExists({ client, maxWaitTime: 30 }, { TableName: name });
  created.push(name);
}

const dropCreated = async () => {
  for (const name of created.splice(0)) await client.send(new DeleteTableCommand({ TableName: name }));
};

afterAll(async () => {
  await dropCreated();
  client.destroy();
});

describe("stream core against the reference model, on DynamoDB Local", () => {
  it(`every /stats figure equals the model's (seed ${seed}, ${numRuns} runs)`, {
    timeout: 600_000,
  }, async () => {
    const prefix = `ref-${Date.now()}`;
    let run = 0;
    let crashes = 0;
    let writeUnits = 0;
    let owedSeen = 0;
    let closedSeen = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb(80), readPlanArb, async (scenario, plan) => {
        const aggregates = `${prefix}-${run}-aggregates`;
        const state = `${prefix}-${run}-state`;
        run++;
        await createTable(aggregates, tables.aggregates);
        await createTable(state, tables.streamState);
        try {
          const inner = new DynamoWindowStore(db, aggregates, state);
          const store = new CrashingStore(inner);
          const usageBefore = usageMeter.snapshot();
          const result = await deliver(scenario, store);
          crashes += result.crashes;
          writeUnits += inner.consumedWriteUnits;
          // The units still owed are exactly what deleting the delta items left behind will cost
          // (plain deletes, after the compaction that absorbs them; a crash may leave some).
          const stored = await db.send(new ScanCommand({ TableName: aggregates, ConsistentRead: true }));
          const owedByTable = (stored.Items ?? [])
            .filter((item) => item.kind === "d")
            .reduce((n, item) => n + unitsOf(itemSizeBytes(item), false), 0);
          expect(usageSince(usageMeter.snapshot(), usageBefore).dynamodb.owedWriteUnits).toBe(owedByTable);
          owedSeen += owedByTable;
          // GET /stats' closed windows: the lowest closedBefore of the partitions' fences, read in one Query.
          const fences = await Promise.all(
            Array.from({ length: STORE_PARTITIONS }, (_, p) => inner.getFence(TOPIC, p)),
          );
          const snapshot = await inner.fenceSnapshot(TOPIC, STORE_PARTITIONS);
          const { closedBefore } = snapshot;
          expect(closedBefore).toBe(
            Math.min(...fences.map((f) => (f.stored ? f.closedBefore : Number.NEGATIVE_INFINITY))),
          );
          // And the hours whose minutes are not rolled up yet: those of every fence's dirty minutes.
          const unrolled = new Map<string, Set<number>>();
          addUnrolledHours(
            fences.flatMap((f) => [...f.dirty.keys()]),
            unrolled,
          );
          expect(snapshot.unrolledHours).toEqual(unrolled);
          if (Number.isFinite(closedBefore)) closedSeen++;
          await expectStatsMatchModel(store, modelOf(scenario, result), plan);
        } finally {
          await dropCreated();
        }
      }),
      // A failure is reported with its seed and path as found: shrinking against DynamoDB Local
      // would take minutes (replay it in the unit test, or here with FAST_CHECK_SEED).
      { seed, numRuns, endOnFailure: true },
    );
    expect(crashes).toBeGreaterThan(0);
    expect(writeUnits).toBeGreaterThan(0);
    expect(owedSeen).toBeGreaterThan(0);
    expect(closedSeen).toBeGreaterThan(0);
  });
});

/** GET /stats' count of one event type over the last 5 minutes, read through `store`. */
const countOfType = async (store: DynamoWindowStore, eventType: string) =>
  (
    (await readStats(
      store,
      BUILT_IN_RULES,
      { kind: "event_type", event_type: eventType, interval: "5m", intervalMs: 300_000, group_by: [] },
      Date.now(),
    )) as { count: number }
  ).count;

describe("fences cached per execution environment", () => {
  it("a partition that moved away and back commits nothing twice: the stale fence is refused, the retry reads the table", async () => {
    const prefix = `fence-${Date.now()}`;
    await createTable(`${prefix}-aggregates`, tables.aggregates);
    await createTable(`${prefix}-state`, tables.streamState);
    const environment = () => ({
      store: new DynamoWindowStore(db, `${prefix}-aggregates`, `${prefix}-state`),
      recent: new RecentEventIds(),
    });
    const a = environment();
    const b = environment();
    const now = Date.now();
    const events = (from: number, to: number): SourcedEvent[] =>
      Array.from({ length: to - from }, (_, i) => {
        const offset = from + i;
        const event: AcceptedEvent = {
          event_id: `${prefix}-${offset}`,
          user_id: `u${offset % 7}`,
          event_type: `${prefix}_type`,
          timestamp: now - 5_000,
          received_at: now - 5_000,
        };
        return { partition: 0, offset, event };
      });
    const run = (env: ReturnType<typeof environment>, records: SourcedEvent[]) =>
      aggregateBatch("events.raw", records, {
        store: env.store,
        rules: BUILT_IN_RULES,
        recent: env.recent,
        publishLate: async () => {},
      });
    const counted = () => countOfType(b.store, `${prefix}_type`);

    await run(a, events(0, 10)); // A owns partition 0 and caches its fence at offset 9
    await run(b, events(10, 25)); // the partition moved to B, which commits 10..24
    // Back to A, which is handed 25..29 (B committed its offsets) but still holds the fence at 9.
    await expect(run(a, events(25, 30))).rejects.toThrow(FenceConflictError);
    expect(await counted()).toBe(25);
    // The mapping retries the batch: A reads the fence from the table now.
    await run(a, events(25, 30));
    expect(await counted()).toBe(30);
    // A replay of what B committed changes nothing, from either environment.
    await run(a, events(10, 30));
    // B still holds its fence at 24: refused once, then nothing to apply.
    await expect(run(b, events(0, 30))).rejects.toThrow(FenceConflictError);
    await run(b, events(0, 30));
    expect(await counted()).toBe(30);
    await dropCreated();
  });
});

describe("a claim left by a dead environment, read back from DynamoDB Local", () => {
  it("another environment reads the claim from the table and writes the slice as the claimant would have, resends included", async () => {
    const prefix = `claim-${Date.now()}`;
    await createTable(`${prefix}-aggregates`, tables.aggregates);
    await createTable(`${prefix}-state`, tables.streamState);
    const now = Date.now();
    const event = (id: string): AcceptedEvent => ({
      event_id: `${prefix}-${id}`,
      user_id: "u1",
      event_type: `${prefix}_type`,
      timestamp: now - 5_000,
      received_at: now - 5_000,
    });
    const batch: SourcedEvent[] = ["a", "b", "a", "c"].map((id, offset) => ({
      partition: 0,
      offset,
      event: event(id),
    }));
    const store = () => new DynamoWindowStore(db, `${prefix}-aggregates`, `${prefix}-state`);
    const run = (s: DynamoWindowStore) =>
      aggregateBatch("events.raw", batch, {
        store: s,
        rules: BUILT_IN_RULES,
        recent: new RecentEventIds(),
        publishLate: async () => {},
      });
    // The claimant dies at its deltas: the claim (first slice of the partition, from a fence
    // with no watermark yet) is all it leaves.
    const claimant = store();
    claimant.putDeltas = () => Promise.reject(new Error("crash"));
    await expect(run(claimant)).rejects.toThrow("crash");
    const fresh = store();
    const claimed = await fresh.getFence("events.raw", 0);
    expect(claimed.pending).toEqual({
      first: 0,
      records: 4,
      maxEventTime: Number.NEGATIVE_INFINITY,
      closesBefore: claimed.pending?.closesBefore,
      duplicates: [2],
    });
    expect(claimed.closedBefore).toBe(Number.NEGATIVE_INFINITY);
    const outcome = await run(fresh);
    expect(outcome.rewrites).toBe(1);
    expect(await countOfType(fresh, `${prefix}_type`)).toBe(3);
    const confirmed = await store().getFence("events.raw", 0);
    expect(confirmed.pending).toBeUndefined();
    expect(confirmed.closedBefore).toBe(claimed.pending?.closesBefore);
    await dropCreated();
  });
});

import {
  CreateTableCommand,
  DeleteTableCommand,
  DynamoDBClient,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import fc from "fast-check";
import { afterAll, describe, expect, inject, it } from "vitest";
import { DynamoWindowStore } from "../../lib/adapters/window-store.ts";
import { tables } from "../../lib/topology.ts";
import {
  CrashingStore,
  checkParameters,
  deliver,
  expectStatsMatchModel,
  modelOf,
  readPlanArb,
  scenarioArb,
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
          const result = await deliver(scenario, store);
          crashes += result.crashes;
          writeUnits += inner.consumedWriteUnits;
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
  });
});

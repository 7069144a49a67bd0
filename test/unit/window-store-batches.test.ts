import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { BatchGetCommand, BatchWriteCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, it } from "vitest";
import { DynamoWindowStore } from "../../lib/adapters/window-store.ts";
import { encodePartial, type PartialRecord } from "../../lib/stream/partial-items.ts";

/**
 * DynamoDB answers a batch operation under throttling by leaving part of it unprocessed; the
 * store sends that part again (with backoff) instead of losing it, and fails the batch when
 * DynamoDB keeps refusing. DynamoDB Local never throttles, so a scripted client plays DynamoDB.
 */
const TABLE = "aggregates";
const deltas = (n: number): PartialRecord[] =>
  Array.from({ length: n }, (_, i) => {
    const [r] = encodePartial(
      { ruleKey: "events_by_type", granularity: "m", windowStart: 1_764_000_000_000 },
      0,
      "d",
      i,
      new Map([["click", { c: 1 }]]),
      0,
    );
    if (!r) throw new Error("no record");
    return r;
  });

/** A client whose batch calls leave the first `refusals` requests of each call unprocessed. */
function scripted(refusals: (call: number) => number) {
  const calls: { kind: string; requests: number }[] = [];
  const db = {
    send: async (command: unknown) => {
      const call = calls.length;
      if (command instanceof BatchWriteCommand) {
        const requests = command.input.RequestItems?.[TABLE] ?? [];
        calls.push({ kind: "write", requests: requests.length });
        const left = requests.slice(0, Math.min(refusals(call), requests.length));
        return { UnprocessedItems: left.length > 0 ? { [TABLE]: left } : {}, ConsumedCapacity: [] };
      }
      if (command instanceof BatchGetCommand) {
        const keys = command.input.RequestItems?.[TABLE]?.Keys ?? [];
        calls.push({ kind: "get", requests: keys.length });
        const left = keys.slice(0, Math.min(refusals(call), keys.length));
        // Everything processed is reported as stored but the last key of the first call.
        const found = keys.slice(left.length).filter((_, i, all) => call > 0 || i < all.length - 1);
        return {
          Responses: { [TABLE]: found },
          UnprocessedKeys: left.length > 0 ? { [TABLE]: { Keys: left } } : {},
        };
      }
      throw new Error("unexpected command");
    },
  };
  return { db: db as unknown as DynamoDBDocumentClient, calls };
}

describe("DynamoWindowStore batch writes and reads", () => {
  it("puts 30 deltas in calls of at most 25, and sends again what DynamoDB left unprocessed", async () => {
    const { db, calls } = scripted((call) => (call < 2 ? 3 : 0));
    await new DynamoWindowStore(db, TABLE, "state").putDeltas(deltas(30));
    expect(calls.filter((c) => c.kind === "write").map((c) => c.requests)).toEqual([25, 5, 3, 3]);
  });

  it("fails the batch when DynamoDB keeps refusing, instead of dropping what it refused", async () => {
    const { db, calls } = scripted(() => 1);
    await expect(new DynamoWindowStore(db, TABLE, "state").discard(deltas(2))).rejects.toThrow(
      /1 absorbed deltas left undeleted/,
    );
    expect(calls.length).toBe(7); // the first call and six retries
  }, 20_000);

  it("reads which deltas are missing in calls of at most 100 keys, unprocessed keys included", async () => {
    const { db, calls } = scripted((call) => (call === 0 ? 10 : 0));
    const puts = deltas(150);
    const missing = await new DynamoWindowStore(db, TABLE, "state").missingDeltas(puts);
    expect(calls.map((c) => c.requests)).toEqual([100, 10, 50]);
    expect(missing.map((r) => r.sk)).toEqual([puts[99]?.sk]);
  });
});

import { PutItemCommand } from "@aws-sdk/client-dynamodb";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  DynamoWindowStore,
  type Fence,
  FenceConflictError,
  INITIAL_FENCE,
} from "../../lib/adapters/window-store.ts";
import { encodePartial, type PartialRecord } from "../../lib/stream/partial-items.ts";
import { playedDynamoDb } from "../support/played-dynamodb.ts";

/**
 * The aggregator's conditional puts (its fence twice a batch, each delta it extends) go through a
 * low-level client that resolves the SDK's middleware stack once per command class, not once per
 * request, with items marshalled as the document client marshals them: the same requests, byte for
 * byte, and the same refusals. A request handler plays DynamoDB and records what is sent.
 */
function playing(refuse: (call: number) => boolean) {
  return playedDynamoDb((_request, call) =>
    refuse(call)
      ? [400, { __type: "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", message: "no" }]
      : [200, { ConsumedCapacity: { TableName: "t", CapacityUnits: 1, WriteCapacityUnits: 1 } }],
  );
}

/** A delta a slice extends: a binary blob, numbers, `u` and `t`; hostile group keys. */
const delta = (): PartialRecord => {
  const groups = new Map([
    ["__proto__", { c: 3, v: { n: 2, s: 1e308, e: 0, lo: [1e-300], o: 1, mn: -0.5, mx: 1e308 } }],
    ["\u0000other", { c: 1 }],
    [
      "ünïcødé ✓",
      { c: 2, f: new Map([["amount", { n: 1, s: 0.1, e: 0, lo: null, o: 0, mn: 0.1, mx: 0.1 }]]) },
    ],
  ]);
  const [r] = encodePartial(
    { ruleKey: "events_by_type", granularity: "m", windowStart: 1_764_000_000_000 },
    3,
    "d",
    41,
    groups,
    1_764_000_012_345,
    true,
    57,
  );
  if (!r) throw new Error("no record");
  return r;
};
const claimed: Fence = {
  lastOffset: 57,
  maxEventTime: 1_764_000_010_000,
  closedBefore: Number.NEGATIVE_INFINITY,
  dirty: new Map([
    ["events_by_type#m#1764000000000", 2],
    ["unique_users#m#1764000000000", 1],
  ]),
  latePending: [50, 51],
  pending: {
    first: 41,
    records: 17,
    maxEventTime: Number.NEGATIVE_INFINITY,
    closesBefore: 1_763_999_880_000,
    duplicates: [44],
    extended: [["events_by_type#m#1764000000000", 20]],
  },
  stored: true,
};

/** The fence claimed, the delta extended, the fence confirmed: what a batch puts. */
async function batchPuts(store: DynamoWindowStore): Promise<void> {
  await store.putFence({ topic: "events.raw", partition: 3, expected: INITIAL_FENCE, fence: claimed });
  await store.extendDelta(delta(), { through: 40, bytes: 900 });
  const { pending: _, ...confirmed } = claimed;
  await store.putFence({ topic: "events.raw", partition: 3, expected: claimed, fence: confirmed });
}

afterEach(() => vi.restoreAllMocks());

describe("the aggregator's conditional puts", () => {
  it("send the very requests the document client sends", async () => {
    const viaDoc = playing(() => false);
    await batchPuts(new DynamoWindowStore(viaDoc.db, "aggregates", "state"));
    const viaPuts = playing(() => false);
    await batchPuts(new DynamoWindowStore(viaPuts.db, "aggregates", "state", viaPuts.puts));
    expect(viaDoc.sent).toHaveLength(3);
    expect(viaPuts.sent).toEqual(viaDoc.sent);
  });

  it("resolve the middleware stack once, not once a request", async () => {
    const resolve = vi.spyOn(PutItemCommand.prototype, "resolveMiddleware");
    const { db, puts, sent } = playing(() => false);
    const store = new DynamoWindowStore(db, "aggregates", "state", puts);
    await batchPuts(store);
    await store.extendDelta(delta(), { through: 40, bytes: 900 });
    expect(sent).toHaveLength(4);
    expect(resolve).toHaveBeenCalledTimes(1);
  });

  it("are refused as the document client's are: the fence moved, the delta grew", async () => {
    for (const viaPuts of [false, true]) {
      const { db, puts } = playing(() => true);
      const store = new DynamoWindowStore(db, "aggregates", "state", viaPuts ? puts : undefined);
      await expect(
        store.putFence({ topic: "events.raw", partition: 3, expected: INITIAL_FENCE, fence: claimed }),
      ).rejects.toBeInstanceOf(FenceConflictError);
      await expect(store.extendDelta(delta(), { through: 40, bytes: 900 })).rejects.toBeInstanceOf(
        FenceConflictError,
      );
    }
  });
});

import { type DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { itemSizeBytes, writeUnits } from "../../lib/adapters/dynamodb-item-size.ts";
import { usageMeter, usageSince } from "../../lib/adapters/usage-meter.ts";
import { DynamoWindowStore, FenceConflictError } from "../../lib/adapters/window-store.ts";
import { encodePartial, type PartialRecord } from "../../lib/stream/partial-items.ts";
import { scratchTable } from "./support.ts";

/**
 * The conditions that keep a small delta growing in place exact, as DynamoDB applies them: an
 * extension lands only over the groups it was computed from (`t`), and a slice's deltas written
 * again by another invocation land only where the key is free. lib/pipeline/aggregate-batch.ts
 * relies on both (test/unit/open-deltas.test.ts stages the races against the memory store).
 */
describe("DynamoWindowStore's conditional delta writes on DynamoDB Local", () => {
  let db: DynamoDBDocumentClient;
  let table: string;
  let store: DynamoWindowStore;
  beforeAll(async () => {
    ({ db, table } = await scratchTable("delta_conditions"));
    store = new DynamoWindowStore(db, table, "unused");
  });

  let window = 0;
  /** A delta of a new window at offset 100, holding `types` clicks, groups through `through`. */
  const delta = (
    types: string[],
    through: number,
    ws = 1_764_000_000_000 + 60_000 * window++,
  ): PartialRecord => {
    const groups = new Map(types.map((t) => [t, { c: 1 }]));
    const [record] = encodePartial(
      { ruleKey: "events_by_type", granularity: "m", windowStart: ws },
      2,
      "d",
      100,
      groups,
      Date.now(),
      true,
      through,
    );
    if (!record) throw new Error("no record");
    return record;
  };
  const stored = async (r: PartialRecord) =>
    (await db.send(new GetCommand({ TableName: table, Key: { pk: r.pk, sk: r.sk }, ConsistentRead: true })))
      .Item;

  it("extends a delta only while it holds groups through the offset the extension was computed from", async () => {
    const first = delta(["a"], 109);
    await store.putDeltas([first]);
    expect(await store.getDelta(first)).toMatchObject({ t: 109, n: 1, u: 1, offset: 100 });
    const second = { ...delta(["a", "b"], 119, first.ws) };
    const before = usageMeter.snapshot();
    await store.extendDelta(second, { through: 109, bytes: itemSizeBytes(first) });
    // Billed as DynamoDB bills a put over an item: by the larger of the two.
    expect(usageSince(usageMeter.snapshot(), before).dynamodb.computedWriteUnits).toBe(
      writeUnits(Math.max(itemSizeBytes(first), itemSizeBytes(second)), false),
    );
    expect(await store.getDelta(first)).toMatchObject({ t: 119, n: 2 });
    // The same extension again (its claimant's, landing after a rewriter's), or a stale one.
    await expect(store.extendDelta(second, { through: 109, bytes: itemSizeBytes(first) })).rejects.toThrow(
      FenceConflictError,
    );
    const stale = delta(["a", "z"], 119, first.ws);
    await expect(store.extendDelta(stale, { through: 109, bytes: itemSizeBytes(first) })).rejects.toThrow(
      FenceConflictError,
    );
    expect((await stored(first))?.t).toBe(119);
    expect(await store.getDelta(first)).toMatchObject({ t: 119, n: 2 });
    // A delta a compaction deleted is never extended again.
    const gone = delta(["q"], 209);
    await expect(store.extendDelta(gone, { through: 199, bytes: 100 })).rejects.toThrow(FenceConflictError);
    expect(await stored(gone)).toBeUndefined();
  });

  it("writes a slice's deltas again only where their keys are free", async () => {
    const extended = delta(["a", "b", "c"], 129);
    await store.putDeltas([extended]);
    const asClaimed = delta(["a"], 109, extended.ws);
    const missing = delta(["m"], 109);
    await store.putDeltasIfAbsent([asClaimed, missing]);
    expect(await store.getDelta(extended)).toMatchObject({ t: 129, n: 3 });
    expect(await store.getDelta(missing)).toMatchObject({ t: 109, n: 1 });
  });
});

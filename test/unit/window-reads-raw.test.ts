import { marshall } from "@aws-sdk/util-dynamodb";
import { describe, expect, it } from "vitest";
import { DynamoWindowStore } from "../../lib/adapters/window-store.ts";
import { encodePartial, type PartialRecord } from "../../lib/stream/partial-items.ts";
import { playedDynamoDb } from "../support/played-dynamodb.ts";

/**
 * GET /stats' window Queries go through the low-level client whose middleware stack is resolved
 * once (`createDynamoDbRaw`), items unmarshalled as the document client does: the same requests,
 * byte for byte, and the same records, pages included. A request handler plays DynamoDB.
 */
const WS = 1_764_000_000_000;

const record = (partition: number, offset: number): PartialRecord => {
  const groups = new Map([
    ["__proto__", { c: 3, v: { n: 2, s: 1e308, e: 0, lo: [1e-300], o: 1, mn: -0.5, mx: 1e308 } }],
    ["ünïcødé ✓", { c: 2 }],
  ]);
  const [r] = encodePartial(
    { ruleKey: "events_by_type", granularity: "m", windowStart: WS },
    partition,
    "d",
    offset,
    groups,
    WS + 12_345,
    true,
    offset + 9,
  );
  if (!r) throw new Error("no record");
  return r;
};

/** DynamoDB's JSON of an item: binary attributes in base64 (a Buffer reaches the replacer as its toJSON). */
const wire = (item: object) =>
  JSON.parse(
    JSON.stringify(marshall(item, { removeUndefinedValues: true }), (_k, v) =>
      v?.type === "Buffer" && Array.isArray(v.data) ? Buffer.from(v.data).toString("base64") : v,
    ),
  );

function playing() {
  const pages = [
    { Items: [wire(record(0, 41)), wire(record(1, 7))], LastEvaluatedKey: wire({ pk: "x", sk: "y" }) },
    { Items: [wire(record(2, 19))] },
  ];
  const played = playedDynamoDb((_request, n) => [200, pages[n % pages.length]]);
  return {
    db: played.db,
    puts: played.puts,
    /** The request bodies so far. */
    get sent() {
      return played.sent.map((r) => r.body);
    },
  };
}

describe("window reads through the low-level client", () => {
  it("sends the document client's requests and returns its records, over pages", async () => {
    const viaDoc = playing();
    const viaRaw = playing();
    const docStore = new DynamoWindowStore(viaDoc.db, "aggregates", "state");
    const rawStore = new DynamoWindowStore(viaRaw.db, "aggregates", "state", viaRaw.puts);
    const expected = await docStore.read("events_by_type", "m", [WS]);
    const got = await rawStore.read("events_by_type", "m", [WS]);
    expect(expected).toHaveLength(3);
    expect(got).toEqual(expected);
    expect(got.map((r) => [r.p, r.offset])).toEqual([
      [0, 41],
      [1, 7],
      [2, 19],
    ]);
    expect(got[0]?.b).toBeInstanceOf(Uint8Array);
    // Two pages, the second from the first's LastEvaluatedKey; no request through the document client.
    expect(viaRaw.sent).toEqual(viaDoc.sent);
    expect(viaRaw.sent).toHaveLength(2);
    expect(JSON.parse(viaRaw.sent[1] ?? "{}").ExclusiveStartKey).toEqual({ pk: { S: "x" }, sk: { S: "y" } });
  });
});

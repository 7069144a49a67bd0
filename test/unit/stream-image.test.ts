import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { describe, expect, it } from "vitest";
import { unmarshallStreamImage } from "../../lib/adapters/stream-image.ts";
import { changedWindowsOf } from "../../lib/pipeline/publish-stats.ts";
import { foldRecords, type SourcedEvent } from "../../lib/stream/fold.ts";
import { encodePartial, type PartialRecord } from "../../lib/stream/partial-items.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { toLambdaImage } from "../../local/table-stream-mapping.ts";

const minute = Date.UTC(2026, 10, 24, 10, 30);

function deltas(): PartialRecord[] {
  const events: SourcedEvent[] = Array.from({ length: 120 }, (_, i) => ({
    partition: 0,
    offset: i,
    event: {
      event_id: `e${i}`,
      user_id: `user-${i % 17}`,
      session_id: `s-${i % 5}`,
      event_type: ["page_view", "click", "purchase"][i % 3] ?? "click",
      timestamp: minute + i * 100,
      page_url: `https://shop.example/p/${i % 4}`,
      properties: { amount: i * 1.5 },
      received_at: minute + 60_000,
    },
  }));
  const out: PartialRecord[] = [];
  for (const delta of foldRecords(events, BUILT_IN_RULES).values()) {
    if (delta.ref.granularity === "m") out.push(...encodePartial(delta.ref, 0, "d", 0, delta.groups, minute));
  }
  return out;
}

/** A NewImage exactly as Lambda's event carries it: the stream record's JSON. */
function lambdaImageOf(record: PartialRecord) {
  return JSON.parse(JSON.stringify(toLambdaImage(marshall(record, { removeUndefinedValues: true }))));
}

describe("DynamoDB stream images as Lambda delivers them", () => {
  const records = deltas();

  it("the local stream emulation hands binary attributes over as base64 text, like Lambda", () => {
    const first = records[0];
    if (!first) throw new Error("no delta records");
    const image = lambdaImageOf(first);
    expect(typeof image.b.B).toBe("string");
    expect(Buffer.from(image.b.B, "base64").equals(Buffer.from(first.b))).toBe(true);
    expect(image.pk).toEqual({ S: first.pk });
    expect(image.n).toEqual({ N: String(first.n) });
  });

  it("the stats publisher finds every changed window and group in Lambda's images", () => {
    const expected = changedWindowsOf(records.map((r) => ({ ...r })));
    expect(expected.length).toBeGreaterThan(0);
    const fromLambda = changedWindowsOf(records.map((r) => unmarshallStreamImage(lambdaImageOf(r))));
    expect(fromLambda.map((w) => [w.ref, [...w.groups].sort()])).toEqual(
      expected.map((w) => [w.ref, [...w.groups].sort()]),
    );
  });

  it("a delta whose packed groups are still base64 fails loudly instead of publishing nothing", () => {
    // What the publisher did before: the SDK's unmarshall leaves Lambda's base64 as a string.
    const misread = records.map((r) => unmarshall(lambdaImageOf(r)));
    expect(() => changedWindowsOf(misread)).toThrow(/packed groups/);
  });

  it("decodes binary values inside sets, maps and lists, and refuses bytes where Lambda sends base64", () => {
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    const image = JSON.parse(
      JSON.stringify(
        toLambdaImage({
          bs: { BS: [bytes, new Uint8Array([9])] },
          m: { M: { inner: { B: bytes }, list: { L: [{ B: bytes }, { S: "text" }] } } },
        }),
      ),
    );
    const value = unmarshallStreamImage(image);
    expect([...(value.bs as Set<Uint8Array>)].map((b) => [...b])).toEqual([[...bytes], [9]]);
    const m = value.m as { inner: Uint8Array; list: [Uint8Array, string] };
    expect([...m.inner]).toEqual([...bytes]);
    expect([...m.list[0]]).toEqual([...bytes]);
    expect(m.list[1]).toBe("text");
    expect(() => unmarshallStreamImage({ b: { B: bytes as unknown as string } })).toThrow(/base64/);
  });
});

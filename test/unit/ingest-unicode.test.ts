import { describe, expect, it } from "vitest";
import { acceptedByHand, parseIngestBody } from "../../lib/contract/event.ts";

/**
 * POST /events with a string holding a lone UTF-16 surrogate (JSON's `"\ud800"`): a 400 naming
 * the field. It was accepted and archived, and DuckDB then refused the whole NDJSON object ("no
 * low surrogate in string"): GET /events failed for that hour.
 */
const now = Date.UTC(2026, 10, 22, 12, 0, 0);
const retentionMs = 365 * 86_400_000;
const parse = (body: string) => parseIngestBody(body, { now, retentionMs });
const base = `"user_id":"u1","event_type":"page_view","timestamp":${now}`;

function problems(body: string) {
  const result = parse(body);
  if (result.ok) throw new Error("expected a rejection");
  expect(result.error.status).toBe(400);
  return (result.error.details as { problems: { index: number; field: string; message: string }[] }).problems;
}

describe("strings that are not Unicode text", () => {
  it("are refused in every string field, named by field", () => {
    for (const [field, json] of [
      ["user_id", `{"user_id":"u\\ud800","event_type":"page_view","timestamp":${now}}`],
      ["event_id", `{${base},"event_id":"e\\udfff1"}`],
      ["session_id", `{${base},"session_id":"\\udc00"}`],
      ["page_url", `{${base},"page_url":"https://example.com/\\ud83d"}`],
    ] as const) {
      expect(problems(json)).toEqual([
        { index: 0, field, message: expect.stringContaining("lone UTF-16 surrogate") },
      ]);
    }
  });

  it("are refused in property and metadata values and names, nested", () => {
    expect(problems(`{${base},"properties":{"a":{"b":["ok","x\\ud800y"]}}}`)).toEqual([
      { index: 0, field: "properties.a.b.1", message: expect.stringContaining("lone UTF-16 surrogate") },
    ]);
    expect(problems(`{${base},"metadata":{"user_agent":"\\udbff"}}`)).toEqual([
      { index: 0, field: "metadata.user_agent", message: expect.stringContaining("lone UTF-16 surrogate") },
    ]);
    // A name is reported at the object holding it: the name itself is no text to show.
    expect(problems(`{${base},"properties":{"a":[{"k\\ud800":1}]}}`)).toEqual([
      { index: 0, field: "properties.a.0", message: expect.stringContaining("property name") },
    ]);
    expect(problems(`{${base},"properties":{"\\udc00":1}}`)).toEqual([
      { index: 0, field: "properties", message: expect.stringContaining("property name") },
    ]);
  });

  it("are refused in any event of a batch, which is refused whole", () => {
    const body = `[{${base}},{${base},"properties":{"a":"\\ud800"}},{${base}}]`;
    expect(problems(body).map((p) => [p.index, p.field])).toEqual([[1, "properties.a"]]);
  });

  it("a lone surrogate already in the body text (not escaped) is refused too", () => {
    expect(problems(`{${base},"properties":{"a":"\ud800"}}`)[0]?.field).toBe("properties.a");
  });

  it("accepts surrogate pairs, escaped or not, and keeps them", () => {
    const result = parse(
      `[{${base},"properties":{"e":"\\ud83d\\ude00","😀":"😀"},"user_id":"\\ud83d\\ude00"}]`,
    );
    expect(result.ok && result.events[0]).toMatchObject({
      user_id: "😀",
      properties: { e: "😀", "😀": "😀" },
    });
  });

  it("the hot path never accepts one by hand", () => {
    expect(acceptedByHand({ user_id: "u\ud800", event_type: "page_view", timestamp: now })).toBeUndefined();
    expect(
      acceptedByHand({
        user_id: "u",
        event_type: "page_view",
        timestamp: now,
        properties: { a: { "\udc00": 1 } },
      }),
    ).toBeUndefined();
  });
});

import { describe, expect, it } from "vitest";
import { acceptedByHand, MAX_JSON_DEPTH, parseIngestBody } from "../../lib/contract/event.ts";

/**
 * POST /events with `properties` or `metadata` nested deeper than 64 levels: a 400 naming the
 * field. It was accepted, and a few thousand levels (they fit in 32 KiB) made serializing the
 * event overflow the stack, which the handler answered with a 500.
 */
const now = Date.UTC(2026, 10, 22, 12, 0, 0);
const retentionMs = 365 * 86_400_000;
const parse = (body: string) => parseIngestBody(body, { now, retentionMs });

/** `levels` objects within each other (`{"a":{"a":…1}}`), or arrays (`[[…1]]`), as JSON text. */
const nested = (levels: number, kind: "object" | "array" = "object") =>
  kind === "object"
    ? `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`
    : `${"[".repeat(levels)}1${"]".repeat(levels)}`;
const eventWith = (field: "properties" | "metadata", json: string) =>
  `{"user_id":"u1","event_type":"page_view","timestamp":${now},"${field}":${json}}`;

function problems(result: ReturnType<typeof parse>) {
  if (result.ok) throw new Error("expected a rejection");
  expect(result.error.status).toBe(400);
  return (result.error.details as { problems: { index: number; field: string; message: string }[] }).problems;
}

describe("deeply nested event values", () => {
  it("accepts 64 levels", () => {
    expect(MAX_JSON_DEPTH).toBe(64);
    expect(parse(eventWith("properties", nested(64))).ok).toBe(true);
    expect(parse(eventWith("metadata", `{"a":${nested(63, "array")}}`)).ok).toBe(true);
  });

  it("refuses 65 levels of objects or arrays with a 400 naming the field", () => {
    expect(problems(parse(eventWith("properties", nested(65))))).toEqual([
      { index: 0, field: "properties", message: expect.stringContaining("more than 64 levels") },
    ]);
    expect(problems(parse(eventWith("metadata", `{"a":${nested(64, "array")}}`)))).toEqual([
      { index: 0, field: "metadata", message: expect.stringContaining("more than 64 levels") },
    ]);
  });

  it("answers 400, not 500, for thousands of levels (they fit in 32 KiB)", () => {
    for (const levels of [5_000, 6_000, 100_000]) {
      const body = eventWith("properties", nested(levels));
      let result: ReturnType<typeof parse> | undefined;
      expect(() => {
        result = parse(body);
      }).not.toThrow();
      expect(problems(result as ReturnType<typeof parse>)[0]?.field).toBe("properties");
      expect(acceptedByHand(JSON.parse(body))).toBeUndefined();
    }
  });
});

import { describe, expect, it } from "vitest";
import { acceptedByHand, parseIngestBody } from "../../lib/contract/event.ts";

/**
 * POST /events with a number beyond a double's range (`1e999`, `-1e999`, a 400-digit integer) in
 * `properties` or `metadata`: JSON.parse reads it as ±Infinity, which JSON cannot write, so the
 * event was accepted (202) and published, archived and returned by GET /events with `null` in
 * its place: the value the client sent was silently lost. It is now a 400 naming the field.
 */
const now = Date.UTC(2026, 10, 22, 12, 0, 0);
const retentionMs = 365 * 86_400_000;
const parse = (body: string) => parseIngestBody(body, { now, retentionMs });
const eventWith = (field: "properties" | "metadata", json: string) =>
  `{"user_id":"u1","event_type":"purchase_completed","timestamp":${now},"${field}":${json}}`;

function problems(result: ReturnType<typeof parse>) {
  if (result.ok) throw new Error(`expected a rejection, got ${result.serialized.join("\n")}`);
  expect(result.error.status).toBe(400);
  return (result.error.details as { problems: { index: number; field: string; message: string }[] }).problems;
}

describe("numbers beyond a double's range in event values", () => {
  it("refuses 1e999 and -1e999 with a 400 naming the field", () => {
    expect(problems(parse(eventWith("properties", '{"amount":1e999,"currency":"EUR"}')))).toEqual([
      { index: 0, field: "properties.amount", message: expect.stringContaining("beyond the range") },
    ]);
    expect(problems(parse(eventWith("metadata", '{"screen":{"w":-1e999}}')))).toEqual([
      { index: 0, field: "metadata.screen.w", message: expect.stringContaining("beyond the range") },
    ]);
  });

  it("refuses them in arrays and as long integers, and accepts nothing of such a request", () => {
    const huge = `1${"0".repeat(400)}`;
    const body = `[${eventWith("properties", '{"ok":1}')},${eventWith("properties", `{"list":[1,2,${huge}]}`)}]`;
    const found = problems(parse(body));
    expect(found).toEqual([{ index: 1, field: "properties.list.2", message: expect.any(String) }]);
    expect(acceptedByHand(JSON.parse(eventWith("properties", `{"x":${huge}}`)))).toBeUndefined();
  });

  it("keeps every finite number as sent: the extremes, subnormals, -0 and exponents", () => {
    const values = [
      "1.7976931348623157e308",
      "-1.7976931348623157e308",
      "5e-324",
      "-0",
      "1E+21",
      "9007199254740993",
      "0.1000000000000000055511151231257827",
    ];
    for (const text of values) {
      const result = parse(eventWith("properties", `{"amount":${text}}`));
      if (!result.ok) throw new Error(`${text} refused: ${result.error.message}`);
      const stored = JSON.parse(result.serialized[0] as string) as { properties: { amount: number } };
      expect(stored.properties.amount).toBe(Number(text) === 0 ? 0 : Number(text));
    }
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { acceptedByHand, EventInputSchema, parseIngestBody } from "../../lib/contract/event.ts";

// Strings at and around every length limit of the contract (1–128 ids, 2,048 URLs), and some
// that are no string at all.
const sized = (n: number) => "x".repeat(n);
const text = fc.oneof(
  fc.constantFrom("", "a", sized(127), sized(128), sized(129), sized(2047), sized(2048), sized(2049)),
  fc.string({ maxLength: 12 }),
  fc.constantFrom(null, 0, 1, true, [], {}),
);
const eventType = fc.oneof(
  fc.constantFrom(
    "page_view",
    "a",
    "a.b:c-d_9",
    `a${sized(63)}`,
    `a${sized(64)}`,
    "A",
    "9a",
    "_a",
    "a b",
    "a\n",
  ),
  fc.stringMatching(/^[a-zA-Z0-9_.: -]{0,6}$/),
  fc.constantFrom(null, 1, undefined),
);
const timestamp = fc.oneof(
  fc.constantFrom(0, -1, 1, 1e11 - 1, 1e11, 1_795_535_577_390, Number.MIN_VALUE, Number.MAX_VALUE, -0),
  fc.double(),
  fc.integer(),
  fc.constantFrom(
    "2026-11-22T10:00:00Z",
    "2026-11-22T10:00Z",
    "2026-11-22T10:00:00.123456789+01:00",
    "2026-11-22T10:00:00+0100",
    "2026-11-22T10:00:00",
    "2026-11-22",
    "2026-11-22t10:00:00z",
    "",
    "1795535577390",
  ),
  fc.constantFrom(null, undefined, [], {}),
);
const record = fc.oneof(
  fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
  fc.constantFrom(
    null,
    [],
    [1],
    "x",
    1,
    undefined,
    JSON.parse('{"__proto__": {"polluted": true}, "a": 1}'),
    JSON.parse('{"a": {"__proto__": 1}}'),
    Object.create(null),
    new Date(0),
  ),
);
// Mostly valid values, so that most events are valid but for one field at an edge.
const mostly = <T, U>(valid: fc.Arbitrary<T>, edge: fc.Arbitrary<U>) =>
  fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: edge });
const id = fc.string({ minLength: 1, maxLength: 40 });
const field = {
  event_id: mostly(id, text),
  user_id: mostly(id, text),
  session_id: mostly(fc.string({ maxLength: 40 }), text),
  event_type: mostly(fc.constantFrom("page_view", "purchase_completed", "a.b:c-d_9"), eventType),
  timestamp: mostly(fc.integer({ min: 1, max: 2 ** 42 }), timestamp),
  page_url: mostly(fc.webUrl(), text),
  properties: mostly(
    fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
    record,
  ),
  metadata: mostly(fc.dictionary(fc.string({ maxLength: 6 }), fc.string(), { maxKeys: 3 }), record),
};
const input = fc.oneof(
  fc.record(field, { requiredKeys: [] }),
  fc.record(field, { requiredKeys: ["user_id", "event_type", "timestamp"] }),
  // An unknown field, `__proto__` among them (an own property, as JSON.parse makes it).
  fc
    .tuple(
      fc.record(field, { requiredKeys: ["user_id", "event_type", "timestamp"] }),
      fc.constantFrom("extra", "__proto__", "constructor", "USER_ID"),
    )
    // A computed key makes an own property, even `__proto__`; JSON keeps it so.
    .map(([e, key]) => JSON.parse(JSON.stringify({ ...e, [key]: 1 }))),
  fc.constantFrom(null, [], "x", 1, Object.create(null)),
);

describe("the ingest hot path's check by hand (acceptedByHand)", () => {
  it("accepts nothing the schema refuses, and what it accepts the schema reads the same", () => {
    let accepted = 0;
    fc.assert(
      fc.property(input, (item) => {
        const byHand = acceptedByHand(item);
        if (byHand === undefined) return;
        accepted++;
        const parsed = EventInputSchema.safeParse(item);
        expect(parsed.success).toBe(true);
        expect(JSON.stringify(byHand)).toBe(JSON.stringify(parsed.data));
        expect(byHand).toEqual(parsed.data);
      }),
      { numRuns: 20_000, seed: 42 },
    );
    // It must take the common case, or it saves nothing (and this test would prove nothing).
    expect(accepted).toBeGreaterThan(500);
  });

  it("takes a typical event, and leaves a `__proto__` key in properties to the schema (which drops it)", () => {
    const typical = {
      user_id: "user-1",
      session_id: "s-1",
      event_type: "page_view",
      timestamp: "2026-11-22T10:00:00Z",
      page_url: "https://shop.example/p/1",
      properties: { amount: 12.5, currency: "EUR" },
      metadata: { platform: "web" },
    };
    expect(acceptedByHand(typical)).toBe(typical);
    const hostile = JSON.parse(
      '{"user_id":"u","event_type":"a","timestamp":1,"properties":{"__proto__":{"x":1},"a":2}}',
    );
    expect(acceptedByHand(hostile)).toBeUndefined();
    const now = Date.parse("2026-11-22T10:00:00Z");
    const parsed = parseIngestBody(JSON.stringify([typical]), { now, retentionMs: 86_400_000 });
    expect(parsed.ok).toBe(true);
    const viaSchema = parseIngestBody(
      JSON.stringify(hostile).replace('"timestamp":1', `"timestamp":${now}`),
      {
        now,
        retentionMs: 86_400_000,
      },
    );
    expect(viaSchema.ok && viaSchema.serialized[0]).toContain('"properties":{"a":2}');
  });
});

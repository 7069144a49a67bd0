import { type AthenaClient, StartQueryExecutionCommand } from "@aws-sdk/client-athena";
import NodeSqlParser from "node-sql-parser";
import { describe, expect, it } from "vitest";
import { AthenaEventsEngine } from "../../lib/adapters/events-athena.ts";
import { buildEventsSql, type EventsSqlQuery, MAX_SQL_LIMIT } from "../../lib/archive/events-sql.ts";

/**
 * The GET /events SQL in Athena's dialect: Athena engine v3 runs Trino SQL, so the builder's
 * output is parsed with a Trino grammar and its tree checked against Athena's rules:
 * - execution parameters (`?`) only in WHERE clauses (Athena docs, "Use parameterized queries");
 * - an `event_type` predicate always, as the Glue table projects `event_type` as an injected
 *   partition key (Athena docs, "Injected type");
 * - the LIMIT an integer literal.
 */
type Node = { [key: string]: unknown };
const { Parser } = NodeSqlParser as unknown as {
  Parser: new () => { astify(sql: string, options: { database: string }): unknown };
};
const parser = new Parser();

function parseAthena(sql: string): Node {
  const ast = parser.astify(sql, { database: "trino" });
  return (Array.isArray(ast) ? ast[0] : ast) as Node;
}

const isPlaceholder = (n: unknown) =>
  typeof n === "object" && n !== null && (n as Node).type === "origin" && (n as Node).value === "?";

/** Counts `?` placeholders under `node`, split by whether a WHERE clause encloses them. */
function placeholders(node: unknown, inWhere = false): { where: number; elsewhere: number } {
  const count = { where: 0, elsewhere: 0 };
  if (isPlaceholder(node)) {
    count[inWhere ? "where" : "elsewhere"] += 1;
    return count;
  }
  if (typeof node !== "object" || node === null) return count;
  for (const [key, child] of Object.entries(node as Node)) {
    const c = placeholders(child, inWhere || key === "where");
    count.where += c.where;
    count.elsewhere += c.elsewhere;
  }
  return count;
}

/** The predicates on event_type in any WHERE clause: `=` or `IN`. */
function eventTypePredicates(node: unknown, inWhere = false): string[] {
  if (typeof node !== "object" || node === null) return [];
  const n = node as Node;
  const found: string[] = [];
  if (inWhere && n.type === "binary_expr" && (n.operator === "=" || n.operator === "IN")) {
    const left = JSON.stringify(n.left);
    if (left.includes('"value":"event_type"')) found.push(String(n.operator));
  }
  for (const [key, child] of Object.entries(n))
    found.push(...eventTypePredicates(child, inWhere || key === "where"));
  return found;
}

const base: EventsSqlQuery = { from: Date.UTC(2026, 0, 1), to: Date.UTC(2026, 0, 1, 1), limit: 101 };
const cases: [string, EventsSqlQuery][] = [
  ["one event type", { ...base, eventType: "page_view" }],
  ["a user across the archive's event types", { ...base, userId: "u1", eventTypes: ["click", "page_view"] }],
  [
    "a user in one archived type, after a cursor",
    { ...base, userId: "u1", eventTypes: ["click"], after: { timestamp: 5, eventId: "e" } },
  ],
];

describe("GET /events SQL, Athena dialect", () => {
  for (const [name, q] of cases) {
    it(`${name}: parses as Trino SQL, parameters only in WHERE, event_type predicate, literal LIMIT`, () => {
      const { sql, params } = buildEventsSql('"tidemark_dev"."events"', q);
      const ast = parseAthena(sql);
      const count = placeholders(ast);
      expect(count.elsewhere).toBe(0);
      expect(count.where).toBe(params.length);
      expect(eventTypePredicates(ast).length).toBeGreaterThan(0);
      expect((ast.limit as { value: Node[] }).value).toEqual([{ type: "number", value: q.limit }]);
    });
  }

  it("the grammar rejects a LIMIT parameter (what the builder used to write)", () => {
    const { sql } = buildEventsSql("t", { ...base, eventType: "click" });
    expect(() => parseAthena(sql.replace(/LIMIT \d+$/, "LIMIT ?"))).toThrow();
  });

  it("refuses a limit that is not a small positive integer, and a query with no event type", () => {
    for (const limit of [0, -1, 1.5, Number.NaN, MAX_SQL_LIMIT + 1])
      expect(() => buildEventsSql("t", { ...base, eventType: "click", limit })).toThrow(RangeError);
    expect(() => buildEventsSql("t", { ...base, userId: "u" })).toThrow(RangeError);
    expect(() => buildEventsSql("t", { ...base, userId: "u", eventTypes: [] })).toThrow(RangeError);
  });
});

describe("Athena engine", () => {
  it("answers an empty page without querying when the archive has no event type yet", async () => {
    const sent: unknown[] = [];
    const athena = { send: async (command: unknown) => sent.push(command) } as unknown as AthenaClient;
    const engine = new AthenaEventsEngine(athena, {
      workGroup: "wg",
      database: "tidemark_dev",
      table: "events",
      eventTypes: async () => [],
    });
    expect(await engine.query({ ...base, userId: "u1" })).toEqual([]);
    expect(sent).toEqual([]);
  });

  it("sends the WHERE values as execution parameters and nothing else", async () => {
    const sent: StartQueryExecutionCommand[] = [];
    const athena = {
      send: async (command: unknown) => {
        if (command instanceof StartQueryExecutionCommand) {
          sent.push(command);
          throw new Error("stop here");
        }
      },
    } as unknown as AthenaClient;
    const engine = new AthenaEventsEngine(athena, {
      workGroup: "wg",
      database: "tidemark_dev",
      table: "events",
      eventTypes: async () => ["click"],
    });
    await expect(engine.query({ ...base, userId: "o'brien" })).rejects.toThrow("stop here");
    const input = sent[0]?.input;
    expect(input?.QueryString).toMatch(/LIMIT 101$/);
    expect(input?.ExecutionParameters).toEqual([
      String(base.from),
      String(base.to),
      "'2026-01-01'",
      "'2026-01-01'",
      "'o''brien'",
      "'click'",
    ]);
  });
});

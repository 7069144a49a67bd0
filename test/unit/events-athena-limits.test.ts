import {
  type AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
  type StartQueryExecutionCommandInput,
  StopQueryExecutionCommand,
} from "@aws-sdk/client-athena";
import { DuckDBInstance } from "@duckdb/node-api";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { AthenaEventsEngine } from "../../lib/adapters/events-athena.ts";
import { type ArchivedEventRow, QueryTimeoutError } from "../../lib/adapters/events-query.ts";
import { buildEventsSql, EVENT_COLUMNS, type EventsSqlQuery } from "../../lib/archive/events-sql.ts";
import { EVENT_TYPE_PATTERN } from "../../lib/contract/event.ts";

/**
 * GET /events by user alone in AWS names every archived event type: the Glue table projects
 * `event_type` as an injected partition key, so Athena must be given its values. Event types are
 * the clients' own strings (up to 64 characters) and nothing bounds how many a deployment has.
 * One query naming them all passes Athena's documented limits (Athena docs, "Service Quotas"):
 * - a query string of at most 262,144 bytes of UTF-8 (not adjustable). Whether Athena counts the
 *   execution parameters in is not documented: written in, a 64-character type adds 68 bytes, so
 *   from about 3,840 such types;
 * - at most 1,000,000 partitions in one scan: each type projects every hour of every `dt` of the
 *   range, 192 over 7 days, so from 5,209 types whatever their length.
 */
const T0 = Date.UTC(2026, 11, 5, 12);
const WEEK = { from: T0 - 7 * 86_400_000, to: T0 };
const QUERY_BYTES = 262_144;
const PARTITIONS_PER_SCAN = 1_000_000;

/** The longest event types the contract allows, `count` of them. */
const longTypes = (count: number) =>
  Array.from({ length: count }, (_, i) => `t${"x".repeat(57)}_${String(i).padStart(5, "0")}`);

const engine = (athena: AthenaClient, types: string[]) =>
  new AthenaEventsEngine(athena, {
    workGroup: "wg",
    database: "db",
    table: "events",
    eventTypes: async () => types,
  });

/** Athena's reading of an execution parameter: a SQL literal. */
function unliteral(p: string): string | number {
  return p.startsWith("'") ? p.slice(1, -1).replaceAll("''", "'") : Number(p);
}

/** The query string with each `?` replaced by its parameter, in order. */
function writtenIn(input: StartQueryExecutionCommandInput): string {
  const params = [...(input.ExecutionParameters ?? [])];
  return (input.QueryString ?? "").replace(/\?/g, () => params.shift() ?? "?");
}

type Send = (command: object) => Promise<unknown>;

/** An Athena whose queries all succeed at once with no rows; what was started, and how many at once. */
function emptyAthena() {
  const starts: StartQueryExecutionCommandInput[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const send: Send = async (command) => {
    if (command instanceof StartQueryExecutionCommand) {
      starts.push(command.input);
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      return { QueryExecutionId: `q-${starts.length}` };
    }
    if (command instanceof GetQueryExecutionCommand)
      return { QueryExecution: { Status: { State: "SUCCEEDED" } } };
    if (command instanceof GetQueryResultsCommand) {
      inFlight--;
      return { ResultSet: { Rows: [{ Data: EVENT_COLUMNS.map((c) => ({ VarCharValue: c })) }] } };
    }
    return {};
  };
  return { athena: { send } as unknown as AthenaClient, starts, maxInFlight: () => maxInFlight };
}

describe("GET /events on Athena by user alone, with many long event types", () => {
  it("keeps every query within Athena's documented limits, and names each type once", async () => {
    const types = longTypes(20_000);
    expect(types[0]).toMatch(EVENT_TYPE_PATTERN);
    expect(types[0]).toHaveLength(64);
    const { athena, starts, maxInFlight } = emptyAthena();
    expect(await engine(athena, types).query({ ...WEEK, userId: "u1", limit: 101 })).toEqual([]);

    const named: string[] = [];
    for (const input of starts) {
      const params = input.ExecutionParameters ?? [];
      // The builder's parameters: from, to, the dt bounds, the user, then the event types.
      const [first, last] = [unliteral(params[2] ?? ""), unliteral(params[3] ?? "")];
      const days = (Date.parse(String(last)) - Date.parse(String(first))) / 86_400_000 + 1;
      expect(days).toBe(8);
      const queryTypes = params.slice(5).map((p) => String(unliteral(p)));
      expect(queryTypes.length * days * 24).toBeLessThanOrEqual(PARTITIONS_PER_SCAN);
      expect(Buffer.byteLength(input.QueryString ?? "")).toBeLessThanOrEqual(QUERY_BYTES);
      expect(Buffer.byteLength(writtenIn(input))).toBeLessThanOrEqual(QUERY_BYTES);
      for (const p of params) expect(p.length).toBeGreaterThanOrEqual(1);
      for (const p of params) expect(p.length).toBeLessThanOrEqual(1_024);
      named.push(...queryTypes);
    }
    expect(named.sort()).toEqual([...types].sort());
    // The account's active-query quota (20 or 25 by default) is shared: a few at a time.
    expect(maxInFlight()).toBeLessThanOrEqual(4);
  });

  it("splits at 1,000,000 partitions whatever the types' length: 5,209 over a week", async () => {
    const short = (count: number) => Array.from({ length: count }, (_, i) => `t${i}`);
    for (const [count, queries] of [
      [5_208, 1],
      [5_209, 2],
    ] as const) {
      const { athena, starts } = emptyAthena();
      await engine(athena, short(count)).query({ ...WEEK, userId: "u1", limit: 101 });
      const perQuery = starts.map((s) => (s.ExecutionParameters?.length ?? 0) - 5);
      expect(perQuery, `${count} types`).toHaveLength(queries);
      for (const n of perQuery) expect(n * 8 * 24).toBeLessThanOrEqual(PARTITIONS_PER_SCAN);
    }
  });

  it("sends one query, as before, while one fits", async () => {
    const { athena, starts } = emptyAthena();
    await engine(athena, longTypes(200)).query({ ...WEEK, userId: "u1", limit: 101 });
    expect(starts).toHaveLength(1);
    expect(starts[0]?.ExecutionParameters).toHaveLength(5 + 200);
  });
});

/**
 * The answer over several queries is the one query's: an Athena whose queries run on DuckDB over
 * one table, compared with the single query over all the types on the same table (the SQL the
 * engine sent before, and the local engine's SQL), page after page through the cursor.
 */
describe("GET /events on Athena over several queries: the one query's answer", () => {
  // Two queries' worth (about 3,840 such types fit in one).
  const types = longTypes(6_000);
  let connection: Awaited<ReturnType<DuckDBInstance["connect"]>>;

  beforeAll(async () => {
    const db = await DuckDBInstance.create(":memory:");
    connection = await db.connect();
    await connection.run("SET disabled_optimizers = 'top_n_window_elimination'");
    await connection.run(
      `CREATE SCHEMA db; CREATE TABLE db.events (event_id VARCHAR, user_id VARCHAR, session_id VARCHAR,
        event_type VARCHAR, "timestamp" BIGINT, page_url VARCHAR, properties VARCHAR, metadata VARCHAR,
        received_at BIGINT, dt VARCHAR)`,
    );
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    const pick = () => types[Math.floor(random() * types.length)] as string;
    const rows: (string | number | null)[][] = [];
    const add = (id: string, user: string, type: string, timestamp: number, receivedAt: number) =>
      rows.push([
        id,
        user,
        random() < 0.5 ? null : "",
        type,
        timestamp,
        random() < 0.5 ? null : "https://example.com/p",
        random() < 0.5 ? null : '{"amount":1}',
        null,
        receivedAt,
        new Date(timestamp).toISOString().slice(0, 10),
      ]);
    // Ids whose order differs between UTF-16 units and UTF-8 bytes (as Trino compares them).
    const prefixes = ["a", "z", "é", "\uffff", "😀"];
    for (let i = 0; i < 400; i++) {
      // Few distinct timestamps, so that the id decides the order often.
      const timestamp = WEEK.from + Math.floor(random() * 60) * 10_000_000;
      const id = `${prefixes[i % prefixes.length]}-${i}`;
      const type = pick();
      add(id, "u1", type, timestamp, timestamp + 1_000);
      // A client's retry: the same event again, received later, in its type or (reused id) another.
      if (i % 9 === 0) add(id, "u1", type, timestamp, timestamp + 5_000);
      if (i % 11 === 0) add(id, "u1", pick(), timestamp, timestamp + 3_000);
      if (i % 13 === 0) add(id, "u1", pick(), timestamp, timestamp + 500);
      add(`other-${i}`, "u2", pick(), timestamp, timestamp + 1_000);
    }
    add("before", "u1", pick(), WEEK.from - 1, WEEK.from);
    add("at-end", "u1", pick(), WEEK.to, WEEK.to);
    const literal = (v: string | number | null) =>
      v === null ? "NULL" : typeof v === "number" ? String(v) : `'${v.replaceAll("'", "''")}'`;
    await connection.run(
      `INSERT INTO db.events VALUES ${rows.map((r) => `(${r.map(literal).join(", ")})`).join(", ")}`,
    );
  });
  afterAll(() => connection?.closeSync());

  /** DuckDB's answer as GetQueryResults gives it: VarCharValue text, none for NULL. */
  const run = async (sql: string, params: (string | number)[]) =>
    (await connection.runAndReadAll(sql, params))
      .getRowObjectsJS()
      .map((r) => EVENT_COLUMNS.map((c) => (r[c] === null ? {} : { VarCharValue: String(r[c]) })));

  function duckAthena() {
    const results = new Map<string, { VarCharValue?: string }[][]>();
    let queries = 0;
    const send: Send = async (command) => {
      if (command instanceof StartQueryExecutionCommand) {
        const id = `q-${++queries}`;
        const params = (command.input.ExecutionParameters ?? []).map(unliteral);
        results.set(id, await run(command.input.QueryString ?? "", params));
        return { QueryExecutionId: id };
      }
      if (command instanceof GetQueryExecutionCommand)
        return { QueryExecution: { Status: { State: "SUCCEEDED" } } };
      if (command instanceof GetQueryResultsCommand) {
        // Pages of 1,000 rows, the header first, as Athena answers.
        const all = [
          EVENT_COLUMNS.map((c) => ({ VarCharValue: c })),
          ...(results.get(command.input.QueryExecutionId ?? "") ?? []),
        ];
        const at = Number(command.input.NextToken ?? 0);
        const next = at + 1_000 < all.length ? String(at + 1_000) : undefined;
        return { ResultSet: { Rows: all.slice(at, at + 1_000).map((Data) => ({ Data })) }, NextToken: next };
      }
      return {};
    };
    return { athena: { send } as unknown as AthenaClient, queries: () => queries };
  }

  /** The single query over every type, on the same table. */
  async function oneQuery(q: EventsSqlQuery): Promise<ArchivedEventRow[]> {
    const { sql, params } = buildEventsSql('"db"."events"', { ...q, eventTypes: types });
    return (await run(sql, params)).map((data) => {
      const out: Record<string, unknown> = {};
      EVENT_COLUMNS.forEach((c, i) => {
        const v = data[i]?.VarCharValue;
        if (v === undefined) return;
        out[c] =
          c === "timestamp" || c === "received_at" ? Number(v) : c === "properties" ? JSON.parse(v) : v;
      });
      return out as unknown as ArchivedEventRow;
    });
  }

  it("answers every page of a user's week as the one query does", async () => {
    const { athena, queries } = duckAthena();
    const subject = engine(athena, types);
    const limit = 101;
    let after: EventsSqlQuery["after"];
    const seen: ArchivedEventRow[] = [];
    let pages = 0;
    for (; pages < 100; pages++) {
      const q: EventsSqlQuery = { ...WEEK, userId: "u1", limit, ...(after ? { after } : {}) };
      const rows = await subject.query(q);
      expect(rows).toEqual(await oneQuery(q));
      const shown = rows.slice(0, limit - 1);
      seen.push(...shown);
      const last = shown[shown.length - 1];
      if (rows.length < limit || !last) break;
      after = { timestamp: last.timestamp, eventId: last.event_id };
    }
    expect(queries()).toBe(2 * (pages + 1));
    // Every event of the user in the range once, the whole week through the cursor.
    expect(seen).toEqual(await oneQuery({ ...WEEK, userId: "u1", limit: 10_001 }));
    expect(seen.length).toBe(400);
  });
});

/** The request's deadline (API Gateway ends it at 29 s) holds over several queries. Fake clock. */
describe("GET /events on Athena over several queries: the request's deadline", () => {
  const DEADLINE = T0 + 25_000;
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(T0);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function scripted(state: (id: string) => Promise<string>) {
    const calls: { command: string; id?: string; at: number }[] = [];
    const send: Send = async (command) => {
      const input = (command as { input: { QueryExecutionId?: string } }).input;
      const name = command.constructor.name;
      const id =
        command instanceof StartQueryExecutionCommand
          ? `q-${calls.filter((c) => c.command === name).length + 1}`
          : input.QueryExecutionId;
      calls.push({ command: name, at: Date.now(), ...(id ? { id } : {}) });
      if (command instanceof StartQueryExecutionCommand) return { QueryExecutionId: id };
      if (command instanceof GetQueryExecutionCommand)
        return { QueryExecution: { Status: { State: await state(id ?? ""), StateChangeReason: "boom" } } };
      if (command instanceof StopQueryExecutionCommand) return {};
      return { ResultSet: { Rows: [] } };
    };
    const of = (name: string) => calls.filter((c) => c.command === name);
    return { athena: { send } as unknown as AthenaClient, calls, of };
  }

  async function settle(p: Promise<unknown>): Promise<{ outcome: unknown; at: number }> {
    const out = p.then(
      () => ({ outcome: "answered", at: Date.now() }),
      (e: unknown) => ({ outcome: e, at: Date.now() }),
    );
    await vi.advanceTimersByTimeAsync(120_000);
    return out;
  }

  const query = (athena: AthenaClient) =>
    engine(athena, longTypes(20_000)).query({ ...WEEK, userId: "u1", limit: 101 }, { deadline: DEADLINE });

  it("gives up at the deadline: nothing starts after it, and every query started is stopped", async () => {
    const { athena, calls, of } = scripted(async () => "RUNNING");
    const { outcome, at } = await settle(query(athena));
    expect(outcome).toBeInstanceOf(QueryTimeoutError);
    expect(at).toBeLessThanOrEqual(DEADLINE);
    const started = of("StartQueryExecutionCommand");
    expect(started.length).toBeGreaterThan(1);
    expect(started.length).toBeLessThanOrEqual(4);
    for (const c of calls.filter((c) => c.command !== "StopQueryExecutionCommand"))
      expect(c.at).toBeLessThanOrEqual(DEADLINE);
    expect(
      of("StopQueryExecutionCommand")
        .map((c) => c.id)
        .sort(),
    ).toEqual(started.map((c) => c.id).sort());
  });

  it("answers at the deadline when a call to Athena hangs, and stops what runs", async () => {
    const { athena, of } = scripted((id) =>
      id === "q-2" ? new Promise(() => undefined) : Promise.resolve("RUNNING"),
    );
    const { outcome, at } = await settle(query(athena));
    expect(outcome).toBeInstanceOf(QueryTimeoutError);
    expect(at).toBeLessThanOrEqual(DEADLINE);
    expect(of("StopQueryExecutionCommand").map((c) => c.id)).toContain("q-2");
  });

  it("fails with the first query that fails, stops the others and starts no more", async () => {
    const { athena, of } = scripted(async (id) => (id === "q-1" ? "FAILED" : "RUNNING"));
    const { outcome, at } = await settle(query(athena));
    expect(outcome).toBeInstanceOf(Error);
    expect(outcome).not.toBeInstanceOf(QueryTimeoutError);
    expect(String(outcome)).toMatch(/q-1 FAILED: boom/);
    expect(at).toBeLessThan(T0 + 1_000);
    const started = of("StartQueryExecutionCommand").map((c) => c.id);
    expect(started.length).toBeLessThanOrEqual(4);
    expect(
      of("StopQueryExecutionCommand")
        .map((c) => c.id)
        .sort(),
    ).toEqual(started.filter((id) => id !== "q-1").sort());
  });
});

import type { AthenaClient } from "@aws-sdk/client-athena";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AthenaEventsEngine } from "../../lib/adapters/events-athena.ts";
import { EVENTS_QUERY_BUDGET_MS, QueryTimeoutError } from "../../lib/adapters/events-query.ts";

/**
 * API Gateway ends a REST integration at 29 s with a bare 504. GET /events must give up before,
 * counting everything the request does: the archive listing (queries without event_type), the
 * query's start, its polls, the results. Fake clock; an Athena query that never finishes.
 */
const T0 = Date.UTC(2026, 11, 5, 12);
const q = { from: T0 - 3_600_000, to: T0, limit: 101 };

function runningForever() {
  const calls: { command: string; at: number }[] = [];
  const athena = {
    send: async (command: { constructor: { name: string } }) => {
      const name = command.constructor.name;
      calls.push({ command: name, at: Date.now() });
      if (name === "StartQueryExecutionCommand") return { QueryExecutionId: "q-1" };
      if (name === "GetQueryExecutionCommand") return { QueryExecution: { Status: { State: "RUNNING" } } };
      return {};
    },
  } as unknown as AthenaClient;
  return { athena, calls };
}

const engine = (athena: AthenaClient, listingMs: number) =>
  new AthenaEventsEngine(athena, {
    workGroup: "wg",
    database: "db",
    table: "events",
    // A slow S3 listing (a large archive, a throttled prefix): the clock moves while it runs.
    eventTypes: async () => {
      vi.setSystemTime(Date.now() + listingMs);
      return ["page_view"];
    },
  });

async function settle<T>(p: Promise<T>): Promise<unknown> {
  const out = p.then(
    () => undefined,
    (e: unknown) => e,
  );
  await vi.advanceTimersByTimeAsync(120_000);
  return out;
}

describe("GET /events on Athena: one deadline for the whole request", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(T0);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("counts the archive listing: gives up within the budget from the query's start, and stops the query", async () => {
    const { athena, calls } = runningForever();
    const error = await settle(engine(athena, 10_000).query(q));
    expect(error).toBeInstanceOf(QueryTimeoutError);
    const polls = calls.filter((c) => c.command === "GetQueryExecutionCommand");
    expect(polls.length).toBeGreaterThan(0);
    for (const p of polls) expect(p.at - T0).toBeLessThanOrEqual(EVENTS_QUERY_BUDGET_MS);
    // A query given up on is stopped, so that it scans (and bills) no further.
    expect(calls.map((c) => c.command)).toContain("StopQueryExecutionCommand");
  });

  it("keeps the caller's deadline (measured from the handler's start, before the engine loaded)", async () => {
    const { athena, calls } = runningForever();
    // The handler started 8 s ago (cold start: loading the engine); 17 s remain of its budget.
    const deadline = T0 + EVENTS_QUERY_BUDGET_MS - 8_000;
    const error = await settle(engine(athena, 0).query({ ...q, eventType: "page_view" }, { deadline }));
    expect(error).toBeInstanceOf(QueryTimeoutError);
    for (const c of calls) expect(c.at).toBeLessThanOrEqual(deadline);
  });

  it("does not start a query once the listing used up the budget", async () => {
    const { athena, calls } = runningForever();
    const error = await settle(engine(athena, EVENTS_QUERY_BUDGET_MS + 1).query(q));
    expect(error).toBeInstanceOf(QueryTimeoutError);
    expect(calls).toEqual([]);
  });
});

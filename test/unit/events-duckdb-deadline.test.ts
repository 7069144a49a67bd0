import type { S3Client } from "@aws-sdk/client-s3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DuckDbEventsEngine } from "../../lib/adapters/events-duckdb.ts";
import { QueryTimeoutError } from "../../lib/adapters/events-query.ts";

/**
 * GET /events by user alone reads every event type of every hour of the range, newest first: a
 * week over 50 types is 8,400 S3 listings when the user has no events. The handler answers 503 at
 * its deadline; the local engine must stop there too instead of listing on, on the CPU the
 * rest of the stack shares. Fake clock; each listing takes 100 ms of it.
 */
const T0 = Date.UTC(2026, 11, 5, 12);
const DEADLINE = T0 + 25_000;
const TYPES = Array.from({ length: 50 }, (_, i) => `type_${i}`);

function slowArchive() {
  const calls = { typeListings: 0, hourListings: 0, afterDeadline: 0, inFlight: 0, maxInFlight: 0 };
  const s3 = {
    send: async (command: { input: { Delimiter?: string } }) => {
      if (command.input.Delimiter === "/") {
        calls.typeListings++;
        return { CommonPrefixes: TYPES.map((t) => ({ Prefix: `events/event_type=${t}/` })) };
      }
      calls.hourListings++;
      if (Date.now() >= DEADLINE) calls.afterDeadline++;
      calls.inFlight++;
      calls.maxInFlight = Math.max(calls.maxInFlight, calls.inFlight);
      await new Promise((r) => setTimeout(r, 100));
      calls.inFlight--;
      return { Contents: [] };
    },
  } as unknown as S3Client;
  return { s3, calls };
}

describe("GET /events on DuckDB: the request's deadline", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(T0);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("stops a query by user alone at the deadline, with a bounded number of listings in flight", async () => {
    const { s3, calls } = slowArchive();
    const engine = new DuckDbEventsEngine(s3, "archive", "events/");
    const query = engine
      .query({ userId: "nobody", from: T0 - 7 * 86_400_000, to: T0, limit: 101 }, { deadline: DEADLINE })
      .then(
        () => "finished",
        (e: unknown) => e,
      );
    await vi.advanceTimersByTimeAsync(600_000);
    const outcome = await query;
    expect(outcome).toBeInstanceOf(QueryTimeoutError);
    // 168 hours × 50 types would be 8,400 listings: none started after the deadline.
    expect(calls.afterDeadline).toBe(0);
    expect(calls.hourListings).toBeLessThan(8_400);
    expect(calls.maxInFlight).toBeLessThanOrEqual(16);
  });

  it("answers at the deadline when one step outlasts it (a listing that hangs on a loaded S3 server)", async () => {
    const s3 = {
      send: async (command: { input: { Delimiter?: string } }) => {
        if (command.input.Delimiter === "/") return { CommonPrefixes: [{ Prefix: "events/event_type=a/" }] };
        await new Promise((r) => setTimeout(r, 60_000));
        return { Contents: [] };
      },
    } as unknown as S3Client;
    let settledAt = 0;
    const query = new DuckDbEventsEngine(s3, "archive", "events/")
      .query({ userId: "nobody", from: T0 - 3_600_000, to: T0, limit: 101 }, { deadline: DEADLINE })
      .then(
        () => "finished",
        (e: unknown) => e,
      )
      .finally(() => {
        settledAt = Date.now();
      });
    await vi.advanceTimersByTimeAsync(120_000);
    expect(await query).toBeInstanceOf(QueryTimeoutError);
    // Before: it answered only when the listing came back, 35 s past the deadline (past the
    // function's 29 s timeout in the stack: a bare "function failed").
    expect(settledAt).toBeLessThanOrEqual(DEADLINE);
  });
});

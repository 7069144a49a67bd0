import type { AthenaClient } from "@aws-sdk/client-athena";
import { describe, expect, it } from "vitest";
import { AthenaEventsEngine } from "../../lib/adapters/events-athena.ts";
import { QueryBusyError } from "../../lib/adapters/events-query.ts";

/**
 * Athena's active-query quota is the account's (20 or 25, queued queries included), shared by every
 * concurrent GET /events: at it, StartQueryExecution answers TooManyRequestsException. That is a
 * "retry shortly", not a failure of the function (a 500).
 */
/** An engine whose Athena client throws `error` on every call; `query` resolves to what it threw. */
const refusedBy = (error: Error) => {
  const athena = {
    send: async () => {
      throw error;
    },
  } as unknown as AthenaClient;
  const engine = new AthenaEventsEngine(athena, {
    workGroup: "wg",
    database: "db",
    table: "events",
    eventTypes: async () => ["page_view"],
  });
  const now = Date.now();
  return engine
    .query({ eventType: "page_view", from: now - 3_600_000, to: now, limit: 101 })
    .catch((e: unknown) => e);
};

describe("GET /events in AWS at Athena's active-query quota", () => {
  it("turns TooManyRequestsException from StartQueryExecution into QueryBusyError", async () => {
    const quota = Object.assign(new Error("Too many queries are running"), {
      name: "TooManyRequestsException",
    });
    expect(await refusedBy(quota)).toBeInstanceOf(QueryBusyError);
  });

  it("leaves other errors as they are", async () => {
    const error = await refusedBy(
      Object.assign(new Error("no such workgroup"), { name: "InvalidRequestException" }),
    );
    expect(error).not.toBeInstanceOf(QueryBusyError);
    expect((error as Error).name).toBe("InvalidRequestException");
  });
});

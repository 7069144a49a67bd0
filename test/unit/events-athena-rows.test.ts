import type { AthenaClient } from "@aws-sdk/client-athena";
import { describe, expect, it } from "vitest";
import { AthenaEventsEngine } from "../../lib/adapters/events-athena.ts";
import { EVENT_COLUMNS } from "../../lib/archive/events-sql.ts";

/**
 * GetQueryResults gives a NULL as a datum without `VarCharValue` and an empty string as
 * `VarCharValue: ""`. The contract accepts an empty `session_id` and `page_url`; GET /events in
 * AWS dropped them from the events it returned (DuckDB, locally, kept them).
 */
const T0 = Date.UTC(2026, 11, 5, 12);

function answering(values: Record<string, string | undefined>) {
  return {
    send: async (command: { constructor: { name: string } }) => {
      const name = command.constructor.name;
      if (name === "StartQueryExecutionCommand") return { QueryExecutionId: "q-1" };
      if (name === "GetQueryExecutionCommand") return { QueryExecution: { Status: { State: "SUCCEEDED" } } };
      if (name === "GetQueryResultsCommand")
        return {
          ResultSet: {
            Rows: [
              { Data: EVENT_COLUMNS.map((c) => ({ VarCharValue: c })) },
              {
                Data: EVENT_COLUMNS.map((c) => (values[c] === undefined ? {} : { VarCharValue: values[c] })),
              },
            ],
          },
        };
      return {};
    },
  } as unknown as AthenaClient;
}

const engine = (athena: AthenaClient) =>
  new AthenaEventsEngine(athena, {
    workGroup: "wg",
    database: "db",
    table: "events",
    eventTypes: async () => ["page_view"],
  });

describe("GET /events on Athena: the rows it reads back", () => {
  it("keeps an empty session_id and page_url, and leaves out what is NULL", async () => {
    const rows = await engine(
      answering({
        event_id: "e1",
        user_id: "u1",
        session_id: "",
        event_type: "page_view",
        timestamp: String(T0 - 1_000),
        page_url: "",
        properties: undefined,
        metadata: '{"ip_address":"10.0.0.1"}',
        received_at: String(T0 - 900),
      }),
    ).query({ from: T0 - 3_600_000, to: T0, limit: 10, eventType: "page_view" });
    expect(rows).toEqual([
      {
        event_id: "e1",
        user_id: "u1",
        session_id: "",
        event_type: "page_view",
        timestamp: T0 - 1_000,
        page_url: "",
        metadata: { ip_address: "10.0.0.1" },
        received_at: T0 - 900,
      },
    ]);
  });
});

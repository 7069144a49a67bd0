import {
  type AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
} from "@aws-sdk/client-athena";
import { buildEventsSql, EVENT_COLUMNS, type EventsSqlQuery, type SqlValue } from "../archive/events-sql.ts";
import {
  type ArchivedEventRow,
  EVENTS_QUERY_BUDGET_MS,
  type EventsQueryEngine,
  type EventsQueryOptions,
  QueryTimeoutError,
} from "./events-query.ts";

export { QueryTimeoutError };

/**
 * GET /events in AWS: the shared SQL against the Glue table through an Athena workgroup, with
 * execution parameters, polled until it finishes or the request's deadline (under API Gateway's
 * 29 s), which covers the whole request: the archive listing, the start, the polls, the results.
 */
export class AthenaEventsEngine implements EventsQueryEngine {
  constructor(
    private readonly athena: AthenaClient,
    private readonly options: {
      workGroup: string;
      database: string;
      table: string;
      /** Lists the archive's event types for queries without one (partition projection needs them). */
      eventTypes: () => Promise<string[]>;
      /** The budget when the caller gives no deadline. @default EVENTS_QUERY_BUDGET_MS */
      deadlineMs?: number;
    },
  ) {}

  async query(q: EventsSqlQuery, queryOptions: EventsQueryOptions = {}): Promise<ArchivedEventRow[]> {
    const deadline =
      queryOptions.deadline ?? Date.now() + (this.options.deadlineMs ?? EVENTS_QUERY_BUDGET_MS);
    const withTypes = q.eventType === undefined ? { ...q, eventTypes: await this.options.eventTypes() } : q;
    // An empty archive has no event type to name, and Athena needs one (injected projection).
    if (withTypes.eventType === undefined && withTypes.eventTypes?.length === 0) return [];
    if (Date.now() >= deadline)
      throw new QueryTimeoutError("the archive's event types were listed after the deadline");
    const { sql, params } = buildEventsSql(`"${this.options.database}"."${this.options.table}"`, withTypes);
    const started = await this.athena.send(
      new StartQueryExecutionCommand({
        QueryString: sql,
        WorkGroup: this.options.workGroup,
        QueryExecutionContext: { Database: this.options.database },
        ExecutionParameters: params.map(athenaLiteral),
      }),
    );
    const id = started.QueryExecutionId;
    if (!id) throw new Error("Athena returned no query execution id");
    try {
      return await this.#await(id, deadline);
    } catch (error) {
      // Given up on: stop it, so that it scans (and bills) no further. Best effort.
      if (error instanceof QueryTimeoutError)
        await this.athena
          .send(new StopQueryExecutionCommand({ QueryExecutionId: id }))
          .catch(() => undefined);
      throw error;
    }
  }

  async #await(id: string, deadline: number): Promise<ArchivedEventRow[]> {
    let delay = 100;
    for (;;) {
      const state = (await this.athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id })))
        .QueryExecution?.Status;
      if (state?.State === "SUCCEEDED") break;
      if (state?.State === "FAILED" || state?.State === "CANCELLED") {
        throw new Error(`Athena query ${id} ${state.State}: ${state.StateChangeReason ?? "no reason"}`);
      }
      if (Date.now() + delay > deadline)
        throw new QueryTimeoutError(`Athena query ${id} still running at the deadline`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(1_000, delay * 2);
    }
    const rows: ArchivedEventRow[] = [];
    let token: string | undefined;
    let header = true;
    do {
      if (Date.now() >= deadline)
        throw new QueryTimeoutError(`Athena query ${id}: results still unread at the deadline`);
      const page = await this.athena.send(
        new GetQueryResultsCommand({ QueryExecutionId: id, NextToken: token }),
      );
      for (const row of page.ResultSet?.Rows ?? []) {
        if (header) {
          header = false;
          continue;
        }
        const out: Record<string, unknown> = {};
        EVENT_COLUMNS.forEach((c, i) => {
          const v = row.Data?.[i]?.VarCharValue;
          // A NULL (a field the event does not have) comes without a value; "" is a value of the
          // text columns (an empty session_id or page_url is valid), never of the others.
          if (v === undefined || (v === "" && !TEXT_COLUMNS.has(c))) return;
          if (c === "timestamp" || c === "received_at") out[c] = Number(v);
          else if (c === "properties" || c === "metadata") out[c] = JSON.parse(v);
          else out[c] = v;
        });
        rows.push(out as unknown as ArchivedEventRow);
      }
      token = page.NextToken;
    } while (token);
    return rows;
  }
}

const TEXT_COLUMNS: ReadonlySet<string> = new Set([
  "event_id",
  "user_id",
  "session_id",
  "event_type",
  "page_url",
]);

/** Athena execution parameters are SQL literals. */
function athenaLiteral(v: SqlValue): string {
  return typeof v === "number" ? String(v) : `'${v.replaceAll("'", "''")}'`;
}

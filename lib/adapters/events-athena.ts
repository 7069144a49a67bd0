import {
  type AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
} from "@aws-sdk/client-athena";
import {
  buildEventsSql,
  EVENT_COLUMNS,
  type EventsSqlQuery,
  mergeNewestFirst,
  partitionsPerEventType,
  type SqlValue,
} from "../archive/events-sql.ts";
import { mapBounded } from "../map-bounded.ts";
import {
  type ArchivedEventRow,
  EVENTS_QUERY_BUDGET_MS,
  type EventsQueryEngine,
  type EventsQueryOptions,
  QueryBusyError,
  QueryTimeoutError,
} from "./events-query.ts";

export { QueryBusyError, QueryTimeoutError };

/**
 * What one Athena query may be (Athena docs, "Service Quotas"): a query string of at most 262,144
 * bytes of UTF-8 (not adjustable), and a scan of at most 1,000,000 partitions.
 */
export const ATHENA_QUERY_LIMITS = { queryBytes: 262_144, partitions: 1_000_000 } as const;

/**
 * Athena queries one GET /events keeps running at once. The active-DML quota (20 or 25 queries by
 * default, queued ones included) is the account's, shared by every concurrent request.
 */
const QUERIES_IN_FLIGHT = 4;

/** How long stopping the queries of a request given up on may take (the reply waits for it). */
const STOP_GRACE_MS = 2_000;

/**
 * GET /events in AWS: the shared SQL against the Glue table through an Athena workgroup, with
 * execution parameters, polled until it finishes or the request's deadline (under API Gateway's
 * 29 s), which covers the whole request: the archive listing, the starts, the polls, the results.
 * Without an event type the query names every archived one (`eventTypeBatches`), in as many
 * queries as Athena's limits need, merged as the one query would have answered.
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
    // Aborted at the deadline or at the first failure: no query starts after, those under way
    // are stopped, and the answer leaves then even if a call to Athena or S3 hangs.
    const abort = new AbortController();
    const running = new Set<string>();
    const timer = setTimeout(
      () => abort.abort(new QueryTimeoutError("archive query: not done by the request's deadline")),
      Math.max(0, deadline - Date.now()),
    );
    const expired = new Promise<never>((_, reject) =>
      abort.signal.addEventListener("abort", () => reject(abort.signal.reason), { once: true }),
    );
    const work = this.#query(q, deadline, abort.signal, running);
    // Whichever settles second is nobody's.
    expired.catch(() => undefined);
    work.catch(() => undefined);
    try {
      return await Promise.race([work, expired]);
    } catch (error) {
      abort.abort(error);
      // Given up on: stop them, so that they scan (and bill) no further. Best effort.
      await Promise.all([...running].map((id) => this.#stop(id)));
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  async #query(
    q: EventsSqlQuery,
    deadline: number,
    signal: AbortSignal,
    running: Set<string>,
  ): Promise<ArchivedEventRow[]> {
    const types = q.eventType === undefined ? await this.options.eventTypes() : undefined;
    // An empty archive has no event type to name, and Athena needs one (injected projection).
    if (types?.length === 0) return [];
    if (Date.now() >= deadline)
      throw new QueryTimeoutError("the archive's event types were listed after the deadline");
    const source = `"${this.options.database}"."${this.options.table}"`;
    const parts =
      types === undefined
        ? [q]
        : eventTypeBatches(source, q, types).map((eventTypes) => ({ ...q, eventTypes }));
    const pages = await mapBounded(parts, QUERIES_IN_FLIGHT, (part) =>
      this.#run(source, part, deadline, signal, running),
    );
    return pages.length === 1 ? (pages[0] ?? []) : mergeNewestFirst(pages, q.limit);
  }

  async #run(
    source: string,
    q: EventsSqlQuery,
    deadline: number,
    signal: AbortSignal,
    running: Set<string>,
  ): Promise<ArchivedEventRow[]> {
    signal.throwIfAborted();
    if (Date.now() >= deadline) throw new QueryTimeoutError("archive query: started after the deadline");
    const { sql, params } = buildEventsSql(source, q);
    // Not aborted mid-request: a start Athena received but whose id never came back would run on
    // unstopped.
    const started = await this.athena
      .send(
        new StartQueryExecutionCommand({
          QueryString: sql,
          WorkGroup: this.options.workGroup,
          QueryExecutionContext: { Database: this.options.database },
          ExecutionParameters: params.map(athenaLiteral),
        }),
      )
      .catch((error: unknown) => {
        // The account's active queries are at their quota (the SDK's own retries included).
        if ((error as { name?: string }).name === "TooManyRequestsException")
          throw new QueryBusyError(`Athena refused to start the query: ${(error as Error).message}`);
        throw error;
      });
    const id = started.QueryExecutionId;
    if (!id) throw new Error("Athena returned no query execution id");
    if (signal.aborted) {
      // The request was given up on while this one started: nobody else knows to stop it.
      await this.#stop(id);
      throw signal.reason;
    }
    running.add(id);
    return await this.#await(id, deadline, signal, running);
  }

  #stop(id: string): Promise<unknown> {
    return this.athena
      .send(new StopQueryExecutionCommand({ QueryExecutionId: id }), {
        abortSignal: AbortSignal.timeout(STOP_GRACE_MS),
      })
      .catch(() => undefined);
  }

  async #await(
    id: string,
    deadline: number,
    signal: AbortSignal,
    running: Set<string>,
  ): Promise<ArchivedEventRow[]> {
    let delay = 100;
    for (;;) {
      signal.throwIfAborted();
      const state = (
        await this.athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id }), {
          abortSignal: signal,
        })
      ).QueryExecution?.Status;
      if (state?.State === "SUCCEEDED") break;
      if (state?.State === "FAILED" || state?.State === "CANCELLED") {
        running.delete(id);
        throw new Error(`Athena query ${id} ${state.State}: ${state.StateChangeReason ?? "no reason"}`);
      }
      if (Date.now() + delay > deadline)
        throw new QueryTimeoutError(`Athena query ${id} still running at the deadline`);
      await sleep(delay, signal);
      delay = Math.min(1_000, delay * 2);
    }
    running.delete(id);
    const rows: ArchivedEventRow[] = [];
    let token: string | undefined;
    let header = true;
    do {
      signal.throwIfAborted();
      if (Date.now() >= deadline)
        throw new QueryTimeoutError(`Athena query ${id}: results still unread at the deadline`);
      const page = await this.athena.send(
        new GetQueryResultsCommand({ QueryExecutionId: id, NextToken: token }),
        { abortSignal: signal },
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

/**
 * The archive's event types split into the fewest runs (in their order) whose queries each stay
 * within ATHENA_QUERY_LIMITS: `partitionsPerEventType` times the run's length projected
 * partitions, and the query string with its execution parameters written in place of its `?`.
 * The quota names the query string, and whether Athena measures it before or after it binds the
 * parameters is not documented; written in, it is the larger of the two (a 64-character type
 * adds 68 bytes to it, and 3 to the text with `?`).
 */
export function eventTypeBatches(source: string, q: EventsSqlQuery, types: readonly string[]): string[][] {
  const maxTypes = Math.max(1, Math.floor(ATHENA_QUERY_LIMITS.partitions / partitionsPerEventType(q)));
  // The query over no event type: the one over two, less the two literals and their separator.
  const two = buildEventsSql(source, { ...q, eventType: undefined, eventTypes: ["a", "b"] });
  const fixed = writtenInBytes(two.sql, two.params) - ("'a'".length + "'b'".length + ", ".length);
  const batches: string[][] = [];
  let batch: string[] = [];
  let bytes = fixed;
  for (const type of types) {
    // Counted with a separator each (one too many: a margin of 2 bytes).
    const cost = Buffer.byteLength(athenaLiteral(type)) + ", ".length;
    if (batch.length > 0 && (batch.length === maxTypes || bytes + cost > ATHENA_QUERY_LIMITS.queryBytes)) {
      batches.push(batch);
      batch = [];
      bytes = fixed;
    }
    batch.push(type);
    bytes += cost;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** The bytes of `sql` with each `?` replaced by its execution parameter (the parameters' order). */
function writtenInBytes(sql: string, params: readonly SqlValue[]): number {
  let bytes = Buffer.byteLength(sql) - params.length;
  for (const p of params) bytes += Buffer.byteLength(athenaLiteral(p));
  return bytes;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
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

import type { EventsSqlQuery } from "../archive/events-sql.ts";

/** An archived event as GET /events returns it. */
export interface ArchivedEventRow {
  event_id: string;
  user_id: string;
  session_id?: string;
  event_type: string;
  timestamp: number;
  page_url?: string;
  properties?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  received_at: number;
}

/**
 * How long GET /events may take, from the handler's start: API Gateway ends a REST integration
 * at 29 s with its own 504, so the handler gives up first and answers itself, with time left
 * to stop the query and reply.
 */
export const EVENTS_QUERY_BUDGET_MS = 25_000;

/** The archive query did not finish by the request's deadline. */
export class QueryTimeoutError extends Error {
  override name = "QueryTimeoutError";
}

/**
 * The query engine refused to start the query for now: Athena's active-query quota (20 or 25 a
 * account, queued ones included, shared by every concurrent request) answers
 * TooManyRequestsException. A retry a few seconds later may pass.
 */
export class QueryBusyError extends Error {
  override name = "QueryBusyError";
}

export interface EventsQueryOptions {
  /**
   * Epoch ms by which the query gives up with QueryTimeoutError, everything included (listing
   * the archive, starting, polling, reading results). @default the budget from the call
   */
  readonly deadline?: number;
}

/** The read port of the archive: DuckDB locally, Athena in AWS, the same SQL for both. */
export interface EventsQueryEngine {
  query(q: EventsSqlQuery, options?: EventsQueryOptions): Promise<ArchivedEventRow[]>;
}

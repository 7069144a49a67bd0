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

/** The read port of the archive: DuckDB locally, Athena in AWS, the same SQL for both. */
export interface EventsQueryEngine {
  query(q: EventsSqlQuery): Promise<ArchivedEventRow[]>;
}

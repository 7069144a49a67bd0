/**
 * The one SQL builder for GET /events, used by both query engines: Athena over the Glue table
 * in AWS and DuckDB over the archived objects locally. Parameters are positional (`?`), values
 * never spliced into the text.
 */
export interface EventsSqlQuery {
  readonly userId?: string;
  readonly eventType?: string;
  /** Without `eventType`: the event types to read (the archive's partitions). */
  readonly eventTypes?: readonly string[];
  /** Inclusive lower bound, epoch ms. */
  readonly from: number;
  /** Exclusive upper bound, epoch ms. */
  readonly to: number;
  readonly limit: number;
  /** Keyset position: rows strictly after (older than) this one. */
  readonly after?: { readonly timestamp: number; readonly eventId: string };
}

export type SqlValue = string | number;

export interface BuiltSql {
  readonly sql: string;
  readonly params: SqlValue[];
}

export const EVENT_COLUMNS = [
  "event_id",
  "user_id",
  "session_id",
  "event_type",
  "timestamp",
  "page_url",
  "properties",
  "metadata",
  "received_at",
] as const;

/**
 * Newest first, keyset-paginated on (timestamp, event_id), one row per event_id (a client retry
 * may have archived an event twice). `dt` bounds let Athena prune partitions.
 */
export function buildEventsSql(source: string, q: EventsSqlQuery): BuiltSql {
  const where: string[] = ['"timestamp" >= ?', '"timestamp" < ?', "dt BETWEEN ? AND ?"];
  const params: SqlValue[] = [q.from, q.to, isoDate(q.from), isoDate(q.to)];
  if (q.userId !== undefined) {
    where.push("user_id = ?");
    params.push(q.userId);
  }
  if (q.eventType !== undefined) {
    where.push("event_type = ?");
    params.push(q.eventType);
  } else if (q.eventTypes !== undefined) {
    // An empty list must match nothing, not everything.
    where.push(
      q.eventTypes.length > 0 ? `event_type IN (${q.eventTypes.map(() => "?").join(", ")})` : "1 = 0",
    );
    params.push(...q.eventTypes);
  }
  if (q.after) {
    where.push('("timestamp" < ? OR ("timestamp" = ? AND event_id < ?))');
    params.push(q.after.timestamp, q.after.timestamp, q.after.eventId);
  }
  const columns = EVENT_COLUMNS.map((c) => `"${c}"`).join(", ");
  const sql = [
    `SELECT ${columns} FROM (`,
    `  SELECT ${columns}, row_number() OVER (PARTITION BY event_id ORDER BY received_at) AS copy`,
    `  FROM ${source}`,
    `  WHERE ${where.join(" AND ")}`,
    ") WHERE copy = 1",
    'ORDER BY "timestamp" DESC, event_id DESC',
    "LIMIT ?",
  ].join("\n");
  params.push(q.limit);
  return { sql, params };
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Opaque cursor: the last row's keyset position, base64url JSON. */
export function encodeCursor(position: { timestamp: number; eventId: string }): string {
  return Buffer.from(JSON.stringify([position.timestamp, position.eventId])).toString("base64url");
}

export function decodeCursor(cursor: string): { timestamp: number; eventId: string } | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (Array.isArray(value) && typeof value[0] === "number" && typeof value[1] === "string") {
      return { timestamp: value[0], eventId: value[1] };
    }
  } catch {
    // fall through
  }
  return undefined;
}

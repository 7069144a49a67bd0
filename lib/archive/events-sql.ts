/**
 * The one SQL builder for GET /events, used by both query engines: Athena (engine v3, Trino SQL)
 * over the Glue table in AWS and DuckDB over the archived objects locally. Values are positional
 * `?` parameters in the WHERE clause, never spliced into the text; Athena accepts execution
 * parameters only there (Athena docs, "Use parameterized queries"), so the LIMIT is an integer
 * literal, validated here.
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

/** The largest LIMIT the builder writes (a page of GET /events plus one look-ahead row). */
export const MAX_SQL_LIMIT = 10_001;

/**
 * Newest first, keyset-paginated on (timestamp, event_id), one row per event_id (a client retry
 * may have archived an event twice). `dt` bounds let Athena prune partitions, and there is
 * always an `event_type` predicate: the Glue table projects `event_type` as an injected
 * partition key, which Athena refuses to query without one (Athena docs, "Injected type":
 * queries must give the key's value(s) in the WHERE clause). With no event type to read there
 * is nothing to query: callers check `eventTypes` first.
 */
export function buildEventsSql(source: string, q: EventsSqlQuery): BuiltSql {
  if (!Number.isSafeInteger(q.limit) || q.limit < 1 || q.limit > MAX_SQL_LIMIT) {
    throw new RangeError(`limit must be an integer in 1..${MAX_SQL_LIMIT}, not ${q.limit}`);
  }
  const types = q.eventType !== undefined ? [q.eventType] : (q.eventTypes ?? []);
  if (types.length === 0) throw new RangeError("an event type (or a non-empty list of them) is required");
  const where: string[] = ['"timestamp" >= ?', '"timestamp" < ?', "dt BETWEEN ? AND ?"];
  const params: SqlValue[] = [q.from, q.to, isoDate(q.from), isoDate(q.to)];
  if (q.userId !== undefined) {
    where.push("user_id = ?");
    params.push(q.userId);
  }
  where.push(types.length === 1 ? "event_type = ?" : `event_type IN (${types.map(() => "?").join(", ")})`);
  params.push(...types);
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
    `LIMIT ${q.limit}`,
  ].join("\n");
  return { sql, params };
}

/**
 * The archive partitions one event type contributes to the query `buildEventsSql` writes: every
 * `dt` of its `dt BETWEEN` bounds, each with all 24 `hour` partitions (there is no predicate on
 * `hour`). Athena projects them all before reading any (partition projection), so a query's count
 * is this times the event types it names.
 */
export function partitionsPerEventType(q: Pick<EventsSqlQuery, "from" | "to">): number {
  const days = (Date.parse(isoDate(q.to)) - Date.parse(isoDate(q.from))) / 86_400_000 + 1;
  return days * 24;
}

/**
 * The rows `buildEventsSql` would answer over all the event types, from its answers over parts
 * of them (each with the same query otherwise, so each holds its part's first `limit` rows): one
 * row per event_id, the earliest received copy, newest first by (timestamp, event_id), ids
 * compared by their UTF-8 bytes as Trino and DuckDB compare text. The same answer as one query
 * when the copies of an event share its timestamp (a client's retry of the same event); copies of
 * one event_id with different timestamps in different parts are resolved among the rows the parts
 * returned.
 */
export function mergeNewestFirst<T extends { event_id: string; timestamp: number; received_at: number }>(
  parts: readonly (readonly T[])[],
  limit: number,
): T[] {
  const byId = new Map<string, T>();
  for (const rows of parts)
    for (const row of rows) {
      const seen = byId.get(row.event_id);
      if (seen === undefined || row.received_at < seen.received_at) byId.set(row.event_id, row);
    }
  return [...byId.values()]
    .map((row) => ({ row, id: Buffer.from(row.event_id, "utf8") }))
    .sort((a, b) => b.row.timestamp - a.row.timestamp || Buffer.compare(b.id, a.id))
    .slice(0, limit)
    .map(({ row }) => row);
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * Opaque cursor: the last row's keyset position as `<timestamp>.<base64url event_id>`. Every
 * string of that shape (CURSOR_PATTERN, which the API schema declares) is a valid position, so
 * a schema-valid cursor is never refused. The id is base64url of its UTF-8 bytes, and an id of the
 * contract (at most 128 UTF-16 units) is at most 384 bytes (3 per unit; a pair of units is 4), so
 * 512 characters: with 200, the cursor of an id of non-ASCII text was refused by the API itself.
 */
export const CURSOR_PATTERN = /^\d{1,16}\.[A-Za-z0-9_-]{0,512}$/;

export function encodeCursor(position: { timestamp: number; eventId: string }): string {
  return `${position.timestamp}.${Buffer.from(position.eventId, "utf8").toString("base64url")}`;
}

export function decodeCursor(cursor: string): { timestamp: number; eventId: string } | undefined {
  if (!CURSOR_PATTERN.test(cursor)) return undefined;
  const [timestamp = "", eventId = ""] = cursor.split(".");
  return { timestamp: Number(timestamp), eventId: Buffer.from(eventId, "base64url").toString("utf8") };
}

/**
 * A page of at most `limit` rows whose JSON fits in `maxBytes` (with `overheadBytes` for the
 * envelope around them): rows are taken newest first until either bound is reached, and `more`
 * says whether rows were left out, so that a cursor continues after the last one taken.
 */
export function pageWithinBytes<T>(
  rows: readonly T[],
  limit: number,
  maxBytes: number,
  overheadBytes = 1024,
): { page: T[]; more: boolean } {
  const page: T[] = [];
  let size = overheadBytes;
  for (const row of rows) {
    if (page.length === limit) break;
    const rowBytes = Buffer.byteLength(JSON.stringify(row)) + 1;
    if (page.length > 0 && size + rowBytes > maxBytes) break;
    size += rowBytes;
    page.push(row);
  }
  return { page, more: rows.length > page.length };
}

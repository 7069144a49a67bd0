import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import type { DuckDBConnection } from "@duckdb/node-api";
import { buildEventsSql, EVENT_COLUMNS, type EventsSqlQuery } from "../archive/events-sql.ts";
import { hoursBetween } from "../archive/layout.ts";
import { type ListedObject, nextRound, pageIsFinal, readOrder } from "../archive/read-order.ts";
import { lazy } from "../lazy.ts";
import { mapBounded } from "../map-bounded.ts";
import { listEventTypes } from "./archive-listing.ts";
import {
  type ArchivedEventRow,
  EVENTS_QUERY_BUDGET_MS,
  type EventsQueryEngine,
  type EventsQueryOptions,
  QueryTimeoutError,
} from "./events-query.ts";
import { FileCache } from "./file-cache.ts";

let engines = 0;

/** S3 listings one query keeps in flight (an hour of a query by user lists every event type). */
const LISTINGS_IN_FLIGHT = 16;

/**
 * GET /events locally: an embedded DuckDB runs the shared SQL over the archived NDJSON.gz
 * objects, fetched through the S3 API (DuckDB's own S3 support needs an extension download,
 * which the local setup avoids). Hours are scanned newest first and the scan stops once a page
 * is full, because the archive is partitioned by event hour. Within an hour, objects are fetched
 * in rounds, newest possible event first (`readOrder`: the bound comes from the listing alone),
 * until the page is full of rows newer than any unread object can hold: the newest page of a busy
 * hour reads its last few seconds, not the whole hour.
 */
export class DuckDbEventsEngine implements EventsQueryEngine {
  // One directory per engine: two engines in one process (the bench compares plans) share nothing.
  readonly #cache = new FileCache(join(tmpdir(), `tidemark-events-cache-${process.pid}-${++engines}`));
  readonly #firstRound: number;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
    options: {
      /** Objects fetched in an hour's first round (`nextRound` sizes the others). @default 8 */
      readonly firstRound?: number;
    } = {},
  ) {
    this.#firstRound = Math.max(1, options.firstRound ?? 8);
  }

  async query(q: EventsSqlQuery, options: EventsQueryOptions = {}): Promise<ArchivedEventRow[]> {
    const deadline = options.deadline ?? Date.now() + EVENTS_QUERY_BUDGET_MS;
    const types =
      q.eventType !== undefined ? [q.eventType] : await listEventTypes(this.s3, this.bucket, this.prefix);
    if (types.length === 0) return [];
    const hours = hoursBetween(q.from, q.to - 1).reverse();
    const rows: ArchivedEventRow[] = [];
    // The local copies this query reads: none is deleted before it is done.
    const held: string[] = [];
    const scan = this.#scan(q, types, hours, rows, held, deadline).finally(() =>
      Promise.all(held.map((path) => this.#cache.release(path))),
    );
    // The scan checks the deadline between steps, but one step (a round of object fetches on a
    // loaded S3 server, a DuckDB run) can outlast it and the function's timeout with it: the
    // client then got a bare "function failed" instead of the 503 that says to retry. The answer
    // leaves at the deadline; the scan stops at its next check and releases its copies then.
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new QueryTimeoutError("archive query: not done by the request's deadline")),
        Math.max(0, deadline - Date.now()),
      );
    });
    scan.catch(() => undefined); // its outcome after the deadline is nobody's
    try {
      await Promise.race([scan, expired]);
    } finally {
      clearTimeout(timer);
    }
    return rows;
  }

  async #scan(
    q: EventsSqlQuery,
    types: readonly string[],
    hours: ReturnType<typeof hoursBetween>,
    rows: ArchivedEventRow[],
    held: string[],
    deadline: number,
  ): Promise<void> {
    // Past the deadline the handler has answered 503 already; without this check a query by user
    // alone (every event type, every hour of up to 7 days: thousands of listings) kept listing and
    // reading long after, on the CPU the rest of the stack shares.
    const inTime = (what: string) => {
      if (Date.now() >= deadline)
        throw new QueryTimeoutError(`archive query: ${what} not done by the request's deadline`);
    };
    for (const { dt, hour } of hours) {
      inTime(`hour ${dt} ${hour}`);
      const listed = (
        await mapBounded(types, LISTINGS_IN_FLIGHT, (t) => {
          inTime(`listing hour ${dt} ${hour}`);
          return this.#list(`${this.prefix}event_type=${t}/dt=${dt}/hour=${hour}/`);
        })
      ).flat();
      const order = readOrder(listed, q.from);
      const limit = q.limit - rows.length;
      for (let n = Math.min(order.length, this.#firstRound); n > 0; ) {
        inTime(`hour ${dt} ${hour}`);
        const files = await Promise.all(
          order.slice(0, n).map(async (o) => {
            const path = await this.#localCopy(o);
            held.push(path);
            return path;
          }),
        );
        const found = await this.#run(files, dt, { ...q, eventTypes: types, limit });
        if (pageIsFinal(found, limit, order[n]?.newest)) {
          rows.push(...found);
          break;
        }
        n = nextRound(order, n, found, limit);
      }
      if (rows.length >= q.limit) break;
    }
  }

  /** The shared SQL over `files`, all of one day's partition `dt` (so `dt` is a constant). */
  async #run(files: string[], dt: string, q: EventsSqlQuery): Promise<ArchivedEventRow[]> {
    const connection = await this.#connect();
    const columns =
      "{event_id: 'VARCHAR', user_id: 'VARCHAR', session_id: 'VARCHAR', event_type: 'VARCHAR', timestamp: 'BIGINT', page_url: 'VARCHAR', properties: 'JSON', metadata: 'JSON', received_at: 'BIGINT'}";
    const fileList = files.map((f) => `'${f.replaceAll("'", "''")}'`).join(", ");
    const source = `(SELECT *, '${dt}' AS dt FROM read_json([${fileList}], format = 'newline_delimited', compression = 'gzip', columns = ${columns}))`;
    const { sql, params } = buildEventsSql(source, q);
    const reader = await connection.runAndReadAll(sql, params);
    return reader.getRowObjectsJS().map((r) => toRow(r));
  }

  /** Loads DuckDB now instead of on the first query (the native module takes ~200 ms to load). */
  async prepare(): Promise<void> {
    await this.#connect();
  }

  // Imported on first use: a bundler hoists static imports of external packages to module init,
  // and the native module exists only where the local engine runs. A failed load is retried.
  readonly #connect = lazy(async (): Promise<DuckDBConnection> => {
    const { DuckDBInstance } = await import("@duckdb/node-api");
    const db = await DuckDBInstance.create(":memory:");
    const connection = await db.connect();
    // DuckDB 1.5's top-N window rewrite fails an internal assertion on the shared dedupe
    // query (row_number() = 1 under ORDER BY … LIMIT); the plain plan is fast enough here.
    await connection.run("SET disabled_optimizers = 'top_n_window_elimination'");
    return connection;
  });

  async #list(prefix: string): Promise<ListedObject[]> {
    const out: ListedObject[] = [];
    let token: string | undefined;
    do {
      const res = await this.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of res.Contents ?? [])
        if (o.Key)
          out.push({
            key: o.Key,
            etag: (o.ETag ?? "").replaceAll('"', ""),
            ...(o.LastModified ? { lastModifiedMs: o.LastModified.getTime() } : {}),
          });
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /** A local copy of an object, cached by key and ETag (a replayed batch changes the ETag). */
  #localCopy(object: ListedObject): Promise<string> {
    return this.#cache.acquire(object.key, `${object.etag}.ndjson.gz`, async () => {
      const res = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: object.key }));
      return (await res.Body?.transformToByteArray()) ?? new Uint8Array();
    });
  }
}

function toRow(r: Record<string, unknown>): ArchivedEventRow {
  const row: Record<string, unknown> = {};
  for (const c of EVENT_COLUMNS) {
    const v = r[c];
    if (v === null || v === undefined) continue;
    if (c === "properties" || c === "metadata") row[c] = typeof v === "string" ? JSON.parse(v) : v;
    else if (c === "timestamp" || c === "received_at") row[c] = Number(v);
    else row[c] = v;
  }
  return row as unknown as ArchivedEventRow;
}

import { mkdir, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import type { DuckDBConnection } from "@duckdb/node-api";
import { buildEventsSql, EVENT_COLUMNS, type EventsSqlQuery } from "../archive/events-sql.ts";
import { hoursBetween } from "../archive/layout.ts";
import { listEventTypes } from "./archive-listing.ts";
import type { ArchivedEventRow, EventsQueryEngine } from "./events-query.ts";

/**
 * GET /events locally: an embedded DuckDB runs the shared SQL over the archived NDJSON.gz
 * objects, fetched through the S3 API (DuckDB's own S3 support needs an extension download,
 * which the local setup avoids). Hours are scanned newest first and the scan stops once a page
 * is full, because the archive is partitioned by event hour.
 */
export class DuckDbEventsEngine implements EventsQueryEngine {
  readonly #cacheDir = join(tmpdir(), `tidemark-events-cache-${process.pid}`);
  #connection: Promise<DuckDBConnection> | undefined;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
  ) {}

  async query(q: EventsSqlQuery): Promise<ArchivedEventRow[]> {
    const types =
      q.eventType !== undefined ? [q.eventType] : await listEventTypes(this.s3, this.bucket, this.prefix);
    if (types.length === 0) return [];
    const hours = hoursBetween(q.from, q.to - 1).reverse();
    const rows: ArchivedEventRow[] = [];
    for (const { dt, hour } of hours) {
      const keys = (
        await Promise.all(
          types.map((t) => this.#list(`${this.prefix}event_type=${t}/dt=${dt}/hour=${hour}/`)),
        )
      ).flat();
      if (keys.length === 0) continue;
      const files = await Promise.all(keys.map((k) => this.#localCopy(k)));
      rows.push(...(await this.#run(files, { ...q, eventTypes: types, limit: q.limit - rows.length })));
      if (rows.length >= q.limit) break;
    }
    return rows;
  }

  async #run(files: string[], q: EventsSqlQuery): Promise<ArchivedEventRow[]> {
    const connection = await this.#connect();
    const columns =
      "{event_id: 'VARCHAR', user_id: 'VARCHAR', session_id: 'VARCHAR', event_type: 'VARCHAR', timestamp: 'BIGINT', page_url: 'VARCHAR', properties: 'JSON', metadata: 'JSON', received_at: 'BIGINT'}";
    const fileList = files.map((f) => `'${f.replaceAll("'", "''")}'`).join(", ");
    const source = `(SELECT *, strftime(make_timestamp("timestamp" * 1000), '%Y-%m-%d') AS dt FROM read_json([${fileList}], format = 'newline_delimited', compression = 'gzip', columns = ${columns}))`;
    const { sql, params } = buildEventsSql(source, q);
    const reader = await connection.runAndReadAll(sql, params);
    return reader.getRowObjectsJS().map((r) => toRow(r));
  }

  async #connect(): Promise<DuckDBConnection> {
    // Imported on first use: a bundler hoists static imports of external packages to module
    // init, and the native module exists only where the local engine runs.
    this.#connection ??= import("@duckdb/node-api").then(async ({ DuckDBInstance }) => {
      const db = await DuckDBInstance.create(":memory:");
      const connection = await db.connect();
      // DuckDB 1.5's top-N window rewrite fails an internal assertion on the shared dedupe
      // query (row_number() = 1 under ORDER BY … LIMIT); the plain plan is fast enough here.
      await connection.run("SET disabled_optimizers = 'top_n_window_elimination'");
      return connection;
    });
    return this.#connection;
  }

  async #list(prefix: string): Promise<{ key: string; etag: string }[]> {
    const out: { key: string; etag: string }[] = [];
    let token: string | undefined;
    do {
      const res = await this.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of res.Contents ?? [])
        if (o.Key) out.push({ key: o.Key, etag: (o.ETag ?? "").replaceAll('"', "") });
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /** A local copy of an object, cached by key and ETag (a replayed batch changes the ETag). */
  async #localCopy(object: { key: string; etag: string }): Promise<string> {
    const file = join(this.#cacheDir, `${object.key.replaceAll("/", "_")}.${object.etag}.ndjson.gz`);
    try {
      await stat(file);
      return file;
    } catch {
      // not cached yet
    }
    const res = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: object.key }));
    const bytes = await res.Body?.transformToByteArray();
    await mkdir(this.#cacheDir, { recursive: true });
    await writeFile(file, bytes ?? new Uint8Array());
    return file;
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

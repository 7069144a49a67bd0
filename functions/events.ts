import { z } from "zod";
import {
  EVENTS_QUERY_BUDGET_MS,
  type EventsQueryEngine,
  QueryBusyError,
  QueryTimeoutError,
} from "../lib/adapters/events-query.ts";
import { decodeCursor, encodeCursor, pageWithinBytes } from "../lib/archive/events-sql.ts";
import { awsEndpointsEnv, readConfig } from "../lib/config.ts";
import { parseEventsQuery } from "../lib/contract/api.ts";
import { badRequest, serviceUnavailable } from "../lib/contract/errors.ts";
import { lazy } from "../lib/lazy.ts";
import { api, buckets } from "../lib/topology.ts";
import { apiHandler, errorResponse, json, queryOf } from "./shared/http.ts";

/** GET /events: archived events, newest first, keyset-paginated by an opaque cursor. */
const config = readConfig(
  awsEndpointsEnv.extend({
    EVENTS_QUERY_ENGINE: z.enum(["athena", "duckdb"]).default("athena"),
    ARCHIVE_BUCKET: z.string().min(1),
    ATHENA_WORKGROUP: z.string().min(1).optional(),
    ATHENA_DATABASE: z.string().min(1).optional(),
    ATHENA_TABLE: z.string().min(1).optional(),
  }),
);

// Engines load on first use: DuckDB (a native module, never in the AWS bundle) only locally,
// the Athena client only in AWS; module init stays small either way.
const engine = lazy(async (): Promise<EventsQueryEngine> => {
  if (config.EVENTS_QUERY_ENGINE === "duckdb") {
    const [{ DuckDbEventsEngine }, { createS3 }] = await Promise.all([
      import("../lib/adapters/events-duckdb.ts"),
      import("../lib/adapters/s3-client.ts"),
    ]);
    const local = new DuckDbEventsEngine(createS3(config), config.ARCHIVE_BUCKET, buckets.archive.prefix);
    // Loading starts now, not at the first query (see below).
    local.prepare().catch(() => undefined);
    return local;
  }
  const [{ AthenaEventsEngine }, { AthenaClient }, { createS3 }, { listEventTypes }] = await Promise.all([
    import("../lib/adapters/events-athena.ts"),
    import("@aws-sdk/client-athena"),
    import("../lib/adapters/s3-client.ts"),
    import("../lib/adapters/archive-listing.ts"),
  ]);
  if (!config.ATHENA_WORKGROUP || !config.ATHENA_DATABASE || !config.ATHENA_TABLE) {
    throw new Error("ATHENA_WORKGROUP, ATHENA_DATABASE and ATHENA_TABLE are required with the athena engine");
  }
  const s3 = createS3(config);
  return new AthenaEventsEngine(new AthenaClient({ region: config.AWS_REGION }), {
    workGroup: config.ATHENA_WORKGROUP,
    database: config.ATHENA_DATABASE,
    table: config.ATHENA_TABLE,
    eventTypes: () => listEventTypes(s3, config.ARCHIVE_BUCKET, buckets.archive.prefix),
  });
});

// The local engine (never the AWS one) starts loading at module init: DuckDB's native module takes
// ~200 ms, which the cold start's first query then overlaps with its S3 listing and fetches.
// Nothing waits for it here, so init stays as small as in AWS; a failure surfaces on a request.
if (config.EVENTS_QUERY_ENGINE === "duckdb") engine().catch(() => undefined);

export const handler = apiHandler(async (event) => {
  // The budget counts from here: loading the engine and listing the archive take from it too.
  const deadline = Date.now() + EVENTS_QUERY_BUDGET_MS;
  const parsed = parseEventsQuery(queryOf(event), Date.now());
  if (!parsed.ok) return errorResponse(parsed.error);
  const q = parsed.value;
  const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
  if (q.cursor !== undefined && !after) {
    return errorResponse(badRequest("cursor is not valid; pass next_cursor from a previous page unchanged"));
  }
  let rows: Awaited<ReturnType<EventsQueryEngine["query"]>>;
  try {
    rows = await (await engine()).query(
      {
        ...(q.user_id !== undefined ? { userId: q.user_id } : {}),
        ...(q.event_type !== undefined ? { eventType: q.event_type } : {}),
        from: q.from,
        to: q.to,
        limit: q.limit + 1,
        ...(after ? { after } : {}),
      },
      { deadline },
    );
  } catch (error) {
    // The handler's own answer before API Gateway's 29 s limit would end the request with a bare 504.
    if (error instanceof QueryTimeoutError)
      return errorResponse(
        serviceUnavailable(
          `the archive query did not finish within ${EVENTS_QUERY_BUDGET_MS / 1000} s; retry, or narrow from/to or add event_type`,
        ),
        { "retry-after": "5" },
      );
    if (error instanceof QueryBusyError)
      return errorResponse(
        serviceUnavailable(
          "the archive is answering as many queries as it can at once; retry in a few seconds",
        ),
        { "retry-after": "5" },
      );
    throw error;
  }
  // A full page of large events could pass Lambda's response quota: the page is cut by bytes
  // too, and the cursor continues after its last row.
  const { page, more } = pageWithinBytes(rows, q.limit, api.payload.maxResponseBodyBytes);
  const last = page[page.length - 1];
  const nextCursor =
    more && last ? encodeCursor({ timestamp: last.timestamp, eventId: last.event_id }) : null;
  return json(200, { events: page, next_cursor: nextCursor });
});

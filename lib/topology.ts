/**
 * The one place that says what Tidemark is made of: HTTP routes, Kafka topics, DynamoDB tables,
 * S3 buckets, Lambda functions and their event-source mappings.
 *
 * Both wirings read this module and nothing else for these facts:
 * - `local/` starts an HTTP server, Kafka consumer groups and creates topics/tables/buckets from it;
 * - `infra/` synthesizes API Gateway, MSK topics, ESMs, tables and buckets from it.
 * So a route, topic or table added here shows up in both, and they cannot drift.
 *
 * Plain data only: no AWS SDK, no CDK, no Node APIs.
 */

/**
 * The topics' `max.message.bytes` (a partition's record batch in one produce request must fit):
 * every producer cuts its requests by it (lib/adapters/kafka-batches.ts), and both wirings create
 * the topics with it. 8 MiB is MSK Serverless's maximum; Kafka's default (1 MiB) would make a
 * legal POST /events (10,000 events of one user, up to 10 MB) unpublishable.
 */
export const MAX_MESSAGE_BYTES = 8 * 1_048_576;

/** Kafka topics. Partition counts matter: each `events.raw` partition has exactly one writer per aggregate item. */
export const topics = {
  /** Every accepted event, keyed by `user_id` so one user's events stay ordered. */
  eventsRaw: { name: "events.raw", partitions: 6, retentionHours: 168, maxMessageBytes: MAX_MESSAGE_BYTES },
  /** Aggregate updates republished for other services (live statistics). */
  analyticsStats: {
    name: "analytics.stats",
    partitions: 3,
    retentionHours: 24,
    maxMessageBytes: MAX_MESSAGE_BYTES,
  },
  /** Events later than the watermark: archived, counted as late, never change a closed window. */
  eventsLate: { name: "events.late", partitions: 3, retentionHours: 168, maxMessageBytes: MAX_MESSAGE_BYTES },
  /** Dead-letter path: records an event-source mapping could not process after its retries. */
  deadLetter: { name: "events.dlq", partitions: 1, retentionHours: 336, maxMessageBytes: MAX_MESSAGE_BYTES },
} as const satisfies Record<string, TopicSpec>;

export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  readonly retentionHours: number;
  /** The topic's `max.message.bytes`. */
  readonly maxMessageBytes: number;
}

export type AttributeType = "S" | "N";

export interface TableSpec {
  /** Environment variable through which functions learn the physical table name. */
  readonly envVar: string;
  readonly partitionKey: { readonly name: string; readonly type: AttributeType };
  readonly sortKey?: { readonly name: string; readonly type: AttributeType };
  /** Attribute holding an epoch-seconds expiry; DynamoDB TTL deletes the item after it. */
  readonly ttlAttribute?: string;
  /** Whether the table emits a change stream (and with which image). */
  readonly stream?: "NEW_IMAGE" | "NEW_AND_OLD_IMAGES";
  readonly globalIndexes?: readonly {
    readonly name: string;
    readonly partitionKey: { readonly name: string; readonly type: AttributeType };
    readonly sortKey?: { readonly name: string; readonly type: AttributeType };
  }[];
}

/**
 * DynamoDB tables (on-demand). Physical names are never fixed: AWS generates them, locally they
 * are `tidemark-<key>`; functions read them from `envVar`.
 */
export const tables = {
  /**
   * Partial aggregates (layout: lib/stream/partial-items.ts): `pk` = rule, granularity and hour
   * (or day) bucket, `sk` = window start, source partition and delta or compacted part. One
   * writer per partition's keys (the consumer of that partition), fenced by the highest applied
   * offset; readers merge every partition's partials of a window, one Query per bucket.
   */
  aggregates: {
    envVar: "AGGREGATES_TABLE",
    partitionKey: { name: "pk", type: "S" },
    sortKey: { name: "sk", type: "S" },
    ttlAttribute: "expires_at",
    stream: "NEW_IMAGE",
  },
  /** Aggregation rules, editable at run time through `/rules`. */
  rules: {
    envVar: "RULES_TABLE",
    partitionKey: { name: "rule_id", type: "S" },
  },
  /** What the stream processor keeps between batches: watermarks, sessions, applied offsets. */
  streamState: {
    envVar: "STREAM_STATE_TABLE",
    partitionKey: { name: "pk", type: "S" },
    sortKey: { name: "sk", type: "S" },
    ttlAttribute: "expires_at",
  },
  /**
   * Open WebSocket connections of the live-stats API and what each subscribed to. Few items (one
   * per open dashboard), read whole by the broadcaster; TTL removes connections that ended without
   * a `$disconnect` (API Gateway closes every connection after 2 h).
   */
  connections: {
    envVar: "CONNECTIONS_TABLE",
    partitionKey: { name: "connection_id", type: "S" },
    ttlAttribute: "expires_at",
  },
} as const satisfies Record<string, TableSpec>;

export interface BucketSpec {
  readonly envVar: string;
  /** Key prefix of the Hive-partitioned archive inside the bucket. */
  readonly prefix: string;
  readonly lifecycle: {
    readonly transitionToInfrequentAccessDays: number;
    readonly transitionToGlacierDays: number;
    readonly expireDays: number;
  };
}

/** S3 buckets. The archive layout is `events/event_type=<t>/dt=<YYYY-MM-DD>/hour=<HH>/<name>.ndjson.gz`. */
export const buckets = {
  archive: {
    envVar: "ARCHIVE_BUCKET",
    prefix: "events/",
    lifecycle: { transitionToInfrequentAccessDays: 90, transitionToGlacierDays: 180, expireDays: 365 },
  },
} as const satisfies Record<string, BucketSpec>;

export type FunctionName =
  | "ingest"
  | "events"
  | "stats"
  | "rules"
  | "health"
  | "openapi"
  | "aggregate"
  | "archive"
  | "publish"
  | "wsConnection"
  | "wsAuthorizer"
  | "wsSubscribe"
  | "broadcast"
  | "dashboard";

export interface FunctionSpec {
  /** Module path relative to the repository root; exports `handler`. */
  readonly entry: string;
  readonly description: string;
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
  readonly tables: readonly (keyof typeof tables)[];
  /** Which of `tables` the function writes; the others it only reads. @default none */
  readonly writesTables?: readonly (keyof typeof tables)[];
  readonly buckets: readonly (keyof typeof buckets)[];
  /** Which of `buckets` the function writes; the others it only reads. @default none */
  readonly writesBuckets?: readonly (keyof typeof buckets)[];
  /**
   * Tables and buckets the function only checks are there (DescribeTable, HeadBucket), never
   * reads or writes: it learns their names, and may touch no item or object. @default none
   */
  readonly probes?: {
    readonly tables?: readonly (keyof typeof tables)[];
    readonly buckets?: readonly (keyof typeof buckets)[];
  };
  /** Topics the function produces to (read access for consumers comes from its mapping). */
  readonly produces: readonly (keyof typeof topics)[];
  /**
   * Concurrency reserved for the function in AWS, so that a spike elsewhere cannot take the
   * account's whole pool and starve the stream consumers; also the most environments it runs,
   * which the Kafka connection budget counts on (kafkaConnectionBudget). Ingest's comes from that
   * budget. @default none (shares the pool)
   */
  readonly reservedConcurrency?: number;
  /** Topics whose size (record count, from offsets) the function reads, without reading records. */
  readonly observes?: readonly (keyof typeof topics)[];
  /** Posts to WebSocket clients through the live-stats API's `@connections` management endpoint. */
  readonly postsToConnections?: boolean;
  /**
   * Files the handler serves as they are, by file name: npm module paths (`uplot/dist/uPlot.esm.js`)
   * or repository paths (`./web/…`). Copied into the Lambda bundle's `assets/` in AWS; read from
   * the repository and `node_modules` locally.
   */
  readonly assets?: readonly string[];
}

/** Lambda functions: one module each under `functions/`, the same module locally and in AWS. */
export const functions = {
  ingest: {
    entry: "functions/ingest.ts",
    description: "POST /events: validates and publishes events to events.raw",
    memoryMb: 1769,
    timeoutSeconds: 29,
    tables: [],
    buckets: [],
    produces: ["eventsRaw"],
  },
  events: {
    entry: "functions/events.ts",
    description: "GET /events: historical events from the archive",
    memoryMb: 1024,
    timeoutSeconds: 29,
    tables: [],
    buckets: ["archive"],
    produces: [],
  },
  stats: {
    entry: "functions/stats.ts",
    description: "GET /stats: live statistics merged from partial aggregates",
    memoryMb: 1024,
    timeoutSeconds: 10,
    // streamState: the fences' watermarks say which windows are closed (cached, not re-read).
    tables: ["aggregates", "rules", "streamState"],
    buckets: [],
    produces: [],
  },
  rules: {
    entry: "functions/rules.ts",
    description: "/rules: create, list, update and disable aggregation rules",
    memoryMb: 512,
    timeoutSeconds: 10,
    tables: ["rules"],
    writesTables: ["rules"],
    buckets: [],
    produces: [],
  },
  health: {
    entry: "functions/health.ts",
    description: "GET /health: probes Kafka, DynamoDB and S3",
    memoryMb: 256,
    timeoutSeconds: 5,
    // A public route: it asks whether the table and bucket answer, and may read nothing in them.
    tables: [],
    buckets: [],
    probes: { tables: ["aggregates"], buckets: ["archive"] },
    produces: [],
    observes: ["deadLetter"],
    // A public route with a Kafka admin client per environment: bounded, so that a flood of
    // health checks cannot take the cluster's connections (kafkaConnectionBudget).
    reservedConcurrency: 5,
  },
  openapi: {
    entry: "functions/openapi.ts",
    description: "GET /openapi.json: the OpenAPI 3.1 document",
    memoryMb: 256,
    timeoutSeconds: 5,
    tables: [],
    buckets: [],
    produces: [],
  },
  aggregate: {
    entry: "functions/aggregate.ts",
    description: "events.raw consumer: event-time windows into DynamoDB partial aggregates",
    memoryMb: 1024,
    timeoutSeconds: 60,
    tables: ["aggregates", "rules", "streamState"],
    // Rules are read (cached), never written: only /rules edits them.
    writesTables: ["aggregates", "streamState"],
    buckets: [],
    // Late events only: analytics.stats is the stats publisher's (it rides the table's stream).
    produces: ["eventsLate"],
    // A Kafka mapping invokes at most one batch per partition at a time.
    reservedConcurrency: topics.eventsRaw.partitions,
  },
  archive: {
    entry: "functions/archive.ts",
    description: "events.raw consumer: raw events into Hive-partitioned NDJSON.gz on S3",
    memoryMb: 1024,
    timeoutSeconds: 120,
    tables: [],
    buckets: ["archive"],
    writesBuckets: ["archive"],
    produces: ["deadLetter"],
    reservedConcurrency: topics.eventsRaw.partitions,
  },
  publish: {
    entry: "functions/publish.ts",
    description: "aggregates table stream consumer: republishes merged window updates to analytics.stats",
    memoryMb: 512,
    timeoutSeconds: 30,
    tables: ["aggregates"],
    buckets: [],
    produces: ["analyticsStats"],
    // No reservation: the stream mapping runs one batch per shard at a time (parallelization
    // factor 1), and the stream has as many shards as the table has partitions, which grow with
    // its size and throughput. Any fixed number would throttle the shards beyond it while their
    // records age towards the stream's 24-hour expiry; the IteratorAge alarm watches the lag.
  },
  wsConnection: {
    entry: "functions/ws-connection.ts",
    description: "live-stats WebSocket $connect/$disconnect: records and forgets connections",
    memoryMb: 256,
    timeoutSeconds: 5,
    tables: ["connections"],
    buckets: [],
    produces: [],
  },
  wsAuthorizer: {
    entry: "functions/ws-authorizer.ts",
    description: "live-stats WebSocket $connect authorizer: hands the ?key= API key to the usage-plan check",
    memoryMb: 256,
    timeoutSeconds: 5,
    tables: [],
    buckets: [],
    produces: [],
  },
  wsSubscribe: {
    entry: "functions/ws-subscribe.ts",
    description: "live-stats WebSocket subscribe: stores which rule ids / event types a connection wants",
    memoryMb: 256,
    timeoutSeconds: 5,
    tables: ["connections"],
    buckets: [],
    produces: [],
    postsToConnections: true,
  },
  broadcast: {
    entry: "functions/broadcast.ts",
    description: "analytics.stats consumer: pushes matching stats messages to subscribed WebSocket clients",
    memoryMb: 512,
    timeoutSeconds: 30,
    tables: ["connections", "rules"],
    buckets: [],
    produces: [],
    postsToConnections: true,
    reservedConcurrency: topics.analyticsStats.partitions,
  },
  dashboard: {
    entry: "functions/dashboard.ts",
    description: "GET /dashboard: the live dashboard page and its static ES modules",
    memoryMb: 256,
    timeoutSeconds: 5,
    tables: [],
    buckets: [],
    produces: [],
    assets: [
      "./web/dashboard.html",
      "./web/dashboard.js",
      "./web/chart-axis.js",
      "./web/revenue.js",
      "./web/dashboard.css",
      "uplot/dist/uPlot.esm.js",
      "uplot/dist/uPlot.min.css",
    ],
  },
} as const satisfies Record<FunctionName, FunctionSpec>;

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RouteSpec {
  readonly method: HttpMethod;
  /** API Gateway resource path; `{name}` segments are path parameters. */
  readonly path: string;
  readonly function: FunctionName;
  /** Whether the route needs an API key in AWS (usage plans). */
  readonly apiKeyRequired: boolean;
}

/** HTTP routes (API Gateway REST API in AWS, `local/api-gateway.ts` on one machine). */
export const routes = [
  { method: "POST", path: "/events", function: "ingest", apiKeyRequired: true },
  { method: "GET", path: "/events", function: "events", apiKeyRequired: true },
  { method: "GET", path: "/stats", function: "stats", apiKeyRequired: true },
  { method: "GET", path: "/rules", function: "rules", apiKeyRequired: true },
  { method: "POST", path: "/rules", function: "rules", apiKeyRequired: true },
  { method: "GET", path: "/rules/{rule_id}", function: "rules", apiKeyRequired: true },
  { method: "PUT", path: "/rules/{rule_id}", function: "rules", apiKeyRequired: true },
  { method: "DELETE", path: "/rules/{rule_id}", function: "rules", apiKeyRequired: true },
  { method: "GET", path: "/health", function: "health", apiKeyRequired: false },
  { method: "GET", path: "/openapi.json", function: "openapi", apiKeyRequired: false },
  // The page and its static modules hold no data; the page reads /stats and /rules with the user's key.
  { method: "GET", path: "/dashboard", function: "dashboard", apiKeyRequired: false },
  { method: "GET", path: "/dashboard/{asset}", function: "dashboard", apiKeyRequired: false },
] as const satisfies readonly RouteSpec[];

export interface WebSocketAuthorizerSpec {
  /** The Lambda REQUEST authorizer's function. */
  readonly function: FunctionName;
  /**
   * The query string parameter carrying the API key (browsers cannot set headers on a WebSocket).
   * It is the authorizer's identity source: a request without it is refused with 401 before the
   * function runs.
   */
  readonly keyParameter: string;
}

export interface WebSocketRouteSpec {
  /** `$connect`, `$disconnect`, or the value of the message's `action` field. */
  readonly routeKey: string;
  readonly function: FunctionName;
}

/**
 * The live-stats WebSocket API (API Gateway WebSocket API in AWS, `local/websocket-gateway.ts`
 * on one machine). Clients send `{"action":"subscribe",…}` and receive matching `analytics.stats`
 * messages (docs/live-stats.md).
 */
export const webSocketApi = {
  /** API Gateway's route selection: the `action` field of a JSON message picks the route. */
  routeSelectionExpression: "$request.body.action",
  stageName: "live",
  /** API Gateway closes a connection after 2 h at the latest; its item expires then too. */
  connectionTtlSeconds: 2 * 3600,
  /**
   * The largest message API Gateway sends to a client: 128 KB (API Gateway docs, "quotas for
   * configuring and running a WebSocket API": message payload size). PostToConnection refuses
   * larger data with PayloadTooLargeException (413); the local gateway does the same.
   */
  maxMessageBytes: 128 * 1024,
  /** Locally the WebSocket server (and `@connections`) listens on the API's port + this (`WS_PORT` overrides). */
  localPortOffset: 1,
  /** Environment variable with the `@connections` management endpoint (the stage's callback URL). */
  managementEndpointEnvVar: "LIVE_MANAGEMENT_ENDPOINT",
  /** Environment variable with the `wss://` URL clients connect to (the dashboard needs it). */
  urlEnvVar: "LIVE_WEBSOCKET_URL",
  /**
   * `$connect` needs an API key of the REST API's usage plan, in `?key=`: the authorizer hands it
   * to API Gateway as `usageIdentifierKey`, API Gateway checks it as it checks `x-api-key` on
   * `/stats` (docs/live-stats.md, "Connecting").
   */
  connectAuthorizer: { function: "wsAuthorizer", keyParameter: "key" },
  routes: [
    { routeKey: "$connect", function: "wsConnection" },
    { routeKey: "$disconnect", function: "wsConnection" },
    { routeKey: "subscribe", function: "wsSubscribe" },
  ],
} as const satisfies {
  readonly routes: readonly WebSocketRouteSpec[];
  readonly connectAuthorizer: WebSocketAuthorizerSpec;
} & Record<string, unknown>;

/** API-wide settings: API Gateway stage throttling and limits, mirrored by the local gateway. */
export const api = {
  /** Steady-state requests per second (API Gateway stage throttling). */
  throttleRateLimit: 5_000,
  /** Token-bucket burst size. */
  throttleBurstLimit: 2_000,
  /**
   * How long a POST /events of a few hundred events takes in AWS, assumed (parse, gzip, one acks=all
   * round trip): with it, POST /events' own throttle in AWS admits what ingest's reserved
   * environments can serve (ingestThrottle).
   */
  ingestRequestMs: 100,
  /**
   * Payload limits: one fact for both wirings. A REST API buffers up to 10 MB, but a Lambda proxy
   * integration invokes the function synchronously, and Lambda caps a synchronous invocation's
   * request and response at 6 MB each (Lambda docs, "Lambda quotas": invocation payload) — the
   * whole proxy event or result, in which the body is a JSON-escaped string next to headers and
   * context. Bodies are therefore held to 5 MiB, which leaves room for that envelope.
   */
  payload: {
    /** Lambda's synchronous invocation payload quota (request and response alike). */
    lambdaInvokeBytes: 6 * 1024 * 1024,
    /** Largest request body; larger ones get 413 (checked by every handler). */
    maxRequestBodyBytes: 5 * 1024 * 1024,
    /** Largest response body; GET /events shortens its page to stay under it. */
    maxResponseBodyBytes: 5 * 1024 * 1024,
  },
  cors: {
    allowOrigins: ["*"],
    allowMethods: ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
    allowHeaders: ["Content-Type", "X-Api-Key", "Authorization"],
    maxAgeSeconds: 600,
  },
} as const;

/**
 * The CORS headers every response carries (preflight, handler results, and the gateway's own
 * errors): a browser drops a response without them, including the error it should show.
 */
export function corsHeaders(): Record<string, string> {
  return {
    "access-control-allow-origin": api.cors.allowOrigins.join(","),
    "access-control-allow-methods": api.cors.allowMethods.join(","),
    "access-control-allow-headers": api.cors.allowHeaders.join(","),
    "access-control-max-age": String(api.cors.maxAgeSeconds),
  };
}

export interface EventSourceMappingSpec {
  /** Stable id: construct id in CDK, consumer group suffix locally. */
  readonly id: string;
  readonly function: FunctionName;
  readonly topic: keyof typeof topics;
  /** Kafka consumer group id (the ESM's `AmazonManagedKafkaEventSourceConfig.ConsumerGroupId`). */
  readonly consumerGroup: string;
  /** Maximum records per invocation. */
  readonly batchSize: number;
  /**
   * How long to gather records before invoking, in seconds (MSK: whole seconds, 0..300).
   * @default absent: AWS's default for Kafka sources, 500 ms (`KAFKA_DEFAULT_BATCHING_WINDOW_MS`),
   * which no whole number expresses (and a mapping cannot return to once one is set).
   */
  readonly maximumBatchingWindowSeconds?: number;
  readonly startingPosition: "TRIM_HORIZON" | "LATEST";
  /** Retries after the first failed attempt before the batch goes to `onFailure`. */
  readonly maximumRetryAttempts: number;
  /** Where a batch goes when retries are exhausted (a Kafka topic: `kafka://<topic>` in AWS). */
  readonly onFailure: keyof typeof topics;
  /** The handler may answer `{batchItemFailures}` to retry from the first failed record. */
  readonly reportBatchItemFailures: boolean;
}

/**
 * A mapping's batching window overridden per deployment: the aggregator's window is the dial
 * between freshness and write cost (docs/performance.md). Whole seconds, 0..300, as MSK takes them.
 */
export function batchingWindowOverride(value: unknown, mappingId: string): number | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const seconds = Number(value);
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > 300)
    throw new Error(
      `batching window of ${mappingId} must be a whole number of seconds in 0..300, not '${String(value)}'`,
    );
  return seconds;
}

/** The environment variable that overrides a mapping's batching window locally. */
export const batchingWindowEnvVar = (mappingId: string) =>
  `TIDEMARK_BATCHING_WINDOW_${mappingId.replace(/[a-z](?=[A-Z])/g, (c) => `${c}_`).toUpperCase()}`;

/** The batching window of a Kafka event-source mapping that sets none (AWS documents 500 ms). */
export const KAFKA_DEFAULT_BATCHING_WINDOW_MS = 500;

/** MSK event-source mappings (emulated locally by `local/event-source-mapping.ts`). */
export const eventSourceMappings = [
  {
    // No batching window set: AWS's default for Kafka sources, 500 ms. A record waits at most
    // that long for its batch, so freshness p99 can stay near a second; a window of 1 s put it
    // at 1.3-1.6 s under load. Slices are cheap enough since they extend their windows' open
    // deltas (session 11): 0.84 write units per 100 events at the bench's load, against 0.59
    // with 1 s, and about 13 on a quiet stream (600 events/s) against 7.6. A window of 0 hands
    // the aggregator whatever one fetch returned: slices of a few records, each paying a fence
    // claim and confirmation. docs/performance.md has the figures of 0, 0.5 and 1 s; the window
    // is a per-deployment dial (`-c aggregateBatchingWindowSeconds=1`).
    id: "AggregateEvents",
    function: "aggregate",
    topic: "eventsRaw",
    consumerGroup: "tidemark-aggregate",
    batchSize: 5_000,
    startingPosition: "TRIM_HORIZON",
    maximumRetryAttempts: 5,
    onFailure: "deadLetter",
    reportBatchItemFailures: true,
  },
  {
    id: "ArchiveEvents",
    function: "archive",
    topic: "eventsRaw",
    consumerGroup: "tidemark-archive",
    batchSize: 10_000,
    // Archive objects are rewritten per batch (an object per event type, hour and offset block):
    // larger batches mean fewer PUTs per event. GET /events has no freshness target.
    maximumBatchingWindowSeconds: 5,
    startingPosition: "TRIM_HORIZON",
    maximumRetryAttempts: 5,
    onFailure: "deadLetter",
    reportBatchItemFailures: true,
  },
  {
    // Live stats to WebSocket clients. LATEST: a client wants what changes from now on, not a
    // replay of the topic's day. Posting failures are handled per connection, so a batch fails
    // only when DynamoDB does; one retry, then it goes the dead-letter way like any failed batch.
    id: "BroadcastStats",
    function: "broadcast",
    topic: "analyticsStats",
    consumerGroup: "tidemark-broadcast",
    batchSize: 500,
    maximumBatchingWindowSeconds: 0,
    startingPosition: "LATEST",
    maximumRetryAttempts: 1,
    onFailure: "deadLetter",
    reportBatchItemFailures: true,
  },
] as const satisfies readonly EventSourceMappingSpec[];

/** Environment variable that carries a topic's name to a function. */
export function topicEnvVar(topic: keyof typeof topics): string {
  return `TOPIC_${topic.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

export interface TableStreamMappingSpec {
  /** Stable id: construct id in CDK. */
  readonly id: string;
  readonly function: FunctionName;
  readonly table: keyof typeof tables;
  readonly batchSize: number;
  readonly maximumBatchingWindowSeconds: number;
  readonly startingPosition: "TRIM_HORIZON" | "LATEST";
  readonly maximumRetryAttempts: number;
  readonly reportBatchItemFailures: boolean;
  /**
   * Where a batch goes when retries are exhausted, never skipped silently. Locally this Kafka
   * topic receives AWS's invocation record plus the records; in AWS (where a DynamoDB-stream
   * mapping cannot target Kafka) an SQS queue receives the invocation record.
   */
  readonly onFailure: keyof typeof topics;
}

/**
 * DynamoDB Streams event-source mappings (emulated locally by `local/table-stream-mapping.ts`).
 * The stats publisher rides the aggregates table's stream: an update reaches `analytics.stats`
 * within about a second of the write, with no polling schedule (EventBridge's finest is 1 min).
 */
export const tableStreamMappings = [
  {
    id: "PublishStats",
    function: "publish",
    table: "aggregates",
    batchSize: 500,
    // A second of stream records per invocation: a window changed by several partitions' deltas
    // is read and published once, not once per delta.
    maximumBatchingWindowSeconds: 1,
    startingPosition: "LATEST",
    maximumRetryAttempts: 5,
    reportBatchItemFailures: true,
    onFailure: "deadLetter",
  },
] as const satisfies readonly TableStreamMappingSpec[];

/**
 * MSK Serverless's client quotas (MSK docs, "MSK Serverless quota"): at most 3,000 client
 * connections per cluster and 100 new connections a second. Every Kafka client of the stack
 * counts; all but ingest are bounded by their reservations or mappings, and ingest, the one that
 * scales with API traffic, gets what the budget leaves (kafkaConnectionBudget).
 */
export const kafkaConnectionQuota = {
  /** Client connections per cluster. */
  connections: 3_000,
  /** New connections per second per cluster. */
  newConnectionsPerSecond: 100,
  /**
   * Share of the quota kept out of the budget: the topics custom resource at deploy time, the
   * mappings' Kafka on-failure producers, connections reopened after failures, other clients.
   */
  headroom: 0.2,
  /**
   * Stream shards budgeted for the stats publisher, which reserves nothing (one environment per
   * shard): a table with more partitions eats into the headroom, 5 connections a shard.
   */
  streamShards: 8,
} as const;

/**
 * Connections one environment's Kafka client (kafkajs) holds at most: the bootstrap broker it
 * connected through (kept beside the brokers the metadata names), the controller (the idempotent
 * producer's InitProducerId, an admin's metadata), and one per partition leader of the topics it
 * produces to or reads offsets of (kafkajs opens one connection per broker for all but fetches,
 * which these clients never send). 0 for a function without a client of its own.
 */
export function kafkaConnectionsPerEnvironment(spec: FunctionSpec): number {
  const used = [...spec.produces, ...(spec.observes ?? [])];
  if (used.length === 0) return 0;
  return 2 + used.reduce((n, topic) => n + topics[topic].partitions, 0);
}

export interface KafkaConnectionBudget {
  /** The quota less its headroom. */
  readonly budget: number;
  /** The MSK mappings' pollers at their maximum count. */
  readonly mappings: number;
  /** Every function's own clients but ingest's, at their reservations (publish: per budgeted shard). */
  readonly functions: number;
  readonly perIngestEnvironment: number;
  /** What the budget leaves ingest: its default reserved concurrency. */
  readonly ingestEnvironments: number;
  /** What the quota itself (no headroom) leaves ingest: the most `-c ingestReservedConcurrency` may ask. */
  readonly maxIngestEnvironments: number;
}

/**
 * The connection budget of a deployment whose MSK mappings scale to `maximumPollers` pollers each.
 * A poller is a consumer: bootstrap and group coordinator, and at most one connection per
 * partition leader of its topic. A function with a Kafka client must be bounded (a reservation,
 * or a table stream's shards) to be counted: an unbounded one would void the budget.
 */
export function kafkaConnectionBudget(maximumPollers: number): KafkaConnectionBudget {
  const mappings = eventSourceMappings.reduce(
    (n, m) => n + maximumPollers * (2 + topics[m.topic].partitions),
    0,
  );
  let others = 0;
  for (const [name, spec] of Object.entries(functions) as [FunctionName, FunctionSpec][]) {
    const perEnvironment = kafkaConnectionsPerEnvironment(spec);
    if (name === "ingest" || perEnvironment === 0) continue;
    const environments =
      spec.reservedConcurrency ??
      (tableStreamMappings.some((m) => m.function === name) ? kafkaConnectionQuota.streamShards : undefined);
    if (environments === undefined)
      throw new Error(`${name} opens Kafka connections but has no reservedConcurrency to budget them by`);
    others += environments * perEnvironment;
  }
  const budget = Math.floor(kafkaConnectionQuota.connections * (1 - kafkaConnectionQuota.headroom));
  const perIngestEnvironment = kafkaConnectionsPerEnvironment(functions.ingest);
  const left = (total: number) => Math.floor((total - mappings - others) / perIngestEnvironment);
  const ingestEnvironments = left(budget);
  if (ingestEnvironments < 1)
    throw new Error(
      `the Kafka connection budget leaves ingest nothing (${mappings} + ${others} of ${budget})`,
    );
  return {
    budget,
    mappings,
    functions: others,
    perIngestEnvironment,
    ingestEnvironments,
    maxIngestEnvironments: left(kafkaConnectionQuota.connections),
  };
}

/** `-c ingestReservedConcurrency=N`: a whole number from 1 to what the connection quota allows. */
export function ingestConcurrencyOverride(value: unknown, budget: KafkaConnectionBudget): number | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > budget.maxIngestEnvironments)
    throw new Error(
      `ingest reserved concurrency must be a whole number in 1..${budget.maxIngestEnvironments} (MSK Serverless: ${kafkaConnectionQuota.connections} connections, ${budget.perIngestEnvironment} an ingest environment), not '${String(value)}'`,
    );
  return n;
}

/**
 * POST /events' own API Gateway throttle in AWS, from ingest's reserved environments: a burst no
 * larger than them, and the rate they serve at `api.ingestRequestMs` a request (Little's law),
 * both within the stage's. Beyond it the gateway answers 429 before Lambda would throttle.
 */
export function ingestThrottle(environments: number): { rateLimit: number; burstLimit: number } {
  return {
    rateLimit: Math.min(api.throttleRateLimit, Math.floor((environments * 1000) / api.ingestRequestMs)),
    burstLimit: Math.min(api.throttleBurstLimit, environments),
  };
}

import { z } from "zod";
import { CURSOR_PATTERN } from "../archive/events-sql.ts";
import { type ApiError, badRequest } from "./errors.ts";
import {
  EVENT_TYPE_PATTERN,
  isCalendarDate,
  NOT_A_CALENDAR_DATE,
  READABLE_PROPERTY_NAME,
  StoredEventSchema,
} from "./event.ts";

/** Schemas of every API surface besides the event itself; the OpenAPI document is built from them. */

export const IngestAcceptedSchema = z
  .object({ accepted: z.number().int(), event_ids: z.array(z.string()) })
  .meta({ id: "IngestAccepted" });

const MINUTE = 60_000;
const DURATION = /^(\d+)(m|h|d)$/;
const UNIT_MS = { m: MINUTE, h: 60 * MINUTE, d: 24 * 60 * MINUTE } as const;

/** `5m`, `1h`, `24h`, `7d` → milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (!m?.[1] || !m[2]) return undefined;
  const n = Number(m[1]);
  return n > 0 ? n * UNIT_MS[m[2] as keyof typeof UNIT_MS] : undefined;
}

/** An instant in a query: ISO-8601 or epoch milliseconds. */
function instant(text: string): number | undefined {
  if (/^\d+$/.test(text)) return Number(text);
  // Date.parse would roll a day the month lacks into the next month.
  if (!isCalendarDate(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * What `instant` reads: epoch milliseconds (at most 15 digits: a JS date ends at 8.64e15 ms),
 * an ISO-8601 date, or a date-time with a zone.
 */
const INSTANT_PATTERN =
  /^(\d{1,15}|\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?)$/;
const instantParam = z
  .string()
  .regex(INSTANT_PATTERN, "must be epoch milliseconds, an ISO-8601 date, or a date-time with a zone")
  .refine(isCalendarDate, NOT_A_CALENDAR_DATE)
  .describe("ISO-8601 date or date-time with zone, or epoch milliseconds");

export const EventsQuerySchema = z
  .object({
    user_id: z.string().min(1).max(128).optional(),
    event_type: z.string().regex(EVENT_TYPE_PATTERN).optional(),
    from: instantParam.optional().describe("inclusive; default: `to` minus 1 hour"),
    to: instantParam.optional().describe("exclusive; default: now"),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z.string().regex(CURSOR_PATTERN).optional().describe("next_cursor of the previous page"),
  })
  .meta({ id: "EventsQuery" });

export const EventsPageSchema = z
  .object({ events: z.array(StoredEventSchema), next_cursor: z.string().nullable() })
  .meta({ id: "EventsPage" });

export const MAX_EVENTS_RANGE_MS = 7 * 24 * 60 * MINUTE;

export interface EventsQuery {
  readonly user_id?: string;
  readonly event_type?: string;
  readonly from: number;
  readonly to: number;
  readonly limit: number;
  readonly cursor?: string;
}

type Parsed<T> = { ok: true; value: T } | { ok: false; error: ApiError };

function zodProblem(error: z.ZodError): ApiError {
  const problems = error.issues.map((i) => ({ field: i.path.join("."), message: i.message }));
  return badRequest(
    problems.map((p) => `${p.field}: ${p.message}`).join("; "),
    { problems },
    "invalid_query",
  );
}

export function parseEventsQuery(
  query: Record<string, string | undefined>,
  now: number,
): Parsed<EventsQuery> {
  const parsed = EventsQuerySchema.safeParse(query);
  if (!parsed.success) return { ok: false, error: zodProblem(parsed.error) };
  const q = parsed.data;
  if (q.user_id === undefined && q.event_type === undefined) {
    return { ok: false, error: badRequest("give user_id, event_type or both", undefined, "invalid_query") };
  }
  const to = q.to === undefined ? now : instant(q.to);
  if (to === undefined)
    return {
      ok: false,
      error: badRequest("to: not an ISO-8601 date or epoch ms", undefined, "invalid_query"),
    };
  const from = q.from === undefined ? to - 60 * MINUTE : instant(q.from);
  if (from === undefined) {
    return {
      ok: false,
      error: badRequest("from: not an ISO-8601 date or epoch ms", undefined, "invalid_query"),
    };
  }
  if (from >= to)
    return { ok: false, error: badRequest("from must be before to", undefined, "invalid_query") };
  if (to - from > MAX_EVENTS_RANGE_MS) {
    return { ok: false, error: badRequest("the range is limited to 7 days", undefined, "range_too_large") };
  }
  return {
    ok: true,
    value: {
      ...(q.user_id !== undefined ? { user_id: q.user_id } : {}),
      ...(q.event_type !== undefined ? { event_type: q.event_type } : {}),
      from,
      to,
      limit: q.limit,
      ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
    },
  };
}

export const STATS_INTERVALS = ["1m", "5m", "15m", "30m", "1h", "6h", "24h"] as const;

export const StatsQuerySchema = z
  .object({
    event_type: z.string().regex(EVENT_TYPE_PATTERN).optional(),
    interval: z
      .enum(STATS_INTERVALS)
      .default("5m")
      .describe("event_type reads: the last interval (default 5m); not with from/to"),
    field: z
      .string()
      .regex(
        new RegExp(`^properties\\.${READABLE_PROPERTY_NAME.source.slice(1)}`),
        "must be properties.<name>",
      )
      .optional()
      .describe("numeric field for sum/avg/min/max"),
    group_by: z.string().max(256).optional().describe("comma-separated dotted paths"),
    rule_id: z.string().min(1).max(128).optional(),
    from: instantParam
      .optional()
      .describe(
        "start of the range [from, to) (default: to − 1 h); ISO-8601 date or date-time with zone, or epoch ms",
      ),
    to: instantParam.optional().describe("end of the range, exclusive (default: now)"),
  })
  .meta({ id: "StatsQuery" });

export type StatsQuery =
  | {
      readonly kind: "event_type";
      readonly event_type: string;
      readonly interval: string;
      readonly intervalMs: number;
      /** Both present: the range `[from, to)` is read instead of the last interval. */
      readonly from?: number;
      readonly to?: number;
      readonly field?: string;
      readonly group_by: string[];
    }
  | {
      readonly kind: "rule";
      readonly rule_id: string;
      /** Both absent: the rule's current window (its size and slide). */
      readonly from?: number;
      readonly to?: number;
    };

export const MAX_RULE_RANGE_MS = 7 * 24 * 60 * MINUTE;

/** Parameters that choose what an event type read shows; a rule has its own (its event type, field, group_by). */
const EVENT_TYPE_ONLY = ["event_type", "interval", "field", "group_by"] as const;

export function parseStatsQuery(query: Record<string, string | undefined>, now: number): Parsed<StatsQuery> {
  const parsed = StatsQuerySchema.safeParse(query);
  if (!parsed.success) return { ok: false, error: zodProblem(parsed.error) };
  const q = parsed.data;
  // A parameter that does not apply is refused rather than ignored: ignored, it answered another
  // question than the one asked (the last 5 minutes for from/to, the rule's own window for interval).
  const range = (): Parsed<{ from: number; to: number }> => {
    const to = q.to === undefined ? now : instant(q.to);
    const from = q.from === undefined ? (to ?? now) - 60 * MINUTE : instant(q.from);
    if (to === undefined || from === undefined || from >= to) {
      return {
        ok: false,
        error: badRequest("from/to: ISO-8601 or epoch ms, from before to", undefined, "invalid_query"),
      };
    }
    if (to - from > MAX_RULE_RANGE_MS) {
      return { ok: false, error: badRequest("the range is limited to 7 days", undefined, "range_too_large") };
    }
    return { ok: true, value: { from, to } };
  };
  const ranged = q.from !== undefined || q.to !== undefined;
  if (q.rule_id !== undefined) {
    const foreign = EVENT_TYPE_ONLY.filter((name) => query[name] !== undefined);
    if (foreign.length > 0) {
      return {
        ok: false,
        error: badRequest(
          `${foreign.join(", ")}: not with rule_id (a rule reads its own event type, field and group_by; ` +
            "give from/to for a range, or nothing for the rule's own window)",
          undefined,
          "invalid_query",
        ),
      };
    }
    if (!ranged) return { ok: true, value: { kind: "rule", rule_id: q.rule_id } };
    const r = range();
    return r.ok ? { ok: true, value: { kind: "rule", rule_id: q.rule_id, ...r.value } } : r;
  }
  if (q.event_type === undefined) {
    return {
      ok: false,
      error: badRequest("event_type is required (or rule_id with from/to)", undefined, "invalid_query"),
    };
  }
  if (ranged && query.interval !== undefined) {
    return {
      ok: false,
      error: badRequest(
        "interval: give interval (the last minutes) or from/to (a range), not both",
        undefined,
        "invalid_query",
      ),
    };
  }
  const r = ranged ? range() : undefined;
  if (r && !r.ok) return r;
  return {
    ok: true,
    value: {
      kind: "event_type",
      event_type: q.event_type,
      interval: q.interval,
      intervalMs: parseDuration(q.interval) ?? 5 * MINUTE,
      ...(r ? r.value : {}),
      ...(q.field !== undefined ? { field: q.field } : {}),
      group_by: q.group_by
        ? q.group_by
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean)
        : [],
    },
  };
}

const SUM_OUT_OF_RANGE = z
  .boolean()
  .optional()
  .describe("the sum is beyond a double's range (±1.8e308), which JSON cannot write: sum is left out");

const SeriesPointSchema = z.object({
  minute: z.string().describe("start of the window"),
  seconds: z.number().optional().describe("size of the window: 60, or 3600 for an hourly roll-up"),
  count: z.number(),
  sum: z.number().optional(),
  sum_out_of_range: SUM_OUT_OF_RANGE,
  min: z.number().optional(),
  max: z.number().optional(),
  unique_users: z.number().optional(),
});

export const StatsResponseSchema = z
  .object({
    event_type: z.string().optional(),
    rule_id: z.string().optional(),
    interval: z.string().optional(),
    from: z.string(),
    to: z.string(),
    count: z.number(),
    unique_users: z.number().optional(),
    sum: z.number().optional(),
    sum_out_of_range: SUM_OUT_OF_RANGE,
    avg: z.number().optional(),
    min: z.number().optional(),
    max: z.number().optional(),
    rate_per_second: z.number(),
    series: z.array(SeriesPointSchema),
    groups: z
      .array(
        z.object({
          group: z.record(z.string(), z.string()),
          count: z.number(),
          sum: z.number().optional(),
          sum_out_of_range: SUM_OUT_OF_RANGE,
          avg: z.number().optional(),
          min: z.number().optional(),
          max: z.number().optional(),
          unique: z.number().optional(),
        }),
      )
      .optional(),
    late_events: z.number().optional(),
    granularity: z
      .enum(["m", "h", "mixed"])
      .optional()
      .describe("windows read: minutes, hourly roll-ups, or whole hours inside and minutes at the edges"),
    notice: z.string().optional().describe("why the range was widened to whole hours"),
    window: z
      .object({
        type: z.enum(["tumbling", "sliding", "session"]),
        size: z.string().optional(),
        slide: z.string().optional(),
        gap: z.string().optional(),
      })
      .optional()
      .describe("by rule: the rule's window (applied when no range is given)"),
    values: z.number().optional(),
    field_partial: z
      .boolean()
      .optional()
      .describe("the field's statistics may be partial (too many numeric properties)"),
    gap_seconds: z.number().optional().describe("session rules: the inactivity gap"),
    sessions: z.number().optional(),
    open_sessions: z.number().optional(),
    closed_sessions: z.number().optional(),
    avg_duration_seconds: z.number().optional(),
    avg_events_per_session: z.number().optional(),
  })
  .meta({ id: "Stats" });

/**
 * A rule's window size, slide or gap: 1 minute to 7 days (what GET /stats reads at most), in
 * the schema itself so that the OpenAPI document states the bound. An unbounded size made a
 * stats read enumerate windows for seconds.
 */
const RULE_DURATION = /^(([1-9]\d{0,3}|100[0-7]\d|10080)m|([1-9]\d?|1[0-5]\d|16[0-8])h|[1-7]d)$/;
/**
 * A session gap: 1 minute to 2 hours (MAX_SESSION_GAP_MS of lib/stream/read-plan.ts); reading a
 * session rule looks one gap (plus 2 hours) back, minute by minute.
 */
const SESSION_GAP = /^(([1-9]\d?|1[01]\d|120)m|[12]h)$/;
const ruleDuration = z.string().regex(RULE_DURATION, "must be 1m..10080m, 1h..168h or 1d..7d");

export const RuleSchema = z
  .object({
    rule_id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/),
    name: z.string().max(256).optional(),
    event_type: z.union([z.string().regex(EVENT_TYPE_PATTERN), z.literal("*")]),
    metric: z.enum(["count", "sum", "avg", "min", "max", "unique"]),
    field: z
      .string()
      .max(128)
      .optional()
      .describe("an event field (user_id, session_id, page_url, …) or properties.<path> / metadata.<path>"),
    group_by: z
      .array(z.string().max(128))
      .max(3)
      .default([])
      .describe("paths as for field: event fields, or properties.<path> / metadata.<path>"),
    window: z.object({
      type: z.enum(["tumbling", "sliding", "session"]),
      size: ruleDuration.optional(),
      slide: ruleDuration.optional(),
      gap: z
        .string()
        .regex(SESSION_GAP, "must be 1m..120m or 1h..2h")
        .optional()
        .describe("session inactivity gap, at most 2 h (a read looks back one gap plus 2 h)"),
    }),
    active: z.boolean().default(true),
  })
  .meta({ id: "Rule" });

/**
 * Rules a table may hold. Every active rule is folded for every event of its type and writes
 * delta items of its own for every window of every batch, so the active ones multiply the
 * aggregator's work and DynamoDB writes (the built-ins add 7); GET /rules returns every stored
 * rule in one response, which must stay far below Lambda's 6 MB quota (a rule is at most about
 * 1 KB). Checked before the write: concurrent creates may pass the bound by their number.
 */
export const MAX_ACTIVE_RULES = 100;
export const MAX_RULES = 1_000;

/** A rule as the API returns it: read-only fields besides the input's. */
export const RuleViewSchema = RuleSchema.extend({
  version: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe("bumped when an update changes what is stored (event type, metric, field, group_by)"),
  rollup: z.boolean().optional().describe("false: keeps one-minute windows only (no hourly roll-ups)"),
  time_basis: z.enum(["event", "arrival"]).optional().describe("places events by event time or arrival time"),
  detailed: z
    .boolean()
    .optional()
    .describe("built-in rules: also keeps unique users and per-numeric-property stats per group"),
  reads: z.string().optional().describe("a view: reads the windows of this other rule, stores nothing"),
}).meta({ id: "RuleView" });

export const HealthSchema = z
  .object({
    status: z.enum(["ok", "degraded"]),
    services: z.record(z.string(), z.object({ ok: z.boolean(), detail: z.string() })),
    dead_letter_records: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("records in the dead-letter topic (within its retention); absent when Kafka does not answer"),
  })
  .meta({ id: "Health" });

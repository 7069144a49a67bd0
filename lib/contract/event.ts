import { z } from "zod";
import { type ApiError, badRequest } from "./errors.ts";
import { uuidv7 } from "./uuidv7.ts";

/**
 * The event contract (brief section 2). The zod schemas here are the source of truth: the
 * ingest handler validates with them and the OpenAPI document is generated from them.
 */
export const EVENT_TYPE_PATTERN = /^[a-z][a-z0-9_.:-]{0,63}$/;
export const MAX_EVENT_BYTES = 32 * 1024;
export const MAX_EVENTS_PER_REQUEST = 10_000;
export const MAX_FUTURE_SKEW_MS = 5 * 60_000;
/**
 * A property name GET /stats can ask about (`field=properties.<name>`): what `events_by_type`
 * keeps statistics of. Other names are accepted in events and archived, but no reader could ask
 * for them, and a name may be as long as an event (32 KiB): tracked, 64 of them made one group
 * of one item megabytes, past DynamoDB's 400 KB item limit.
 */
export const READABLE_PROPERTY_NAME = /^[A-Za-z0-9_]{1,64}$/;

/**
 * Levels of objects and arrays a `properties` or `metadata` value may nest, itself the first.
 * Deeper values were accepted until serializing the event overflowed the stack (a 500, some
 * 5,000 levels down in 32 KiB), and nothing that reads events needs more.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * A UTF-16 surrogate outside a pair (JSON lets `"\ud800"` through, and JavaScript strings hold it).
 * With the `u` flag a pair is one code point, so only lone surrogates match. Such a string is no
 * Unicode text: it cannot be written as UTF-8, and the archive's NDJSON holding its escape made
 * DuckDB refuse the whole object ("no low surrogate in string"), so GET /events failed for every
 * event of that hour.
 */
const LONE_SURROGATE = /\p{Cs}/u;
export const isUnicodeText = (s: string): boolean => !LONE_SURROGATE.test(s);
const NOT_UNICODE =
  "is not valid Unicode text: it holds a lone UTF-16 surrogate (\\ud800–\\udfff not in a pair)";
const unicodeText = () => z.string().refine(isUnicodeText, NOT_UNICODE);

/** A problem of a JSON value of an event: where (relative to the value), and what. */
export interface JsonProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** Named at the field itself: a path 65 levels long would say less than the message. */
const TOO_DEEP: JsonProblem = {
  path: [],
  message: `nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep (at most ${MAX_JSON_DEPTH})`,
};

const NOT_UNICODE_VALUE: JsonProblem = { path: [], message: NOT_UNICODE };
/** Named at the object that holds it: the name itself cannot be shown as text. */
const NOT_UNICODE_NAME: JsonProblem = {
  path: [],
  message: "has a property name that is not valid Unicode text: it holds a lone UTF-16 surrogate",
};

/**
 * A number JSON.parse read as ±Infinity (`1e999`, a 400-digit integer): JSON cannot write it, so
 * the event would be published and archived with `null` in its place (the value lost).
 */
const BEYOND_RANGE: JsonProblem = {
  path: [],
  message: "is a number beyond the range of a double (at most ±1.7976931348623157e308)",
};

/**
 * What is wrong with a JSON value of an event, if anything: nesting deeper than MAX_JSON_DEPTH,
 * a number beyond a double's range (BEYOND_RANGE), or (with `text`) a string or property name
 * that is not Unicode text. Recursion stops below
 * MAX_JSON_DEPTH, so the check itself cannot overflow the stack. `text` false skips strings, for
 * a body that cannot hold a lone surrogate (`mayHoldLoneSurrogates`).
 */
export function jsonValueProblem(value: unknown, text = true, depth = 1): JsonProblem | undefined {
  if (typeof value === "string") return text && LONE_SURROGATE.test(value) ? NOT_UNICODE_VALUE : undefined;
  if (typeof value === "number") return Number.isFinite(value) ? undefined : BEYOND_RANGE;
  if (value === null || typeof value !== "object") return undefined;
  if (depth > MAX_JSON_DEPTH) return TOO_DEEP;
  // Finite numbers, booleans and null are skipped inline: the ingest hot path runs this on every event.
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === null || (typeof item !== "object" && typeof item !== "string" && !isInfinite(item)))
        continue;
      const problem = jsonValueProblem(item, text, depth + 1);
      if (problem) return problem === TOO_DEEP ? problem : { ...problem, path: [i, ...problem.path] };
    }
    return undefined;
  }
  for (const key in value) {
    if (text && LONE_SURROGATE.test(key)) return NOT_UNICODE_NAME;
    const item = (value as Record<string, unknown>)[key];
    if (item === null || (typeof item !== "object" && typeof item !== "string" && !isInfinite(item)))
      continue;
    const problem = jsonValueProblem(item, text, depth + 1);
    if (problem) return problem === TOO_DEEP ? problem : { ...problem, path: [key, ...problem.path] };
  }
  return undefined;
}

/** JSON.parse gives no NaN: a number that is not finite is ±Infinity. */
const isInfinite = (v: unknown): boolean => typeof v === "number" && !Number.isFinite(v);

/**
 * Whether a request body can hold a string with a lone surrogate once parsed: only through a
 * `\u` escape, or one already in the text (a one-byte string, any ASCII body, holds none: V8
 * answers that without a scan). Bodies that cannot skip checking every string of every event.
 */
export const mayHoldLoneSurrogates = (body: string): boolean =>
  body.includes("\\u") || LONE_SURROGATE.test(body);

const jsonObject = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  const problem = jsonValueProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: problem.message, path: [...problem.path] });
});

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;

const LEADING_DATE = /^(\d{4})-(\d{2})-(\d{2})/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;
/**
 * Whether the date a text starts with (`YYYY-MM-DD`, proleptic Gregorian) exists; true for a text
 * without one (epoch digits). `Date.parse` takes day 01–31 of any month and rolls it over:
 * 2026-02-29 was read as 2026-03-01 and 2026-04-31 as 2026-05-01.
 */
export function isCalendarDate(text: string): boolean {
  const m = LEADING_DATE.exec(text);
  if (!m) return true;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= (month === 2 && leap ? 29 : (DAYS_IN_MONTH[month - 1] as number));
}
export const NOT_A_CALENDAR_DATE =
  "is not a calendar date: its month has no such day (e.g. 2026-02-29, 2026-04-31)";

export const EventInputSchema = z
  .strictObject({
    event_id: unicodeText().min(1).max(128).optional().describe("dedupe key; generated (UUIDv7) when absent"),
    user_id: unicodeText().min(1).max(128),
    session_id: unicodeText().max(128).optional(),
    event_type: z
      .string()
      .regex(EVENT_TYPE_PATTERN, "must match ^[a-z][a-z0-9_.:-]{0,63}$ (e.g. page_view, purchase_completed)"),
    timestamp: z
      .union([
        z
          .string()
          .regex(ISO_WITH_ZONE, "must be ISO-8601 with a zone (e.g. 2026-11-22T10:00:00Z)")
          .refine(isCalendarDate, NOT_A_CALENDAR_DATE),
        z.number().positive().finite(),
      ])
      .describe("ISO-8601 with zone, or UNIX epoch seconds or milliseconds"),
    page_url: unicodeText().max(2048).optional(),
    properties: jsonObject.optional().describe("business data: amount, currency, product_id, country…"),
    metadata: jsonObject.optional().describe("context: ip_address, user_agent, platform…"),
  })
  .meta({ id: "EventInput" });
export type EventInput = z.infer<typeof EventInputSchema>;

/** An accepted event as published to Kafka, archived and returned by GET /events. */
export const StoredEventSchema = z
  .object({
    event_id: z.string(),
    user_id: z.string(),
    session_id: z.string().optional(),
    event_type: z.string(),
    timestamp: z.number().int().describe("event time, epoch milliseconds"),
    page_url: z.string().optional(),
    properties: jsonObject.optional(),
    metadata: jsonObject.optional(),
    received_at: z.number().int().describe("when the API accepted it, epoch milliseconds"),
  })
  .meta({ id: "Event" });
export type AcceptedEvent = z.infer<typeof StoredEventSchema>;

export const IngestBodySchema = z
  .union([EventInputSchema, z.array(EventInputSchema), z.strictObject({ events: z.array(EventInputSchema) })])
  .meta({ id: "IngestBody" });

/** Epoch seconds below this are read as seconds (1e11 ms is 1973; 1e11 s is year 5138). */
const SECONDS_THRESHOLD = 1e11;

export function normalizeTimestamp(value: string | number): number | undefined {
  if (typeof value === "number") return Math.round(value < SECONDS_THRESHOLD ? value * 1000 : value);
  if (!isCalendarDate(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

export interface Problem {
  readonly index: number;
  readonly field: string;
  readonly message: string;
}

export interface ParseOptions {
  readonly now: number;
  readonly retentionMs: number;
  readonly maxEvents?: number;
  readonly generateId?: (now: number) => string;
}

export type ParseResult =
  | { readonly ok: true; readonly events: AcceptedEvent[]; readonly serialized: string[] }
  | { readonly ok: false; readonly error: ApiError };

const ALLOWED_FIELDS = Object.keys(EventInputSchema.shape).join(", ");
const INPUT_FIELDS: ReadonlySet<string> = new Set(Object.keys(EventInputSchema.shape));

const optionalString = (value: unknown, min: number, max: number) =>
  value === undefined || (typeof value === "string" && value.length >= min && value.length <= max);
/** What `z.record(z.string(), z.unknown())` passes through as it is (its copy would drop `__proto__`). */
const plainRecord = (value: unknown) =>
  value === undefined ||
  (value !== null &&
    typeof value === "object" &&
    Object.getPrototypeOf(value) === Object.prototype &&
    !Object.hasOwn(value, "__proto__"));

/**
 * The ingest hot path: an event that `EventInputSchema` certainly accepts, checked by hand, or
 * undefined when in any doubt (then the schema decides, and words the problems). At 100,000
 * events a second zod's parse and its copies of every event were about a sixth of the ingest
 * function's CPU. `test/unit/event-fast-path.test.ts` checks, over generated inputs near every
 * rule's edge, that whatever this accepts the schema accepts with the same data. `text` false skips
 * the check of every string for lone surrogates, for a body that cannot hold one
 * (`mayHoldLoneSurrogates`).
 */
export function acceptedByHand(item: unknown, text = true): EventInput | undefined {
  // A plain object (not an array, not null), every key a field of the contract (so no `__proto__`).
  if (item === null || typeof item !== "object" || Object.getPrototypeOf(item) !== Object.prototype)
    return undefined;
  for (const key in item) if (!INPUT_FIELDS.has(key)) return undefined;
  const e = item as Record<string, unknown>;
  const { user_id, event_type, timestamp } = e;
  if (typeof user_id !== "string" || user_id.length < 1 || user_id.length > 128) return undefined;
  if (typeof event_type !== "string" || !EVENT_TYPE_PATTERN.test(event_type)) return undefined;
  if (typeof timestamp === "number") {
    if (!(timestamp > 0 && Number.isFinite(timestamp))) return undefined;
  } else if (typeof timestamp !== "string" || !ISO_WITH_ZONE.test(timestamp) || !isCalendarDate(timestamp))
    return undefined;
  if (!optionalString(e.event_id, 1, 128) || !optionalString(e.session_id, 0, 128)) return undefined;
  if (!optionalString(e.page_url, 0, 2048)) return undefined;
  if (!plainRecord(e.properties) || !plainRecord(e.metadata)) return undefined;
  if (jsonValueProblem(e.properties, text) || jsonValueProblem(e.metadata, text)) return undefined;
  if (
    text &&
    [user_id, e.event_id, e.session_id, e.page_url].some((s) => typeof s === "string" && !isUnicodeText(s))
  )
    return undefined;
  return e as EventInput;
}

function problemsOf(index: number, input: unknown, error: z.ZodError): Problem[] {
  return error.issues.flatMap((issue): Problem[] => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({
        index,
        field: [...issue.path, key].join("."),
        message: `unknown field '${key}' (allowed: ${ALLOWED_FIELDS})`,
      }));
    }
    const field = issue.path.join(".") || "(event)";
    // zod's final issues carry no input: whether the field was sent is read from the event itself.
    const sent = valueAt(input, issue.path) !== undefined;
    const message = !sent
      ? "is required"
      : issue.code === "invalid_union" && field === "timestamp"
        ? "must be ISO-8601 with a zone (e.g. 2026-11-22T10:00:00Z) or UNIX epoch seconds or milliseconds"
        : issue.message;
    return [{ index, field, message }];
  });
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== "object" || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/**
 * Parses a POST /events body: one event, an array, or `{"events": [...]}`. All or nothing:
 * either every event is valid and comes back normalized (timestamp in epoch ms, `event_id`
 * filled in, `received_at` added, serialized once for Kafka), or the error lists every problem
 * by index and field.
 */
export function parseIngestBody(rawBody: string | undefined, options: ParseOptions): ParseResult {
  if (rawBody === undefined || rawBody.trim() === "") {
    return {
      ok: false,
      error: badRequest(
        "request body is empty; send an event, an array or {events: [...]}",
        undefined,
        "empty_body",
      ),
    };
  }
  let body: unknown;
  try {
    body = JSON.parse(rawBody);
  } catch (error) {
    return {
      ok: false,
      error: badRequest(
        `request body is not valid JSON: ${(error as Error).message}`,
        undefined,
        "invalid_json",
      ),
    };
  }
  let items: unknown[];
  if (Array.isArray(body)) items = body;
  else if (isEnvelope(body)) items = body.events;
  else if (body !== null && typeof body === "object") items = [body];
  else
    return {
      ok: false,
      error: badRequest(
        "body must be an event object, an array of events or {events: [...]}",
        undefined,
        "invalid_body",
      ),
    };

  const max = options.maxEvents ?? MAX_EVENTS_PER_REQUEST;
  if (items.length === 0)
    return { ok: false, error: badRequest("no events in the request", undefined, "no_events") };
  if (items.length > max) {
    return {
      ok: false,
      error: badRequest(
        `too many events: ${items.length} in one request, at most ${max}`,
        { count: items.length, max },
        "too_many_events",
      ),
    };
  }

  const { now, retentionMs } = options;
  const generate = options.generateId ?? uuidv7;
  const oldest = now - retentionMs;
  const newest = now + MAX_FUTURE_SKEW_MS;
  const problems: Problem[] = [];
  const events: AcceptedEvent[] = [];
  const serialized: string[] = [];
  const text = mayHoldLoneSurrogates(rawBody);
  for (let index = 0; index < items.length; index++) {
    let input = acceptedByHand(items[index], text);
    if (input === undefined) {
      const parsed = EventInputSchema.safeParse(items[index]);
      if (!parsed.success) {
        problems.push(...problemsOf(index, items[index], parsed.error));
        continue;
      }
      input = parsed.data;
    }
    const timestamp = normalizeTimestamp(input.timestamp);
    if (timestamp === undefined) {
      problems.push({ index, field: "timestamp", message: "is not a valid date" });
      continue;
    }
    if (timestamp > newest) {
      problems.push({ index, field: "timestamp", message: "is more than 5 minutes in the future" });
      continue;
    }
    if (timestamp < oldest) {
      problems.push({
        index,
        field: "timestamp",
        message: `is older than the retention horizon (${Math.round(retentionMs / 86_400_000)} days)`,
      });
      continue;
    }
    const event: AcceptedEvent = {
      event_id: input.event_id ?? generate(now),
      user_id: input.user_id,
      ...(input.session_id !== undefined ? { session_id: input.session_id } : {}),
      event_type: input.event_type,
      timestamp,
      ...(input.page_url !== undefined ? { page_url: input.page_url } : {}),
      ...(input.properties !== undefined ? { properties: input.properties } : {}),
      ...(input.metadata !== undefined ? { metadata: input.metadata } : {}),
      received_at: now,
    };
    const json = JSON.stringify(event);
    // A UTF-16 code unit is at most 3 bytes of UTF-8 (a lone surrogate is written as U+FFFD): JSON
    // of at most a third of the limit in length is within it, and its bytes are not counted.
    if (json.length * 3 > MAX_EVENT_BYTES) {
      const bytes = Buffer.byteLength(json);
      if (bytes > MAX_EVENT_BYTES) {
        problems.push({
          index,
          field: "(event)",
          message: `is ${bytes} bytes serialized; at most ${MAX_EVENT_BYTES}`,
        });
        continue;
      }
    }
    events.push(event);
    serialized.push(json);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 1000);
    return {
      ok: false,
      error: badRequest(
        `${problems.length} problem(s) in ${new Set(problems.map((p) => p.index)).size} event(s); nothing was accepted`,
        {
          problems: shown,
          ...(problems.length > shown.length ? { truncated: problems.length - shown.length } : {}),
        },
        "invalid_events",
      ),
    };
  }
  return { ok: true, events, serialized };
}

function isEnvelope(body: unknown): body is { events: unknown[] } {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return false;
  const keys = Object.keys(body);
  return keys.length === 1 && keys[0] === "events" && Array.isArray((body as { events: unknown }).events);
}

/**
 * The last millisecond of year 9999. A `Date` holds more (to 8.64e15 ms, year 275760), but
 * `toISOString` writes later years as `+YYYYYY`, which no `dt=YYYY-MM-DD` archive partition names,
 * and the window of an event at 8.64e15 ends past it (`window_end` of a stats message is formatted).
 */
const MAX_DATE_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const isEpochMs = (v: unknown): v is number =>
  Number.isInteger(v) && (v as number) > 0 && (v as number) <= MAX_DATE_MS;

/**
 * Reads an event back from Kafka or the archive. These were validated at ingest, so this only
 * checks what consumers rely on (cheap: it runs for every record of every batch).
 */
export function parseStoredEvent(
  json: string,
): { ok: true; event: AcceptedEvent } | { ok: false; reason: string } {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    return { ok: false, reason: `not JSON: ${(error as Error).message}` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value))
    return { ok: false, reason: "not an object" };
  const e = value as Record<string, unknown>;
  if (typeof e.event_id !== "string" || e.event_id === "") return { ok: false, reason: "event_id missing" };
  if (typeof e.user_id !== "string" || e.user_id === "") return { ok: false, reason: "user_id missing" };
  if (typeof e.event_type !== "string" || !EVENT_TYPE_PATTERN.test(e.event_type)) {
    return { ok: false, reason: "event_type missing or invalid" };
  }
  // Whole milliseconds of a date, as the API stores them: anything else (a producer other than the
  // API) would fail every batch that holds it where a date is formatted or windowed.
  if (!isEpochMs(e.timestamp))
    return { ok: false, reason: "timestamp missing or not a date in whole epoch milliseconds" };
  if (!isEpochMs(e.received_at))
    return { ok: false, reason: "received_at missing or not a date in whole epoch milliseconds" };
  return { ok: true, event: e as AcceptedEvent };
}

import { z } from "zod";
import { EVENT_TYPE_PATTERN } from "../contract/event.ts";
import type { AggregationRule } from "../stream/rules.ts";

/**
 * The live-stats WebSocket protocol (docs/live-stats.md): what clients send, what they are
 * sent, and which `analytics.stats` messages a subscription matches.
 */
export const LIVE_SCHEMA = "tidemark.live.v1";

const MAX_FILTER_VALUES = 100;

/** `{"action":"subscribe","rule_ids":[…],"event_types":[…]}`; an empty or absent list means "all". */
export const SubscribeMessageSchema = z.strictObject({
  action: z.literal("subscribe"),
  rule_ids: z.array(z.string().min(1).max(128)).max(MAX_FILTER_VALUES).default([]),
  event_types: z
    .array(z.string().regex(EVENT_TYPE_PATTERN, "must be an event type (e.g. page_view)"))
    .max(MAX_FILTER_VALUES)
    .default([]),
});

export interface Subscription {
  readonly rule_ids: readonly string[];
  readonly event_types: readonly string[];
}

export type ParsedSubscribe = { ok: true; value: Subscription } | { ok: false; problems: string[] };

export function parseSubscribe(body: string | null | undefined): ParsedSubscribe {
  let json: unknown;
  try {
    json = JSON.parse(body ?? "");
  } catch {
    return { ok: false, problems: ["the message is not JSON"] };
  }
  const parsed = SubscribeMessageSchema.safeParse(json);
  if (!parsed.success)
    return {
      ok: false,
      problems: parsed.error.issues.map((i) => `${i.path.join(".") || "(message)"}: ${i.message}`),
    };
  return { ok: true, value: { rule_ids: parsed.data.rule_ids, event_types: parsed.data.event_types } };
}

/**
 * The fields of an `analytics.stats` message (docs/stats-topic.md) that routing needs; the rest
 * is forwarded untouched, so a newer publisher's extra fields reach clients.
 */
export const StatsMessageSchema = z.looseObject({
  schema: z.string(),
  window_id: z.string(),
  rule_id: z.string(),
  group: z.string(),
});
export type RoutedStatsMessage = z.infer<typeof StatsMessageSchema>;

/**
 * The event type a message is about: the group of a rule grouped by event type alone (such as
 * `events_by_type`), else the rule's event-type filter; none for rules over all types.
 */
export function messageEventType(
  message: RoutedStatsMessage,
  rule: Pick<AggregationRule, "event_type" | "group_by"> | undefined,
): string | undefined {
  if (!rule) return undefined;
  if (rule.group_by.length === 1 && rule.group_by[0] === "event_type") return message.group;
  return rule.event_type === "*" ? undefined : rule.event_type;
}

/** Both filters must match; an empty filter matches everything. */
export function matchesSubscription(
  subscription: Subscription,
  message: RoutedStatsMessage,
  rule: Pick<AggregationRule, "event_type" | "group_by"> | undefined,
): boolean {
  if (subscription.rule_ids.length > 0 && !subscription.rule_ids.includes(message.rule_id)) return false;
  if (subscription.event_types.length === 0) return true;
  const type = messageEventType(message, rule);
  return type !== undefined && subscription.event_types.includes(type);
}

/** What a client receives: stats messages in batches, and a confirmation of its subscription. */
export type LiveFrame =
  | { schema: typeof LIVE_SCHEMA; type: "stats"; messages: readonly RoutedStatsMessage[] }
  | ({ schema: typeof LIVE_SCHEMA; type: "subscribed"; connection_id: string } & Subscription)
  | { schema: typeof LIVE_SCHEMA; type: "error"; problems: readonly string[] };

import { describe, expect, it } from "vitest";
import { parseIngestBody } from "../../lib/contract/event.ts";
import { type ConnectionNotifier, fanOut, MAX_WEBSOCKET_MESSAGE_BYTES } from "../../lib/live/fan-out.ts";
import type { RoutedStatsMessage } from "../../lib/live/subscriptions.ts";
import { statsMessagesFor } from "../../lib/pipeline/stats-messages.ts";
import { type AggregationRule, groupKey } from "../../lib/stream/rules.ts";
import { MemoryConnectionStore } from "../support/memory-connection-store.ts";

/**
 * API Gateway refuses a PostToConnection whose data is over the WebSocket message payload quota,
 * 128 KB (API Gateway docs, "Amazon API Gateway quotas for configuring and running a WebSocket
 * API": message payload size 128 KB), with PayloadTooLargeException (HTTP 413; API reference,
 * PostToConnection). The local gateway delivered any size, so a too-large stats message passed
 * locally and, in AWS, cost every subscriber the rest of the batch.
 */
const AWS_MESSAGE_PAYLOAD_BYTES = 128 * 1024;

class AwsSizedNotifier implements ConnectionNotifier {
  readonly sent: { id: string; data: string }[] = [];
  async post(id: string, data: string): Promise<"sent" | "gone"> {
    if (Buffer.byteLength(data) > AWS_MESSAGE_PAYLOAD_BYTES)
      throw Object.assign(new Error("Message too long"), {
        name: "PayloadTooLargeException",
        $metadata: { httpStatusCode: 413 },
      });
    this.sent.push({ id, data });
    return "sent";
  }
}

/** A rule over two object-valued properties: its group key is a JSON array of their JSON text. */
const rule: AggregationRule = {
  rule_id: "carts",
  event_type: "cart_updated",
  metric: "count",
  group_by: ["properties.cart", "properties.filters"],
  window: { type: "tumbling", size: "1m" },
  active: true,
};

/** The analytics.stats message of a window of `rule` holding one event accepted by POST /events. */
function messageOfLargestGroup(): RoutedStatsMessage {
  const now = Date.parse("2026-01-01T00:00:30Z");
  // Quotes are escaped at each level: once in the event's JSON, again in the group value (the
  // object's JSON), again in the key (a JSON array), again in the message — twice in the message.
  const quoted = '"'.repeat(7_000);
  const body = JSON.stringify({
    user_id: "u1",
    event_type: "cart_updated",
    timestamp: now,
    properties: { cart: [quoted], filters: [quoted] },
  });
  const parsed = parseIngestBody(body, { now, retentionMs: 86_400_000 });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  const event = parsed.events[0];
  if (!event) throw new Error("no event");
  const key = groupKey(rule, event);
  const [message] = statsMessagesFor(
    { ruleKey: rule.rule_id, granularity: "m", windowStart: now - 30_000 },
    new Map([[key, { c: 1 }]]),
    [key],
    now,
    now,
  );
  if (!message) throw new Error("no message");
  return { ...message };
}

describe("live stats over API Gateway's 128 KB WebSocket message quota", () => {
  it("a valid event and rule make a stats message over the quota", () => {
    const huge = messageOfLargestGroup();
    expect(Buffer.byteLength(JSON.stringify(huge))).toBeGreaterThan(AWS_MESSAGE_PAYLOAD_BYTES);
    expect(MAX_WEBSOCKET_MESSAGE_BYTES).toBe(AWS_MESSAGE_PAYLOAD_BYTES);
  });

  it("leaves out a message no frame can carry, and still sends every other message to every connection", async () => {
    const small = (group: string): RoutedStatsMessage => ({
      schema: "tidemark.stats.v1",
      window_id: `carts#${group}#m#0`,
      rule_id: "carts",
      group,
      count: 1,
    });
    const huge = messageOfLargestGroup();
    const store = new MemoryConnectionStore([
      { connection_id: "a", subscription: { rule_ids: [], event_types: [] } },
      { connection_id: "b", subscription: { rule_ids: ["carts"], event_types: [] } },
    ]);
    const notifier = new AwsSizedNotifier();
    const result = await fanOut([small("before"), huge, small("after")], {
      store,
      notifier,
      ruleFor: (id) => (id === rule.rule_id ? rule : undefined),
    });
    const groups = (id: string) =>
      notifier.sent
        .filter((s) => s.id === id)
        .flatMap((s) =>
          (JSON.parse(s.data) as { messages: RoutedStatsMessage[] }).messages.map((m) => m.group),
        );
    expect(groups("a")).toEqual(["before", "after"]);
    expect(groups("b")).toEqual(["before", "after"]);
    // Not a posting failure: nothing was posted, and the message is counted once per batch.
    expect(result).toMatchObject({ failed: 0, oversize: 1, gone: [] });
    for (const s of notifier.sent)
      expect(Buffer.byteLength(s.data)).toBeLessThanOrEqual(AWS_MESSAGE_PAYLOAD_BYTES);
  });
});

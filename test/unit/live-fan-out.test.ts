import { describe, expect, it } from "vitest";
import { type ConnectionNotifier, fanOut, statsFrames } from "../../lib/live/fan-out.ts";
import {
  matchesSubscription,
  parseSubscribe,
  type RoutedStatsMessage,
} from "../../lib/live/subscriptions.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryConnectionStore } from "../support/memory-connection-store.ts";

const rules = new Map(BUILT_IN_RULES.map((r) => [r.rule_id, r]));
const message = (rule_id: string, group: string): RoutedStatsMessage => ({
  schema: "tidemark.stats.v1",
  window_id: `${rule_id}#m#0#${group}`,
  rule_id,
  group,
  count: 1,
});

class RecordingNotifier implements ConnectionNotifier {
  readonly sent: { id: string; data: string }[] = [];
  constructor(
    private readonly gone: Set<string> = new Set(),
    private readonly failing: Set<string> = new Set(),
  ) {}
  async post(id: string, data: string): Promise<"sent" | "gone"> {
    if (this.failing.has(id)) throw new Error("throttled");
    if (this.gone.has(id)) return "gone";
    this.sent.push({ id, data });
    return "sent";
  }
}

describe("live stats subscriptions", () => {
  it("matches by rule id and by the event type a message is about", () => {
    const byType = message("events_by_type", "page_view");
    const revenue = message("revenue_by_currency", "EUR");
    const users = message("unique_users", "");
    const sub = (rule_ids: string[], event_types: string[]) => ({ rule_ids, event_types });
    const match = (s: ReturnType<typeof sub>, m: RoutedStatsMessage) =>
      matchesSubscription(s, m, rules.get(m.rule_id));
    expect(match(sub([], []), users)).toBe(true);
    expect(match(sub([], ["page_view"]), byType)).toBe(true);
    expect(match(sub([], ["click"]), byType)).toBe(false);
    // revenue_by_currency counts purchase_completed events only: its group is a currency.
    expect(match(sub([], ["purchase_completed"]), revenue)).toBe(true);
    expect(match(sub([], ["page_view"]), users)).toBe(false);
    expect(match(sub(["events_by_type"], ["page_view"]), byType)).toBe(true);
    expect(match(sub(["unique_users"], ["page_view"]), byType)).toBe(false);
  });

  it("parses subscribe messages and names every problem", () => {
    expect(parseSubscribe('{"action":"subscribe"}')).toEqual({
      ok: true,
      value: { rule_ids: [], event_types: [] },
    });
    const bad = parseSubscribe('{"action":"subscribe","event_types":["Bad Type"],"extra":1}');
    expect(bad.ok).toBe(false);
    expect(JSON.stringify(bad)).toContain("event_types.0");
    expect(JSON.stringify(bad)).toContain("extra");
    expect(parseSubscribe("not json")).toEqual({ ok: false, problems: ["the message is not JSON"] });
  });
});

describe("fan-out", () => {
  it("sends each connection what it subscribed to, deletes gone connections, survives failures", async () => {
    const store = new MemoryConnectionStore([
      { connection_id: "all", subscription: { rule_ids: [], event_types: [] } },
      { connection_id: "views", subscription: { rule_ids: [], event_types: ["page_view"] } },
      { connection_id: "gone", subscription: { rule_ids: [], event_types: [] } },
      { connection_id: "flaky", subscription: { rule_ids: [], event_types: [] } },
      { connection_id: "unsubscribed" },
    ]);
    const notifier = new RecordingNotifier(new Set(["gone"]), new Set(["flaky"]));
    const messages = [message("events_by_type", "page_view"), message("events_by_type", "click")];
    const result = await fanOut(messages, { store, notifier, ruleFor: (id) => rules.get(id) });

    expect(result).toEqual({ frames: 2, gone: ["gone"], failed: 1, oversize: 0 });
    expect(store.connections.map((c) => c.connection_id)).toEqual(["all", "views", "flaky", "unsubscribed"]);
    const groups = (id: string) =>
      notifier.sent
        .filter((s) => s.id === id)
        .flatMap((s) =>
          (JSON.parse(s.data) as { messages: RoutedStatsMessage[] }).messages.map((m) => m.group),
        );
    expect(groups("all")).toEqual(["page_view", "click"]);
    expect(groups("views")).toEqual(["page_view"]);
    expect(groups("unsubscribed")).toEqual([]);
  });

  it("splits frames under API Gateway's message size limit, keeping order", () => {
    const messages = Array.from({ length: 50 }, (_, i) =>
      message("events_by_type", `type_${i}`.padEnd(100, "x")),
    );
    const frames = statsFrames(messages, 1_000);
    expect(frames.length).toBeGreaterThan(5);
    for (const f of frames) expect(Buffer.byteLength(f)).toBeLessThanOrEqual(1_000);
    const back = frames.flatMap((f) => (JSON.parse(f) as { messages: RoutedStatsMessage[] }).messages);
    expect(back.map((m) => m.group)).toEqual(messages.map((m) => m.group));
  });
});

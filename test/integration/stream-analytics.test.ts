import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { topics } from "../../lib/topology.ts";
import type { LocalStack } from "../../local/stack.ts";
import { getJson, postJson, startPipeline, waitFor } from "./support.ts";

interface Stats {
  count: number;
  unique_users: number;
  sum?: number;
  avg?: number;
  min?: number;
  max?: number;
  late_events?: number;
  series: { minute: string; count: number }[];
  groups?: { group: Record<string, string>; count: number; sum?: number }[];
}

/** Collects the messages of a topic from now on, through a kafkajs consumer of its own group. */
async function collect(stack: LocalStack, topic: string) {
  const kafka = new Kafka({
    clientId: "stream-test",
    brokers: stack.endpoints.kafkaBrokers,
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({ groupId: `stream-test-${topic}-${Date.now()}` });
  const messages: { key: string; value: Record<string, unknown> }[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      messages.push({
        key: message.key?.toString() ?? "",
        value: JSON.parse(message.value?.toString() ?? "{}"),
      });
    },
  });
  return { messages, stop: () => consumer.disconnect() };
}

describe("stream analytics", () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startPipeline();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("answers count, unique users, sum/avg/min/max of a field, rate and the per-minute series", async () => {
    const type = `metric_${Date.now()}`;
    const now = Date.now();
    const events = [
      { user_id: "ann", event_type: type, timestamp: now, properties: { amount: 10 } },
      { user_id: "ann", event_type: type, timestamp: now, properties: { amount: 30 } },
      { user_id: "bob", event_type: type, timestamp: now, properties: { amount: 20 } },
    ];
    expect((await postJson(`${stack.url}/events`, events)).status).toBe(202);
    const stats = await waitFor(async () => {
      const { json } = await getJson(
        `${stack.url}/stats?event_type=${type}&interval=5m&field=properties.amount`,
      );
      return (json as Stats).count === 3 ? (json as Stats) : undefined;
    });
    expect(stats).toMatchObject({ count: 3, unique_users: 2, sum: 60, avg: 20, min: 10, max: 30 });
    // Every minute window intersecting [now − 5 min, now): five, or six when now is not on a minute.
    expect(stats.series.length).toBeGreaterThanOrEqual(5);
    expect(stats.series.length).toBeLessThanOrEqual(6);
    expect(stats.series.reduce((n, p) => n + p.count, 0)).toBe(3);
  });

  it("counts with a rule created through the API, without a restart", async () => {
    const type = `checkout_${Date.now()}`;
    const ruleId = `revenue_${Date.now()}`;
    const created = await postJson(`${stack.url}/rules`, {
      rule_id: ruleId,
      event_type: type,
      metric: "sum",
      field: "properties.amount",
      group_by: ["properties.country"],
      window: { type: "tumbling", size: "1m" },
    });
    expect(created.status).toBe(201);
    expect((await postJson(`${stack.url}/rules`, { ...(created.json as object) })).status).toBe(409);
    const listed = (await getJson(`${stack.url}/rules`)).json as { rules: { rule_id: string }[] };
    expect(listed.rules.map((r) => r.rule_id)).toContain(ruleId);

    // Rules are re-read every few seconds by the aggregator.
    await new Promise((r) => setTimeout(r, 3_500));
    const now = Date.now();
    await postJson(`${stack.url}/events`, [
      { user_id: "c1", event_type: type, timestamp: now, properties: { amount: 5, country: "FR" } },
      { user_id: "c2", event_type: type, timestamp: now, properties: { amount: 7, country: "FR" } },
      { user_id: "c3", event_type: type, timestamp: now, properties: { amount: 11, country: "DE" } },
    ]);
    const byRule = await waitFor(async () => {
      const { json } = await getJson(
        `${stack.url}/stats?rule_id=${ruleId}&from=${now - 120_000}&to=${now + 60_000}`,
      );
      return (json as Stats).count === 3 ? (json as Stats) : undefined;
    });
    const groups = Object.fromEntries(
      (byRule.groups ?? []).map((g) => [g.group["properties.country"], g.sum]),
    );
    expect(groups).toEqual({ FR: 12, DE: 11 });

    const grouped = (
      await getJson(`${stack.url}/stats?event_type=${type}&interval=5m&group_by=properties.country`)
    ).json as Stats;
    expect(grouped.groups?.map((g) => [g.group["properties.country"], g.count])).toEqual([
      ["FR", 2],
      ["DE", 1],
    ]);

    const disabled = await fetch(`${stack.url}/rules/${ruleId}`, { method: "DELETE" });
    expect(disabled.status).toBe(200);
    expect(((await disabled.json()) as { active: boolean }).active).toBe(false);
    const invalid = await postJson(`${stack.url}/rules`, {
      rule_id: "bad",
      event_type: type,
      metric: "sum",
      window: { type: "tumbling", size: "1m" },
    });
    expect(invalid.status).toBe(400);
    expect(JSON.stringify(invalid.json)).toContain('{"field":"field","message":"required for metric sum"}');
  });

  it("keeps closed windows unchanged for late events, counts them and publishes them to events.late", async () => {
    const late = await collect(stack, topics.eventsLate.name);
    const type = `late_${Date.now()}`;
    const now = Date.now();
    const user = `late-user-${now}`; // one user: one partition, one watermark
    await postJson(`${stack.url}/events`, { user_id: user, event_type: type, timestamp: now });
    await waitFor(async () => {
      const { json } = await getJson(`${stack.url}/stats?event_type=${type}&interval=15m`);
      return (json as Stats).count === 1 ? true : undefined;
    });
    const posted = await postJson(`${stack.url}/events`, {
      user_id: user,
      event_type: type,
      timestamp: now - 4 * 60_000,
    });
    const lateId = (posted.json as { event_ids: string[] }).event_ids[0];
    await waitFor(async () => (late.messages.some((m) => m.value.event_id === lateId) ? true : undefined), {
      timeoutMs: 15_000,
    });
    await late.stop();
    const stats = (await getJson(`${stack.url}/stats?event_type=${type}&interval=15m`)).json as Stats;
    expect(stats.count).toBe(1);
    expect(stats.late_events).toBe(1);
  });

  it("republishes aggregate updates to analytics.stats for kafkajs subscribers", async () => {
    const stats = await collect(stack, topics.analyticsStats.name);
    const type = `published_${Date.now()}`;
    await postJson(`${stack.url}/events`, [
      { user_id: "p1", event_type: type, timestamp: Date.now() },
      { user_id: "p2", event_type: type, timestamp: Date.now() },
    ]);
    const update = await waitFor(
      async () =>
        stats.messages.find(
          (m) => m.value.rule_id === "events_by_type" && m.value.group === type && m.value.count === 2,
        ) ??
        // the two events may land in different partitions: the merged count reaches 2 in a later update
        undefined,
      { timeoutMs: 15_000 },
    );
    await stats.stop();
    expect(update.value).toMatchObject({
      schema: "tidemark.stats.v1",
      granularity: "m",
      count: 2,
      unique_users: 2,
    });
    // docs/stats-topic.md: window_id = <rule_id>#<group>#<granularity>#<window start ms>
    expect(update.key).toMatch(new RegExp(`^events_by_type#${type}#m#\\d{13}$`));
    expect(update.value.window_id).toBe(update.key);
  });
});

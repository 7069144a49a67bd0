import { z } from "zod";
import { createDynamoDb } from "../lib/adapters/dynamodb-client.ts";
import { usageMeter, usageSince } from "../lib/adapters/usage-meter.ts";
import { DynamoWindowStore } from "../lib/adapters/window-store.ts";
import { ClosedWindowCache } from "../lib/pipeline/closed-windows.ts";
import { readStats } from "../lib/pipeline/stats-service.ts";
import { BUILT_IN_RULES } from "../lib/stream/rules.ts";
import { topics } from "../lib/topology.ts";
import { localNames } from "../local/bootstrap.ts";

/**
 * GET /stats' reads of one event type over the last hour, without and with the closed-window
 * cache, against a running `npm start` (same store and `readStats` as the function): read units,
 * Queries and time per request. Run it after some minutes of `npm run generate`:
 *
 *   npx tsx bench/stats-reads.ts [event_type]     (default page_view)
 */
const env = z
  .object({
    DYNAMODB_ENDPOINT: z.url().default("http://127.0.0.1:18000"),
    AWS_REGION: z.string().default("us-east-1"),
  })
  .parse(process.env);
process.env.AWS_ACCESS_KEY_ID ??= "local";
process.env.AWS_SECRET_ACCESS_KEY ??= "local";

const db = createDynamoDb(env);
// The tables `npm start` uses (local/stack.ts: the default name prefix).
const { tables } = localNames("tidemark");
const store = new DynamoWindowStore(db, tables.aggregates, tables.streamState);
const cache = new ClosedWindowCache(() =>
  store.fenceSnapshot(topics.eventsRaw.name, topics.eventsRaw.partitions),
);
const eventType = process.argv[2] ?? "page_view";
// A fence answer is used once it is a second old (ClosedWindowCache's settleMs).
await cache.closedBefore();
await cache.refreshed();
await new Promise((r) => setTimeout(r, 1_100));
const closedBefore = await cache.closedBefore();
console.log(
  `closed before ${Number.isFinite(closedBefore) ? new Date(closedBefore).toISOString() : "nothing (a partition has no fence yet)"}`,
);
for (const [label, withCache] of [
  ["without cache", undefined],
  ["without cache", undefined],
  ["cache, filling", cache],
  ["cache, warm", cache],
  ["cache, warm", cache],
] as const) {
  const before = usageMeter.snapshot();
  const t0 = performance.now();
  const stats = (await readStats(
    store,
    BUILT_IN_RULES,
    { kind: "event_type", event_type: eventType, interval: "1h", intervalMs: 3_600_000, group_by: [] },
    Date.now(),
    withCache,
  )) as { count: number };
  const ms = performance.now() - t0;
  const used = usageSince(usageMeter.snapshot(), before).dynamodb;
  console.log(
    `${label.padEnd(15)} count ${stats.count}, ${used.readUnits} read units, ${used.requests.Query ?? 0} Queries, ${ms.toFixed(1)} ms (${cache.size} windows cached)`,
  );
}
db.destroy();

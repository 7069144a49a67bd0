import { z } from "zod";

/**
 * `npx tsx bench/backfill.ts [url] [minutes] [rules]`: a backfill against a running stack (start
 * it on fresh data: a partition whose watermark passed these events counts them as late). Creates
 * `rules` custom count rules by POST /rules, sends `minutes` events one minute apart, oldest first,
 * in requests of 500, then polls GET /stats until the backfill's whole hours (read from hourly
 * items) and its last 20 minutes count every event, or 3 minutes pass. Prints the progress and the
 * time it took; the stack's log says whether any batch timed out or went to the on-failure
 * destination (docs/stream-processing.md, "Backfills").
 */
const url = process.argv[2] ?? "http://127.0.0.1:3000";
const minutes = Number(process.argv[3] ?? 3_000);
const ruleCount = Number(process.argv[4] ?? 20);
const MINUTE = 60_000;
const HOUR = 3_600_000;
const tag = `backfill${Date.now() % 100_000}`;
const now = Date.now();
const first = Math.floor((now - minutes * MINUTE) / MINUTE) * MINUTE;

const post = async (path: string, body: unknown) => {
  const res = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (res.status >= 300) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
};
const Stats = z.object({ count: z.number(), granularity: z.string() });
const stats = async (query: string) => Stats.parse(await (await fetch(`${url}/stats?${query}`)).json());

for (let i = 0; i < ruleCount; i++)
  await post("/rules", {
    rule_id: `${tag}_r${i}`,
    event_type: `${tag}_view`,
    metric: "count",
    group_by: ["user_id"],
    window: { type: "tumbling", size: "1m" },
  });
// Rules reach the aggregator within its cache's refresh (3 s).
await new Promise((resolve) => setTimeout(resolve, 4_000));
const started = Date.now();
for (let from = 0; from < minutes; from += 500) {
  const events = [];
  for (let i = from; i < Math.min(minutes, from + 500); i++)
    events.push({ user_id: `u${i % 3}`, event_type: `${tag}_view`, timestamp: first + i * MINUTE + 30_000 });
  await post("/events", events);
}
console.log(
  `sent ${minutes} events of type ${tag}_view from ${new Date(first).toISOString()}, ${ruleCount} rules`,
);

const firstHour = Math.ceil(first / HOUR) * HOUR;
const hours = Math.floor((now - firstHour) / HOUR) - 1;
const recent = Math.floor(now / MINUTE) * MINUTE - 20 * MINUTE;
for (;;) {
  const whole = await stats(
    `rule_id=${tag}_r${ruleCount - 1}&from=${firstHour}&to=${firstHour + hours * HOUR}`,
  );
  const last = await stats(`rule_id=${tag}_r0&from=${recent}&to=${recent + 20 * MINUTE}`);
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  console.log(`${seconds} s: whole hours ${whole.count} / ${hours * 60}, last minutes ${last.count} / 20`);
  if (whole.count === hours * 60 && last.count === 20) break;
  if (Date.now() - started > 180_000) {
    console.log("not all counted within 3 minutes");
    process.exit(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 3_000));
}

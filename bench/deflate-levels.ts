import { deflateRawSync } from "node:zlib";
import type { AcceptedEvent } from "../lib/contract/event.ts";
import { foldRecords, type SourcedEvent } from "../lib/stream/fold.ts";
import { encodeGroup } from "../lib/stream/partial.ts";
import { BUILT_IN_RULES } from "../lib/stream/rules.ts";

/**
 * Size and time of one slice's deltas at each deflate level, per rule: does compressing harder
 * pay for the write units a delta costs (docs/performance.md, session 8)? The records are the
 * bench's load (bench/load-worker.ts) as one partition of six sees them, `records` per slice.
 *
 *     npx tsx bench/deflate-levels.ts [records] [--uuid]    # default 5000, ids as the bench's
 *
 * `--uuid`: user ids as random UUIDs instead of the bench's `user-<n>`, as many apps have them.
 */
const perSlice = Number(process.argv.slice(2).find((a) => !a.startsWith("--")) ?? 5000);
const uuids = process.argv.includes("--uuid");
const userIds = new Map<number, string>();
const userId = (n: number) => {
  if (!uuids) return `user-${n}`;
  let id = userIds.get(n);
  if (!id) {
    id = crypto.randomUUID();
    userIds.set(n, id);
  }
  return id;
};
const PARTITIONS = 6;
const TYPES = ["page_view", "add_to_cart", "purchase_completed", "search"];
const now = Date.UTC(2026, 10, 24, 12, 0, 30);
const records: SourcedEvent[] = [];
for (let n = 0; records.length < perSlice; n++) {
  // Keyed by user: the users of one partition.
  if (n % PARTITIONS !== 0) continue;
  const event = {
    event_id: `e${n}`,
    user_id: userId(n % 50_000),
    session_id: `s-${n % 9_000}`,
    event_type: TYPES[n % TYPES.length] ?? "page_view",
    timestamp: now,
    received_at: now,
    page_url: `https://shop.example/p/${n % 500}`,
    properties: {
      amount: (n % 1000) / 10,
      currency: n % 3 === 0 ? "EUR" : "USD",
      product_id: `p-${n % 200}`,
    },
    metadata: { platform: n % 2 === 0 ? "web" : "ios" },
  } as AcceptedEvent;
  records.push({ partition: 0, offset: n, event });
}
const ROUNDS = 20;
for (const [key, delta] of foldRecords(records, BUILT_IN_RULES)) {
  const raw = Buffer.from(`[${[...delta.groups].map(([k, p]) => encodeGroup(k, p)).join(",")}]`);
  const row = [`${key.slice(0, key.lastIndexOf("#"))}: ${delta.groups.size} groups, ${raw.length} B raw`];
  for (const level of [1, 4, 6, 9]) {
    const t0 = performance.now();
    let bytes = 0;
    for (let i = 0; i < ROUNDS; i++) bytes = deflateRawSync(raw, { level }).length;
    row.push(`level ${level} ${bytes} B ${((performance.now() - t0) / ROUNDS).toFixed(2)} ms`);
  }
  console.log(row.join("; "));
}

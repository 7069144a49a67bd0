import { deflateRawSync } from "node:zlib";
import type { AcceptedEvent } from "../lib/contract/event.ts";
import { foldRecords, type SourcedEvent } from "../lib/stream/fold.ts";
import { encodeGroup } from "../lib/stream/partial.ts";
import { BUILT_IN_RULES } from "../lib/stream/rules.ts";
import { benchEvent, userIdsOf } from "./load-events.ts";

/**
 * Size and time of one slice's deltas at each deflate level, per rule: does compressing harder
 * pay for the write units a delta costs (docs/performance.md, session 8)? The records are the
 * bench's load (bench/load-worker.ts) as one partition of six sees them, `records` per slice.
 *
 *     npx tsx bench/deflate-levels.ts [records] [--uuid]    # default 5000, ids as the bench's
 *
 * `--uuid`: a UUID per user instead of the bench's `user-<n>` (bench/load-events.ts).
 */
const perSlice = Number(process.argv.slice(2).find((a) => !a.startsWith("--")) ?? 5000);
const userId = userIdsOf(process.argv.includes("--uuid") ? "uuid" : "short");
const PARTITIONS = 6;
const TYPES = ["page_view", "add_to_cart", "purchase_completed", "search"];
const now = Date.UTC(2026, 10, 24, 12, 0, 30);
const records: SourcedEvent[] = [];
for (let n = 0; records.length < perSlice; n++) {
  // Keyed by user: the users of one partition.
  if (n % PARTITIONS !== 0) continue;
  const event: AcceptedEvent = {
    ...benchEvent(n, userId, TYPES[n % TYPES.length] ?? "page_view", now),
    event_id: `e${n}`,
    received_at: now,
  };
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

import { changedWindowsOf, SeenDeltas } from "../lib/pipeline/publish-stats.ts";
import { foldRecords, GRANULARITY_MS, type SourcedEvent } from "../lib/stream/fold.ts";
import { type Groups, mergeGroups } from "../lib/stream/partial.ts";
import {
  encodePartial,
  mergeRecordGroups,
  mergeRecords,
  type PartialRecord,
} from "../lib/stream/partial-items.ts";
import { BUILT_IN_RULES } from "../lib/stream/rules.ts";
import { benchEvent, userIdsOf } from "./load-events.ts";

/**
 * `npx tsx bench/window-reads.ts [events a slice] [slices]`: the CPU the readers of open windows
 * spend, in this process, with no services: the stats publisher (for each stream image of an
 * extended delta, the groups it changed, then the merged value of just those over every
 * partition's delta) and GET /stats for one event type (one group of `events_by_type` over every
 * partition's delta). The deltas are built as the aggregator writes them: each of 6 partitions
 * extends one delta per rule and minute, slice after slice, with the bench's traffic (50,000
 * users, 4 event types). Pure and deterministic, so two checkouts compare like with like: copy
 * this file into the other one (it uses only what both export) and run them in turn.
 */
const eventsPerSlice = Number(process.argv[2] ?? 1_000);
const slices = Number(process.argv[3] ?? 60);
const partitions = 6;
const minute = Math.floor(Date.now() / GRANULARITY_MS.m) * GRANULARITY_MS.m;
const userId = userIdsOf("short");
const types = ["a", "b", "c", "d"].map((s) => `bench_reads_${s}`);

/** Per partition, per rule: the groups its extended delta holds so far. */
const open = Array.from({ length: partitions }, () => new Map<string, Groups>());
/** The delta records each partition holds now, by rule (the latest image of each). */
const current = Array.from({ length: partitions }, () => new Map<string, PartialRecord[]>());
const seen = new SeenDeltas();
let n = 0;
let publishMicros = 0;
let statsMicros = 0;
let images = 0;
let statsReads = 0;
let groupsPublished = 0;
const cpu = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

for (let slice = 0; slice < slices; slice++) {
  for (let p = 0; p < partitions; p++) {
    const records: SourcedEvent[] = Array.from({ length: eventsPerSlice }, (_, i) => {
      const k = n++;
      const event = benchEvent(k, userId, types[k % types.length] ?? "", minute + (slice % 60) * 1_000);
      return {
        partition: p,
        offset: slice * eventsPerSlice + i,
        event: { ...event, event_id: `e${k}`, received_at: minute + 60_000 },
      };
    });
    const written: Record<string, unknown>[] = [];
    for (const delta of foldRecords(records, BUILT_IN_RULES).values()) {
      if (delta.ref.granularity !== "m") continue;
      const groups = open[p]?.get(delta.ref.ruleKey) ?? new Map();
      mergeGroups(groups, delta.groups);
      open[p]?.set(delta.ref.ruleKey, groups);
      const through = (slice + 1) * eventsPerSlice - 1;
      const put = encodePartial(delta.ref, p, "d", 0, groups, minute, true, through);
      current[p]?.set(delta.ref.ruleKey, put);
      // A fresh copy, as a stream record's image is: nothing of the writer's objects.
      for (const r of put) written.push({ ...r, b: new Uint8Array(r.b) });
    }
    // The stats publisher: one stream batch per slice of a partition.
    const t0 = cpu();
    const windows = changedWindowsOf(written, seen);
    for (const w of windows) {
      const all = current.flatMap((byRule) => byRule.get(w.ref.ruleKey) ?? []);
      groupsPublished += mergeRecordGroups(all, w.ref.windowStart, w.groups).size;
    }
    seen.remember(windows.latest);
    publishMicros += cpu() - t0;
    images += written.length;
    // GET /stats for one event type: the window's events_by_type deltas, one group of them.
    const t1 = cpu();
    const byType = current.flatMap((byRule) => byRule.get("events_by_type") ?? []);
    const merged = mergeRecords(byType, new Set([types[slice % types.length] ?? ""]));
    if ((merged.get(minute)?.size ?? 0) !== 1) throw new Error("GET /stats read found no group");
    statsMicros += cpu() - t1;
    statsReads++;
  }
}
const events = n;
console.log(
  `${events.toLocaleString("en")} events in ${slices} slices of ${eventsPerSlice.toLocaleString("en")} × ${partitions} partitions: ` +
    `stats publisher ${(publishMicros / 1000).toFixed(0)} ms CPU (${(publishMicros / events).toFixed(2)} µs per event; ${images} images, ${groupsPublished.toLocaleString("en")} groups published); ` +
    `GET /stats, one type ${(statsMicros / statsReads / 1000).toFixed(2)} ms CPU a read (${statsReads} reads)`,
);

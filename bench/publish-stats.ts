import { createRequire } from "node:module";
import { marshall } from "@aws-sdk/util-dynamodb";
import type { DynamoDBStreamEvent } from "aws-lambda";
import { unmarshallStreamImage } from "../lib/adapters/stream-image.ts";
import type { WindowStore } from "../lib/adapters/window-store.ts";
import { changedWindowsOf, publishChangedWindows, SeenDeltas } from "../lib/pipeline/publish-stats.ts";
import type { Groups } from "../lib/stream/partial.ts";
import { encodePartial, type PartialRecord } from "../lib/stream/partial-items.ts";
import { tableStreamMappings, topics } from "../lib/topology.ts";
import { toLambdaImage } from "../local/table-stream-mapping.ts";

/**
 * `npx tsx bench/publish-stats.ts [key chars] [records]`: the stats publisher's CPU for one stream
 * batch of deltas whose group keys are long (page URLs of up to 2,000 characters), in this
 * process, with no services. Two batches, each a fresh execution environment's first:
 *
 * - "one POST": 2,000 events with 2,000 distinct URLs in one minute, over the 6 partitions: each
 *   partition's slice writes its delta of ~333 keys (a few chunks);
 * - "worst": the mapping's batch size (500) of delta chunks full of such keys, in as many
 *   windows as the cap needs (each partition's window holds at most
 *   MAX_GROUP_KEY_CHARS_PER_WINDOW characters of keys, ~1,048 of 2,000), every group distinct.
 *
 * Each image is built as the aggregator writes it (`encodePartial`) and delivered as Lambda does
 * (the event's JSON, binary attributes base64). The handler's path runs as in functions/publish.ts:
 * `unmarshallStreamImage`, `changedWindowsOf`, `publishChangedWindows` reading each window's items
 * (fresh copies, as a Query returns them) and handing produce requests to `send`, which encodes
 * them as kafkajs does before the socket (record batch, CRC). Pure and deterministic: copy it into
 * another checkout to compare (it uses only what both export).
 */
const keyChars = Number(process.argv[2] ?? 2_000);
const batchSize = Number(process.argv[3] ?? tableStreamMappings[0].batchSize);
const partitions = 6;
const minute = Date.UTC(2026, 10, 24, 10, 30);

const require = createRequire(import.meta.url);
const { RecordBatch } = require("kafkajs/src/protocol/recordBatch/v0") as {
  RecordBatch: (batch: { records: unknown[] }) => Promise<{ buffer: Buffer }>;
};
const KafkaRecord = require("kafkajs/src/protocol/recordBatch/record/v0") as (record: {
  offsetDelta: number;
  timestampDelta: number;
  key: string | Buffer;
  value: string | Buffer;
}) => unknown;

/** A URL of `keyChars` characters, distinct per `n`, random-looking (tracking parameters). */
function url(n: number): string {
  const head = `https://shop.example/search/${n}?q=`;
  const tail = Buffer.alloc(Math.max(0, keyChars - head.length));
  let x = (n * 2654435761) >>> 0 || 1;
  for (let i = 0; i < tail.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    tail[i] = "abcdefghijklmnopqrstuvwxyz0123456789".charCodeAt(x % 36);
  }
  return head + tail.toString("latin1");
}

/** Delta records of `windows` minutes: each partition's window holds `keysPerPartition` URLs. */
function deltas(windows: number, keysPerPartition: number): PartialRecord[] {
  const out: PartialRecord[] = [];
  for (let w = 0; w < windows; w++)
    for (let p = 0; p < partitions; p++) {
      const groups: Groups = new Map();
      for (let i = 0; i < keysPerPartition; i++)
        groups.set(url((w * partitions + p) * 100_000 + i), { c: 1 + (i % 3) });
      const ref = {
        ruleKey: "page_views_by_url",
        granularity: "m" as const,
        windowStart: minute + w * 60_000,
      };
      out.push(...encodePartial(ref, p, "d", 1_000 * p, groups, minute, true, 1_000 * p + 999));
    }
  return out;
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1_000;
};

async function run(name: string, records: readonly PartialRecord[]) {
  const batch = records.slice(0, batchSize);
  // The event as Lambda's runtime hands it over: parsed from JSON, binary attributes base64.
  const json = JSON.stringify({
    Records: batch.map((r) => ({
      eventName: "MODIFY",
      dynamodb: { NewImage: toLambdaImage(marshall(r, { removeUndefinedValues: true })) },
    })),
  });
  const byWindow = new Map<number, PartialRecord[]>();
  for (const r of records) byWindow.set(r.ws, [...(byWindow.get(r.ws) ?? []), r]);
  const store = {
    read: async (_rule: string, _g: string, starts: readonly number[]) =>
      (byWindow.get(starts[0] ?? 0) ?? []).map((r) => ({ ...r, b: new Uint8Array(r.b) })),
  } as unknown as WindowStore;
  let messages = 0;
  let bytes = 0;
  let sends = 0;
  let encodeMs = 0;
  let peakHeap = 0;
  const t0 = cpuMs();
  const event = JSON.parse(json) as DynamoDBStreamEvent;
  const images = event.Records.map((r) =>
    r.dynamodb?.NewImage ? unmarshallStreamImage(r.dynamodb.NewImage) : undefined,
  );
  const t1 = cpuMs();
  const seen = new SeenDeltas();
  const windows = changedWindowsOf(images, seen);
  const t2 = cpuMs();
  await publishChangedWindows(windows, {
    store,
    maxMessageBytes: topics.analyticsStats.maxMessageBytes,
    now: () => minute + 60_000,
    send: async (request) => {
      const e0 = cpuMs();
      sends++;
      messages += request.length;
      const encoded = await RecordBatch({
        records: request.map((m, i) =>
          KafkaRecord({ offsetDelta: i, timestampDelta: 0, key: m.key, value: m.value }),
        ),
      });
      bytes += encoded.buffer.length;
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
      encodeMs += cpuMs() - e0;
    },
  });
  seen.remember(windows.latest);
  const t3 = cpuMs();
  console.log(
    `${name}: ${batch.length} records (${(json.length / 1e6).toFixed(1)} MB event), ${windows.length} window(s), ` +
      `${messages.toLocaleString("en")} messages, ${(bytes / 1e6).toFixed(0)} MB in ${sends} produce request(s); ` +
      `CPU ${(t3 - t0).toFixed(0)} ms = event ${(t1 - t0).toFixed(0)} + changed groups ${(t2 - t1).toFixed(0)} + ` +
      `read, merge and messages ${(t3 - t2 - encodeMs).toFixed(0)} + Kafka encoding ${encodeMs.toFixed(0)}; ` +
      `heap at sends ≤ ${(peakHeap / 1e6).toFixed(0)} MB`,
  );
}

const perPartition = Math.floor(2_000 / partitions);
await run(`one POST of 2,000 URLs of ${keyChars} chars`, deltas(1, perPartition));
const capKeys = Math.floor((2 * 1024 * 1024) / keyChars);
const perWindow = deltas(1, capKeys).length;
await run(`worst batch, ${keyChars}-char keys`, deltas(Math.ceil(batchSize / perWindow), capKeys));

import { Kafka, logLevel } from "kafkajs";
import { z } from "zod";

/**
 * `analytics.stats` subscriber for the bench, in its own process so that reading every message
 * does not take CPU from the API's event loop. It starts at the topic's end offsets as of its
 * start, records each message's topic timestamp and publish lag (topic timestamp − `written_at`:
 * aggregate delta written → message on the topic), and answers `window` requests from the parent:
 * once the publisher is done (every message on the topic read, none new for `quietMs`), the count
 * and lag percentiles of the messages whose topic timestamp is at or after `from`, and the last
 * one's timestamp. The parent asks after a phase's drain, when only the publisher may still be
 * behind, so the phase's figures include its tail and the next phase's do not.
 */
const Config = z.object({ brokers: z.array(z.string()).min(1), topic: z.string().min(1) });
const config = Config.parse(JSON.parse(process.env.BENCH_STATS ?? "{}"));
const Request = z.object({
  kind: z.literal("window"),
  id: z.number(),
  from: z.number(),
  quietMs: z.number(),
});

const kafka = new Kafka({ clientId: "bench-stats", brokers: config.brokers, logLevel: logLevel.NOTHING });
const admin = kafka.admin();
await admin.connect();
const startOffsets = await admin.fetchTopicOffsets(config.topic);

/** Growable columns: a burst may bring hundreds of thousands of messages. */
let size = 0;
let at = new Float64Array(1 << 16);
let lag = new Float64Array(1 << 16);
let malformed = 0;
let lastArrival = Date.now();
const consumed = new Map<number, number>(); // partition → next offset
const WRITTEN_AT = /"written_at":"([^"]+)"/;

function record(timestamp: number, writtenAt: number) {
  if (size === at.length) {
    const grow = (a: Float64Array) => {
      const b = new Float64Array(a.length * 2);
      b.set(a);
      return b;
    };
    at = grow(at);
    lag = grow(lag);
  }
  at[size] = timestamp;
  lag[size] = timestamp - writtenAt;
  size++;
}

const consumer = kafka.consumer({
  groupId: `bench-stats-${process.pid}-${Date.now()}`,
  maxWaitTimeInMs: 100,
});
await consumer.connect();
await consumer.subscribe({ topic: config.topic });
const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
await consumer.run({
  eachBatch: async ({ batch }) => {
    if (batch.messages.length > 0) lastArrival = Date.now();
    for (const m of batch.messages) {
      // Only two fields are needed; a regex costs far less than parsing every message.
      const writtenAt = Date.parse(WRITTEN_AT.exec(m.value?.toString() ?? "")?.[1] ?? "");
      if (Number.isNaN(writtenAt)) malformed++;
      else record(Number(m.timestamp), writtenAt);
    }
    consumed.set(batch.partition, Number(batch.lastOffset()) + 1);
  },
});
for (const p of startOffsets)
  consumer.seek({ topic: config.topic, partition: p.partition, offset: p.offset });
await joined;

/** Waits until every message on the topic has been read and none came for `quietMs` (at most 120 s). */
async function quiet(quietMs: number) {
  const start = new Map(startOffsets.map((p) => [p.partition, Number(p.offset)]));
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const ends = await admin.fetchTopicOffsets(config.topic);
    const behind = ends.some(
      (p) => Number(p.high) > (consumed.get(p.partition) ?? start.get(p.partition) ?? 0),
    );
    if (!behind && Date.now() - lastArrival >= quietMs) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

const pct = (xs: Float64Array, p: number) =>
  xs.length === 0 ? Number.NaN : (xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] as number);

process.on("message", async (raw: unknown) => {
  const req = Request.safeParse(raw);
  if (!req.success) return;
  const complete = await quiet(req.data.quietMs);
  const lags: number[] = [];
  let last = Number.NaN;
  for (let i = 0; i < size; i++) {
    const t = at[i] as number;
    if (t < req.data.from) continue;
    lags.push(lag[i] as number);
    if (!(t <= last)) last = t;
  }
  const sorted = Float64Array.from(lags).sort();
  process.send?.({
    kind: "window",
    id: req.data.id,
    messages: sorted.length,
    lagP50: pct(sorted, 50),
    lagP99: pct(sorted, 99),
    lagMax: sorted.length ? (sorted[sorted.length - 1] as number) : Number.NaN,
    lastAt: last,
    malformed,
    complete,
  });
});
process.on("disconnect", () => {
  void consumer
    .disconnect()
    .then(() => admin.disconnect())
    .finally(() => process.exit(0));
});
process.send?.({ kind: "ready" });

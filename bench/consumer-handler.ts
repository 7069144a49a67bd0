import type { MSKEvent } from "aws-lambda";
import type { KafkaMessage } from "kafkajs";
import { partitionOfKey } from "../lib/adapters/kafka-partitioner.ts";
import { usageMeter } from "../lib/adapters/usage-meter.ts";
import { parseIngestBody } from "../lib/contract/event.ts";
import { topics } from "../lib/topology.ts";
import { mskEvent } from "../local/event-source-mapping.ts";
import { benchEvent, userIdsOf } from "./load-events.ts";
import { withOwnServices } from "./own-services.ts";

/**
 * `npx tsx bench/consumer-handler.ts <archive|aggregate> [seconds] [records a batch]`: one
 * events.raw consumer's own CPU per event, without the mapping, the worker process or the other
 * consumers. Its handler is invoked in this process, one batch at a time as one execution
 * environment is, with MSK events of `records a batch` records of one partition (default: the
 * archive 10,000, its batch size; the aggregator 2,000, what a 500 ms window gathers per partition
 * at 25,000 events/s), the partitions in turn, against the local services started here on a data
 * directory of their own (removed after). Records are the API's own serialization of the bench's
 * events (4 event types, 50,000 users), timestamped as they are sent. Stop `npm start` first: the
 * services use its ports. Prints events/s and the handler's CPU µs per event (this process only;
 * the S3 and DynamoDB servers' CPU is theirs); with `--cpu-prof` it shows where that CPU goes.
 */
const fn = process.argv[2];
if (fn !== "archive" && fn !== "aggregate")
  throw new Error("usage: consumer-handler.ts <archive|aggregate> …");
const seconds = Number(process.argv[3] ?? 10);
const batchSize = Number(process.argv[4] ?? (fn === "archive" ? 10_000 : 2_000));
await withOwnServices(`bench-${fn}`, async () => {
  const { handler } = (await import(`../functions/${fn}.ts`)) as {
    handler: (event: MSKEvent) => Promise<unknown>;
  };

  const userId = userIdsOf("short");
  const types = ["a", "b", "c", "d"].map((s) => `bench_${fn}_${s}`);
  const partitions = topics.eventsRaw.partitions;
  const nextOffset = new Array<number>(partitions).fill(0);
  let n = 0;
  /** The next batch of one partition, as the mapping hands it over: offsets in order, values base64. */
  const nextEvent = (partition: number): MSKEvent => {
    const now = Date.now();
    const messages: KafkaMessage[] = [];
    while (messages.length < batchSize) {
      const chunk = Array.from({ length: 1_000 }, () => {
        const i = n++;
        return benchEvent(i, userId, types[i % types.length] ?? "", now);
      }).filter((e) => partitionOfKey(e.user_id, partitions) === partition);
      const parsed = parseIngestBody(JSON.stringify(chunk), { now, retentionMs: 7 * 86_400_000 });
      if (!parsed.ok) throw new Error(parsed.error.message);
      parsed.events.forEach((e, i) => {
        if (messages.length >= batchSize) return;
        messages.push({
          offset: String(nextOffset[partition]),
          timestamp: String(e.received_at),
          key: Buffer.from(e.user_id),
          value: Buffer.from(parsed.serialized[i] ?? ""),
          headers: {},
          attributes: 0,
        });
        nextOffset[partition] = (nextOffset[partition] ?? 0) + 1;
      });
    }
    return mskEvent(topics.eventsRaw.name, partition, messages);
  };

  // Warm-up: module init, connections, JIT.
  for (let p = 0; p < partitions; p++) await handler(nextEvent(p));
  const usage0 = usageMeter.snapshot();
  let invocations = 0;
  let events = 0;
  let cpuMicros = 0;
  let handlerMs = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  for (let p = 0; performance.now() < deadline; p = (p + 1) % partitions) {
    const event = nextEvent(p);
    const cpu0 = process.cpuUsage();
    const h0 = performance.now();
    await handler(event);
    handlerMs += performance.now() - h0;
    const cpu = process.cpuUsage(cpu0);
    cpuMicros += cpu.user + cpu.system;
    events += batchSize;
    invocations++;
  }
  const requests = usageMeter.snapshot().dynamodb.requests;
  const per = Object.entries(requests)
    .map(([op, n]) => `${op} ${((n - (usage0.dynamodb.requests[op] ?? 0)) / invocations).toFixed(2)}`)
    .join(", ");
  console.log(`DynamoDB requests per invocation (${invocations}): ${per}`);
  console.log(
    `${fn} handler, ${batchSize.toLocaleString("en")} records a batch: ${Math.round(events / (handlerMs / 1000)).toLocaleString("en")} events/s in the handler; CPU ${(cpuMicros / events).toFixed(2)} µs per event (${events.toLocaleString("en")} events)`,
  );
});

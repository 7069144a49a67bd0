import { createRequire } from "node:module";

/**
 * `npx tsx bench/kafka-encode.ts`: kafkajs's record-batch encoding, µs per record, for 1,000-record
 * batches of a bench-sized event (what the API's producer does per event before the socket).
 * Run it with and without patches/kafkajs+2.2.4.patch (`npx patch-package --reverse` removes it,
 * `npx patch-package` puts it back) to see what the patch saves.
 */
const require = createRequire(import.meta.url);
const { RecordBatch } = require("kafkajs/src/protocol/recordBatch/v0") as {
  RecordBatch: (batch: { records: unknown[] }) => Promise<unknown>;
};
const Record = require("kafkajs/src/protocol/recordBatch/record/v0") as (record: {
  offsetDelta: number;
  timestampDelta: number;
  key: string;
  value: Buffer;
}) => unknown;

const value = Buffer.from(
  JSON.stringify({
    event_id: "01a20e5f-c949-7926-b1e3-0ec2548148ff",
    user_id: "user-11280",
    session_id: "s-2280",
    event_type: "bench_x_p1_a",
    timestamp: 1795535577390,
    page_url: "https://shop.example/p/280",
    properties: { amount: 28, currency: "USD", product_id: "p-80" },
    metadata: { platform: "web" },
    received_at: 1795535577390,
  }),
);
for (let round = 0; round < 6; round++) {
  const t0 = process.hrtime.bigint();
  for (let b = 0; b < 100; b++) {
    const records = Array.from({ length: 1000 }, (_, i) =>
      Record({ offsetDelta: i, timestampDelta: 0, key: `user-${i}`, value }),
    );
    await RecordBatch({ records });
  }
  const ns = Number(process.hrtime.bigint() - t0);
  console.log(`round ${round + 1}: ${(ns / 100_000 / 1000).toFixed(2)} µs per record`);
}

import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { benchEvent, userIdsOf } from "./load-events.ts";
import { withOwnServices } from "./own-services.ts";

/**
 * `npx tsx bench/ingest-handler.ts [seconds] [concurrency] [events a request]`: the ingest
 * function's own CPU per event, without HTTP or the API Gateway emulation. Its handler is invoked
 * in this process with API Gateway events of 1,000 events (or `events a request`), `concurrency`
 * at a time, against a Kafka broker of its own: the local services, started here on a data
 * directory of their own that is removed after (DynamoDB and S3 start too, idle). Stop `npm start`
 * first: they use its ports. Prints events/s and this process's CPU µs per event; with
 * `--cpu-prof` it shows where that CPU goes (scripts/cpu-profile-top.ts).
 */
const seconds = Number(process.argv[2] ?? 10);
const concurrency = Number(process.argv[3] ?? 8);
const batch = Number(process.argv[4] ?? 1000);
await withOwnServices("bench-ingest", async () => {
  const { handler } = await import("../functions/ingest.ts");
  const userId = userIdsOf("short");
  const bodies = Array.from({ length: 16 }, (_, b) =>
    JSON.stringify(
      Array.from({ length: batch }, (_, i) => benchEvent(b * batch + i, userId, "bench_ingest", Date.now())),
    ),
  );
  const context = {
    functionName: "ingest",
    awsRequestId: "bench",
    getRemainingTimeInMillis: () => 30_000,
  } as unknown as Context;
  const invoke = (body: string) =>
    handler(
      {
        body,
        isBase64Encoded: false,
        headers: {},
        httpMethod: "POST",
        path: "/events",
      } as unknown as APIGatewayProxyEvent,
      context,
    );
  for (let i = 0; i < 20; i++) await invoke(bodies[i % bodies.length] ?? "");
  let events = 0;
  let n = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const res = await invoke(bodies[n++ % bodies.length] ?? "");
        if (res.statusCode !== 202) throw new Error(`status ${res.statusCode}: ${res.body.slice(0, 200)}`);
        events += batch;
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    `ingest handler: ${Math.round(events / wall).toLocaleString("en")} events/s; CPU ${((cpu.user + cpu.system) / events).toFixed(2)} µs per event (${((cpu.user + cpu.system) / 1e6 / wall).toFixed(2)} cores)`,
  );
});

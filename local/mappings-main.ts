import type { MSKEvent } from "aws-lambda";
import { Kafka, logLevel } from "kafkajs";
import { eventSourceMappings, topics } from "../lib/topology.ts";
import { LocalEventSourceMapping } from "./event-source-mapping.ts";
import { localFunction } from "./lambda-runtime.ts";

/**
 * The event-source mappings in a process of their own (started by `local/stack.ts`), as in AWS
 * where the pollers and the consumer functions do not share a CPU with the API. The function
 * environment comes from the parent; the process ends when its parent goes away.
 */
const brokers = (process.env.KAFKA_BROKERS ?? "").split(",").filter(Boolean);
const kafka = new Kafka({ clientId: "tidemark-esm", brokers, logLevel: logLevel.NOTHING });
const log = (line: string) => process.send?.({ kind: "log", line });
const mappings: LocalEventSourceMapping[] = [];

async function stop(): Promise<void> {
  await Promise.all(mappings.map((m) => m.stop()));
  process.exit(0);
}
process.on("disconnect", () => void stop());
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => undefined); // the parent decides when we stop

for (const spec of eventSourceMappings) {
  const fn = localFunction(spec.function);
  const mapping = new LocalEventSourceMapping({
    spec,
    kafka,
    topic: topics[spec.topic].name,
    onFailureTopic: topics[spec.onFailure].name,
    functionName: `tidemark-${spec.function}`,
    invoke: (event: MSKEvent) => fn.invoke(event),
    log,
  });
  await mapping.start();
  mappings.push(mapping);
}
process.send?.({ kind: "ready" });
setInterval(() => {
  process.send?.({
    kind: "stats",
    stats: Object.fromEntries(eventSourceMappings.map((s, i) => [s.id, mappings[i]?.stats])),
  });
}, 1000).unref();

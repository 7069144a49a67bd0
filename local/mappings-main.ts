import { usageMeter } from "../lib/adapters/usage-meter.ts";
import { type RunningMappings, startMappings } from "./mappings.ts";
import type { MappingsProcessReport } from "./stack.ts";

/**
 * The event-source mappings in a process of their own (forked by `local/stack.ts`), as in AWS
 * where the pollers and the consumer functions do not share a CPU with the API. The function
 * environment comes from the parent; the process ends when its parent goes away. It reports its
 * AWS usage meter and RSS to the parent every second and when asked, so `stack.usage()` and the
 * bench see the consumers' DynamoDB units and S3 requests, and their memory.
 */
const log = (line: string) => process.send?.({ kind: "log", line });
let running: RunningMappings | undefined;

const report = (id?: number) => {
  const message: MappingsProcessReport = {
    kind: "usage",
    ...(id !== undefined ? { id } : {}),
    usage: usageMeter.snapshot(),
    rss: process.memoryUsage().rss,
  };
  if (process.connected) process.send?.(message);
};

async function stop(): Promise<void> {
  await running?.stop();
  process.exit(0);
}
process.on("disconnect", () => void stop());
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => undefined); // the parent decides when we stop
process.on("message", (m: { kind?: unknown; id?: unknown }) => {
  if (m.kind === "usage?") report(typeof m.id === "number" ? m.id : undefined);
});
setInterval(() => report(), 1_000).unref();

running = await startMappings(log);
process.send?.({ kind: "ready" });

import { usageMeter } from "../lib/adapters/usage-meter.ts";
import { type FunctionName, functions } from "../lib/topology.ts";
import { type RunningMappings, startMappings } from "./mappings.ts";
import type { MappingsProcessReport } from "./stack.ts";

/**
 * The event-source mappings of one function (argv) in a process of their own (forked by `local/stack.ts`), as in AWS
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

// The functions whose mappings this process runs (`local/stack.ts` starts one process per
// consumer function); none named: all of them.
const only = process.argv.slice(2).filter((name): name is FunctionName => Object.hasOwn(functions, name));
if (only.length < process.argv.length - 2)
  throw new Error(`unknown function in ${process.argv.slice(2).join(" ")}`);
running = await startMappings(log, only.length > 0 ? new Set(only) : undefined);
process.send?.({ kind: "ready" });

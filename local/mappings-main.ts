import { type RunningMappings, startMappings } from "./mappings.ts";

/**
 * The event-source mappings in a process of their own (forked by `local/stack.ts`), as in AWS
 * where the pollers and the consumer functions do not share a CPU with the API. The function
 * environment comes from the parent; the process ends when its parent goes away.
 */
const log = (line: string) => process.send?.({ kind: "log", line });
let running: RunningMappings | undefined;

async function stop(): Promise<void> {
  await running?.stop();
  process.exit(0);
}
process.on("disconnect", () => void stop());
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => undefined); // the parent decides when we stop

running = await startMappings(log);
process.send?.({ kind: "ready" });

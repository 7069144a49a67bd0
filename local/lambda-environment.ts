import { parentPort, workerData } from "node:worker_threads";
import { z } from "zod";
import { usageMeter } from "../lib/adapters/usage-meter.ts";
import { type FunctionName, functions } from "../lib/topology.ts";
import { lambdaContext, loadHandler } from "./lambda-runtime.ts";

/**
 * One Lambda execution environment of a function, in a worker thread of its own (started by
 * `environmentPool` in lambda-runtime.ts): it loads the handler module once (the cold start) and
 * runs one invocation at a time, as Lambda does. Module state (SDK clients, caches, the usage
 * meter) belongs to the environment, not to the process.
 */
const InitSchema = z.object({
  name: z
    .string()
    .refine((n): n is FunctionName => Object.hasOwn(functions, n), "not a function of the topology"),
  root: z.string(),
  entry: z.string().optional(),
});
const InvokeSchema = z.object({ id: z.number(), event: z.unknown(), deadline: z.number() });

const port = parentPort;
if (!port) throw new Error("lambda-environment.ts runs in a worker thread");
const { name, root, entry } = InitSchema.parse(workerData);
const handler = await loadHandler(name, root, entry);

port.on("message", async (message: unknown) => {
  const { id, event, deadline } = InvokeSchema.parse(message);
  try {
    const result = await handler(event, lambdaContext(name, deadline));
    port.postMessage({ id, ok: true, result, usage: usageMeter.snapshot() });
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    port.postMessage({
      id,
      ok: false,
      error: { name: e.name, message: e.message, stack: e.stack },
      usage: usageMeter.snapshot(),
    });
  }
});
port.postMessage({ ready: true });

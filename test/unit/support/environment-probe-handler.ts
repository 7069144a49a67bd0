import { threadId } from "node:worker_threads";

/** A handler for lambda-runtime tests: waits `ms`, then says which environment ran it and when. */
let invocations = 0;
export async function handler(event: { ms: number }) {
  const started = Date.now();
  invocations++;
  await new Promise((resolve) => setTimeout(resolve, event.ms));
  return { threadId, started, ended: Date.now(), invocations };
}

import { readdirSync } from "node:fs";
import { setPriority } from "node:os";

/**
 * CPU priority of local processes. In AWS every function runs on CPU of its own; on one machine
 * they all share it, and under load the consumers that are off the freshness path (the archive,
 * the stats publisher, the WebSocket broadcaster and the S3 server behind the archive) would take
 * it from those on it (ingest, the aggregator, DynamoDB, Kafka, GET /stats). Lowering their
 * priority keeps every process running at the same throughput when the machine has CPU to spare,
 * and decides who waits when it has not. `TIDEMARK_BACKGROUND_NICE` sets the niceness of the
 * light background work (default 10; 0 turns it all off); heavy background work (the archive and
 * its S3 server, which must drain a load's backlog within seconds) gets half of it. Measured in
 * docs/performance.md (session 5): all at 10 left the archive 13.6 s behind after a 60 s load.
 */
export function backgroundNiceness(weight: "light" | "heavy"): number {
  const raw = process.env.TIDEMARK_BACKGROUND_NICE ?? "10";
  const nice = Number(raw);
  if (!Number.isInteger(nice) || nice < 0 || nice > 19)
    throw new Error(`TIDEMARK_BACKGROUND_NICE must be a whole number from 0 to 19, not '${raw}'`);
  return weight === "light" ? nice : Math.ceil(nice / 2);
}

/**
 * Sets the niceness of a running process, every thread of it: on Linux niceness is per thread,
 * and a JVM or Node process has started its threads by the time it is ready (threads started
 * later inherit it from the thread that starts them). Returns false when the system refused.
 */
export function deprioritize(pid: number, niceness: number): boolean {
  if (niceness === 0) return true;
  let threads: number[];
  try {
    threads = readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    threads = [pid]; // not Linux: the process's priority
  }
  try {
    for (const tid of threads) setPriority(tid, niceness);
    return true;
  } catch {
    return false;
  }
}

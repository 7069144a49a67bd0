import { performance } from "node:perf_hooks";
import { startLocalStack } from "./stack.ts";

/** `npm start`: the whole pipeline on localhost until Ctrl-C. */
const began = performance.now();
const log = (line: string) => console.log(line);
const port = Number(process.env.PORT ?? 3000);
const webSocketPort = process.env.WS_PORT ? Number(process.env.WS_PORT) : undefined;

const stack = await startLocalStack({ port, log, ...(webSocketPort !== undefined ? { webSocketPort } : {}) });
const seconds = ((performance.now() - began) / 1000).toFixed(1);
// With a key configured, both APIs want it (the WebSocket in ?key=); the key itself is not printed.
const keyed = process.env.TIDEMARK_API_KEY !== undefined && process.env.TIDEMARK_API_KEY !== "";
console.log(`
Tidemark is running (started in ${seconds} s)
  API        ${stack.url}   (try: curl ${stack.url}/health)
  Dashboard  ${stack.url}/dashboard${keyed ? "#key=$TIDEMARK_API_KEY" : ""}
  Live stats ${stack.liveUrl}${keyed ? "?key=$TIDEMARK_API_KEY" : ""}   (send {"action":"subscribe","rule_ids":[],"event_types":[]})
  Kafka      ${stack.endpoints.kafkaBrokers.join(",")}
  DynamoDB   ${stack.endpoints.dynamodbEndpoint}
  S3         ${stack.endpoints.s3Endpoint}
Press Ctrl-C to stop.`);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping…`);
  await stack.stop();
  console.log("stopped");
  process.exit(0);
}
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));

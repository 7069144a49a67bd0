import { performance } from "node:perf_hooks";
import { startServices } from "./index.ts";

/** `npx tsx local/services/cli.ts [--memory]`: the services alone, until Ctrl-C (for debugging). */
const began = performance.now();
const services = await startServices({ log: (line) => console.log(line) });
console.log(`services up in ${((performance.now() - began) / 1000).toFixed(1)} s`);
console.log(JSON.stringify(await services.health(), null, 2));
if (process.argv.includes("--memory")) {
  await new Promise((r) => setTimeout(r, 2_000));
  const memory = await services.memory();
  for (const [name, bytes] of Object.entries(memory))
    console.log(`${name}: ${(bytes / 1048576).toFixed(0)} MiB RSS`);
}
if (process.argv.includes("--once")) {
  await services.stop();
  process.exit(0);
}
console.log("Ctrl-C to stop");

import { execFileSync } from "node:child_process";
import { mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { build } from "esbuild";
import { bundleExternals } from "../infra/bundling.ts";
import { functions, tables, topicEnvVar, topics } from "../lib/topology.ts";

/**
 * `npm run bench:bundles`: each function bundled as CDK bundles it (esbuild, minified ESM, the
 * packages of infra/bundling.ts external), its size, and its module init time — a fresh Node
 * process importing the bundle with the function's environment set (clients are created at
 * init; no network is touched until the first invocation).
 */
// Inside the repository, so the bundles resolve the AWS SDK from node_modules as Lambda resolves its own.
const out = resolve(".cache/bundles");
mkdirSync(out, { recursive: true });
const env: Record<string, string> = {
  ...(process.env as Record<string, string>),
  AWS_REGION: "us-east-1",
  KAFKA_AUTH: "iam",
  KAFKA_CLUSTER_ARN:
    "arn:aws:kafka:us-east-1:000000000000:cluster/tidemark/00000000-0000-0000-0000-000000000000-1",
  ARCHIVE_BUCKET: "bucket",
  EVENTS_QUERY_ENGINE: "athena",
  ATHENA_WORKGROUP: "wg",
  ATHENA_DATABASE: "db",
  ATHENA_TABLE: "events",
};
for (const [key, spec] of Object.entries(tables)) env[spec.envVar] = `table-${key}`;
for (const key of Object.keys(topics)) env[topicEnvVar(key as keyof typeof topics)] = key;

console.log("function     bundle KB   module init ms (median of 5 cold processes)");
for (const [name, spec] of Object.entries(functions)) {
  const file = join(out, `${name}.mjs`);
  await build({
    entryPoints: [resolve(spec.entry)],
    outfile: file,
    bundle: true,
    minify: true,
    format: "esm",
    platform: "node",
    target: "node22",
    mainFields: ["module", "main"],
    external: bundleExternals,
    banner: { js: "import { createRequire } from 'module';const require = createRequire(import.meta.url);" },
    logLevel: "silent",
  });
  const kb = statSync(file).size / 1024;
  const script = `const t=performance.now();await import(${JSON.stringify(`file://${file}`)});console.log(performance.now()-t)`;
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const ms = execFileSync(process.execPath, ["--input-type=module", "-e", script], { env, cwd: out })
      .toString()
      .trim();
    times.push(Number(ms));
  }
  times.sort((a, b) => a - b);
  console.log(
    `${name.padEnd(12)} ${kb.toFixed(0).padStart(9)}   ${(times[2] ?? Number.NaN).toFixed(0).padStart(6)}`,
  );
}

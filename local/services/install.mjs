#!/usr/bin/env node
// Fetches the local backing services from Maven Central into .cache/services/<name>/lib:
// Apache Kafka (KRaft broker), AWS DynamoDB Local, S3Proxy. Plain Node, no dependencies,
// so it runs before or without `npm install`. Idempotent: a marker records what was installed.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
export const SERVICES = ["kafka", "dynamodb", "s3"];

export function serviceLibDir(name, cacheRoot = join(root, ".cache")) {
  return join(cacheRoot, "services", name, "lib");
}

/** Installs the services whose marker is missing or stale; returns what it installed. */
export function installServices({ cacheRoot = join(root, ".cache"), log = console.log } = {}) {
  const installed = [];
  for (const name of SERVICES) {
    const pom = join(here, name, "pom.xml");
    const pomText = readFileSync(pom, "utf8");
    const lib = serviceLibDir(name, cacheRoot);
    const marker = join(lib, "..", "installed.pom.xml");
    if (existsSync(marker) && readFileSync(marker, "utf8") === pomText) continue;
    log(`installing ${name} from Maven Central into ${lib} …`);
    rmSync(lib, { recursive: true, force: true });
    mkdirSync(lib, { recursive: true });
    const result = spawnSync(
      "mvn",
      [
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        pom,
        "dependency:copy-dependencies",
        `-DoutputDirectory=${lib}`,
      ],
      { stdio: ["ignore", "inherit", "inherit"] },
    );
    if (result.error) throw new Error(`could not run mvn (is Maven installed?): ${result.error.message}`);
    if (result.status !== 0) throw new Error(`mvn failed installing ${name} (exit ${result.status})`);
    writeFileSync(marker, pomText);
    installed.push(name);
  }
  return installed;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const done = installServices();
    console.log(done.length ? `installed: ${done.join(", ")}` : "services already installed");
  } catch (error) {
    console.error(String(error instanceof Error ? error.message : error));
    process.exit(1);
  }
}

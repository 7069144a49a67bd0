import { readFileSync, writeFileSync } from "node:fs";
import { buildOpenApiDocument } from "../lib/contract/openapi.ts";

/** `npm run openapi` writes docs/openapi.json; `-- --check` fails if the committed file is stale. */
const file = new URL("../docs/openapi.json", import.meta.url);
const text = `${JSON.stringify(buildOpenApiDocument(), null, 2)}\n`;
if (process.argv.includes("--check")) {
  let committed = "";
  try {
    committed = readFileSync(file, "utf8");
  } catch {
    // missing counts as stale
  }
  if (committed !== text) {
    console.error(
      "docs/openapi.json is out of date with the zod schemas: run `npm run openapi` and commit it",
    );
    process.exit(1);
  }
  console.log("docs/openapi.json matches the schemas");
} else {
  writeFileSync(file, text);
  console.log("wrote docs/openapi.json");
}

import { statSync } from "node:fs";
import { createRequire, isBuiltin } from "node:module";
import { resolve } from "node:path";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";
import { type FunctionSpec, functions } from "../../lib/topology.ts";

const require = createRequire(import.meta.url);

/**
 * What CDK bundles (same esbuild settings as infra/constructs/tidemark-function.ts) must load in
 * Lambda: nothing outside the runtime's AWS SDK may be imported at module init, and each bundle
 * stays under 1 MB.
 */
describe("Lambda bundles", () => {
  for (const [name, spec] of Object.entries(functions)) {
    it(`${name}: under 1 MB, no static import of a package the runtime lacks`, async () => {
      const result = await build({
        entryPoints: [resolve(spec.entry)],
        bundle: true,
        minify: true,
        format: "esm",
        platform: "node",
        target: "node22",
        mainFields: ["module", "main"],
        external: ["@aws-sdk/*", "@duckdb/node-api"],
        write: false,
        logLevel: "silent",
      });
      const code = result.outputFiles[0]?.text ?? "";
      // Static files the function serves are copied into the same bundle (topology `assets`).
      const assetBytes = ((spec as FunctionSpec).assets ?? [])
        .map((a) => statSync(a.startsWith("./") ? resolve(a) : require.resolve(a)).size)
        .reduce((n, b) => n + b, 0);
      expect(code.length + assetBytes).toBeLessThan(1024 * 1024);
      const staticImports = [
        ...code.matchAll(/(?:^|[;\n])import\s*(?:[^"'()]*?from\s*)?["']([^"']+)["']/g),
      ].map((m) => m[1]);
      expect(staticImports.filter((m) => m && !m.startsWith("@aws-sdk/") && !isBuiltin(m))).toEqual([]);
    }, 60_000);
  }
});

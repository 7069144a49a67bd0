import { statSync } from "node:fs";
import { createRequire, isBuiltin } from "node:module";
import { resolve } from "node:path";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";
import { bundleExternals, bundling } from "../../infra/bundling.ts";
import { type FunctionSpec, functions } from "../../lib/topology.ts";

const require = createRequire(import.meta.url);

/**
 * What CDK bundles (same esbuild settings as infra/constructs/tidemark-function.ts) must load in
 * Lambda: every package a bundle leaves out, statically or through a dynamic `import()` /
 * `require()`, is on the explicit list of infra/bundling.ts, and each bundle stays under 1 MB.
 */
describe("Lambda bundles", () => {
  const allowed = new Set<string>(bundleExternals);

  it("name their externals one by one", () => {
    for (const name of bundleExternals) expect(name).toMatch(/^(@[a-z0-9-]+\/)?[a-z0-9.-]+$/);
  });

  for (const [name, spec] of Object.entries(functions)) {
    it(`${name}: under 1 MB, loads nothing outside the runtime's explicit list`, async () => {
      const result = await build({
        entryPoints: [resolve(spec.entry)],
        bundle: true,
        minify: true,
        format: "esm",
        platform: "node",
        target: "node22",
        mainFields: ["module", "main"],
        external: bundleExternals,
        write: false,
        logLevel: "silent",
      });
      const code = result.outputFiles[0]?.text ?? "";
      // Static files the function serves are copied into the same bundle (topology `assets`).
      const assetBytes = ((spec as FunctionSpec).assets ?? [])
        .map((a) => statSync(a.startsWith("./") ? resolve(a) : require.resolve(a)).size)
        .reduce((n, b) => n + b, 0);
      expect(code.length + assetBytes).toBeLessThan(1024 * 1024);
      const loaded = [
        ...code.matchAll(/(?:^|[;\n])import\s*(?:[^"'()]*?from\s*)?["']([^"']+)["']/g),
        ...code.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
        ...code.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g),
      ].map((m) => m[1] ?? "");
      const outside = loaded.filter((m) => !isBuiltin(m) && !allowed.has(m));
      expect(outside).toEqual([]);
    }, 60_000);
  }

  it("keeps local-only packages off the Lambda paths", async () => {
    // The events handler reaches DuckDB only through the local engine's dynamic import.
    const result = await build({
      entryPoints: [resolve(functions.events.entry)],
      bundle: true,
      format: "esm",
      platform: "node",
      external: bundleExternals,
      write: false,
      logLevel: "silent",
      metafile: true,
    });
    const staticImports = Object.values(result.metafile.outputs).flatMap((o) =>
      o.imports.filter((i) => i.kind === "import-statement").map((i) => i.path),
    );
    for (const pkg of bundling.localOnly) expect(staticImports).not.toContain(pkg);
  });
});

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Static files a function serves as they are (topology `assets`). In a Lambda bundle they sit
 * in `assets/` beside the handler (copied there at build time from the same sources); locally
 * they are read where they are: the repository for `./` paths, `node_modules` for npm paths.
 */
export interface Asset {
  readonly name: string;
  readonly contentType: string;
  readonly body: string;
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

/** Where each asset's file is: the bundle's `assets/` when present, else its source. */
export function assetSources(
  specs: readonly string[],
  moduleUrl: string,
  repoRoot: string,
): Map<string, string> {
  const bundled = join(dirname(fileURLToPath(moduleUrl)), "assets");
  const inBundle = existsSync(bundled);
  const require = createRequire(join(repoRoot, "package.json"));
  return new Map(
    specs.map((spec) => {
      const name = basename(spec);
      if (inBundle) return [name, join(bundled, name)];
      return [name, spec.startsWith("./") ? resolve(repoRoot, spec) : require.resolve(spec)];
    }),
  );
}

/** Reads each asset once (a warm Lambda serves them from memory). */
export class AssetCache {
  readonly #loaded = new Map<string, Promise<Asset>>();
  constructor(private readonly sources: ReadonlyMap<string, string>) {}

  has(name: string): boolean {
    return this.sources.has(name);
  }

  get(name: string): Promise<Asset> | undefined {
    const path = this.sources.get(name);
    if (!path) return undefined;
    let asset = this.#loaded.get(name);
    if (!asset) {
      asset = readFile(path, "utf8").then((body) => ({
        name,
        contentType: CONTENT_TYPES[extname(name)] ?? "application/octet-stream",
        body,
      }));
      asset.catch(() => this.#loaded.delete(name));
      this.#loaded.set(name, asset);
    }
    return asset;
  }
}

import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

interface CachedFile {
  readonly path: string;
  readonly key: string;
  readonly bytes: number;
  /** Queries using the file now: it is deleted only when none is. */
  users: number;
  /** A newer version of its key is cached: delete it once unused. */
  superseded: boolean;
}

export interface FileCacheOptions {
  /** Bytes kept on disk at most, over files no query uses (least recently used go first). @default 512 MiB */
  readonly maxBytes?: number;
}

/**
 * Local copies of archive objects for GET /events' local engine, by object key and version
 * (ETag). The archive rewrites the objects of an open hour while it fills, so a busy hour's
 * newest objects change between two polls: each version used to stay on disk until the process
 * ended, gigabytes over a day of `npm start` with a dashboard open. A version is deleted once a
 * newer one of its key is cached and no query still reads it, and unused files beyond
 * `maxBytes` are deleted oldest first. Queries hold what they read (`acquire`, then `release`),
 * so nothing is deleted under a running DuckDB scan.
 */
export class FileCache {
  readonly #files = new Map<string, CachedFile>();
  readonly #latest = new Map<string, string>();
  readonly #loading = new Map<string, Promise<CachedFile>>();
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(
    private readonly dir: string,
    options: FileCacheOptions = {},
  ) {
    this.#maxBytes = options.maxBytes ?? 512 * 1024 * 1024;
  }

  /** The local path of `key` at `version`, fetched once; held until `release(path)`. */
  async acquire(key: string, version: string, fetch: () => Promise<Uint8Array>): Promise<string> {
    const path = join(this.dir, `${key.replaceAll("/", "_")}.${version}`);
    let file = this.#files.get(path);
    if (!file) {
      let loading = this.#loading.get(path);
      if (!loading) {
        loading = this.#load(path, key, fetch).finally(() => this.#loading.delete(path));
        this.#loading.set(path, loading);
      }
      file = await loading;
    }
    file.users++;
    // Most recently used last.
    this.#files.delete(path);
    this.#files.set(path, file);
    return path;
  }

  async release(path: string): Promise<void> {
    const file = this.#files.get(path);
    if (!file) return;
    file.users = Math.max(0, file.users - 1);
    if (file.users === 0 && file.superseded) await this.#delete(file);
    await this.#evict();
  }

  /** Bytes of the files on disk. */
  get bytes(): number {
    return this.#bytes;
  }

  async #load(path: string, key: string, fetch: () => Promise<Uint8Array>): Promise<CachedFile> {
    const bytes = await fetch();
    await mkdir(this.dir, { recursive: true });
    await writeFile(path, bytes);
    const file: CachedFile = { path, key, bytes: bytes.byteLength, users: 0, superseded: false };
    this.#files.set(path, file);
    this.#bytes += file.bytes;
    const previous = this.#latest.get(key);
    this.#latest.set(key, path);
    const old = previous === undefined || previous === path ? undefined : this.#files.get(previous);
    if (old) {
      old.superseded = true;
      if (old.users === 0) await this.#delete(old);
    }
    return file;
  }

  async #delete(file: CachedFile): Promise<void> {
    if (!this.#files.delete(file.path)) return;
    this.#bytes -= file.bytes;
    if (this.#latest.get(file.key) === file.path) this.#latest.delete(file.key);
    await rm(file.path, { force: true });
  }

  async #evict(): Promise<void> {
    if (this.#bytes <= this.#maxBytes) return;
    for (const file of [...this.#files.values()]) {
      if (this.#bytes <= this.#maxBytes) return;
      if (file.users === 0) await this.#delete(file);
    }
  }
}

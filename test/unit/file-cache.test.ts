import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileCache } from "../../lib/adapters/file-cache.ts";

/**
 * GET /events' local copies of archive objects: an object rewritten while its hour fills leaves
 * no stale copy behind once no query reads it, and the disk used stays bounded.
 */
describe("FileCache", () => {
  const bytes = (text: string) => new TextEncoder().encode(text);

  it("fetches a version once, and deletes a superseded version when its last reader releases it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "file-cache-"));
    const cache = new FileCache(dir);
    let fetches = 0;
    const fetch = (text: string) => async () => {
      fetches++;
      return bytes(text);
    };
    const [v1, again] = await Promise.all([
      cache.acquire("a/b.ndjson.gz", "etag1", fetch("one")),
      cache.acquire("a/b.ndjson.gz", "etag1", fetch("one")),
    ]);
    expect(again).toBe(v1);
    expect(fetches).toBe(1);
    expect(readFileSync(v1, "utf8")).toBe("one");
    // The object is rewritten while a query still reads version 1.
    const v2 = await cache.acquire("a/b.ndjson.gz", "etag2", fetch("two!"));
    expect(existsSync(v1)).toBe(true);
    await cache.release(v1);
    expect(existsSync(v1)).toBe(true); // the second reader of version 1 is still at it
    await cache.release(v1);
    expect(existsSync(v1)).toBe(false);
    expect(readFileSync(v2, "utf8")).toBe("two!");
    await cache.release(v2);
    expect(existsSync(v2)).toBe(true); // the newest version stays cached
    expect(readdirSync(dir)).toHaveLength(1);
    expect(cache.bytes).toBe(4);
  });

  it("deletes unused files beyond maxBytes, least recently used first, never one in use", async () => {
    const dir = mkdtempSync(join(tmpdir(), "file-cache-"));
    const cache = new FileCache(dir, { maxBytes: 10 });
    const a = await cache.acquire("a", "1", async () => bytes("aaaa"));
    const b = await cache.acquire("b", "1", async () => bytes("bbbb"));
    await cache.release(a);
    await cache.release(b);
    const c = await cache.acquire("c", "1", async () => bytes("cccccc")); // 14 bytes, c in use
    await cache.release(await cache.acquire("b", "1", async () => bytes("bbbb"))); // b used again
    expect(existsSync(a)).toBe(false); // least recently used and unused
    expect(existsSync(b)).toBe(true);
    expect(existsSync(c)).toBe(true);
    expect(cache.bytes).toBe(10);
    await cache.release(c);
    expect(cache.bytes).toBeLessThanOrEqual(10);
  });
});

import { randomFillSync } from "node:crypto";

/**
 * UUIDv7 (RFC 9562): 48-bit millisecond timestamp, then random bits, so generated event ids sort
 * by creation time. Random bytes are drawn in pools to keep generation cheap at 100k ids/s.
 */
const POOL = 16 * 1024;
const pool = Buffer.alloc(POOL * 10);
let offset = pool.length;
const hex = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function uuidv7(now = Date.now()): string {
  if (offset + 10 > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const b = new Uint8Array(16);
  let t = now;
  for (let i = 5; i >= 0; i--) {
    b[i] = t % 256;
    t = Math.floor(t / 256);
  }
  for (let i = 6; i < 16; i++) b[i] = pool[offset++] ?? 0;
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x70;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  let s = "";
  for (let i = 0; i < 16; i++) {
    s += hex[b[i] ?? 0];
    if (i === 3 || i === 5 || i === 7 || i === 9) s += "-";
  }
  return s;
}

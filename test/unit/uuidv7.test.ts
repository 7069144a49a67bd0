import { afterEach, describe, expect, it, vi } from "vitest";

/**
 * `uuidv7` generates every event id a client did not send (the bench's events carry none): it
 * computes a millisecond's timestamp part once for all the ids of that millisecond and allocates
 * no typed array per id. These tests pin that, and that every id is the one the straightforward
 * construction (RFC 9562's layout, byte by byte, as it was written before) gives from the same
 * random bytes, for any `now`, across refills of the random pool.
 */

/** A seeded byte stream standing in for the CSPRNG, so both constructions see the same bytes. */
const random = vi.hoisted(() => {
  let state = 0x9e3779b9;
  return {
    reset: () => {
      state = 0x9e3779b9;
    },
    fill: (buf: Uint8Array) => {
      for (let i = 0; i < buf.length; i++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        buf[i] = state & 0xff;
      }
      return buf;
    },
  };
});

vi.mock("node:crypto", async (original) => ({
  ...(await original<typeof import("node:crypto")>()),
  randomFillSync: random.fill,
}));

const { uuidv7 } = await import("../../lib/contract/uuidv7.ts");

/** The construction before the timestamp's part was reused: one Uint8Array of 16 bytes per id. */
function reference(): (now: number) => string {
  const pool = new Uint8Array(16 * 1024 * 10);
  let offset = pool.length;
  const hex = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
  return (now) => {
    if (offset + 10 > pool.length) {
      random.fill(pool);
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
  };
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("uuidv7", () => {
  it("gives the ids of the byte-by-byte construction, for any now, across pool refills", () => {
    // Both read the same seeded stream from its start (reset before each): same pool size and 10
    // bytes an id, so they refill at the same ids. The module's pool is fresh: this runs first.
    const nows = [
      Date.UTC(2026, 10, 22, 12, 0, 0),
      0,
      1,
      255,
      256,
      2 ** 48 - 1,
      2 ** 48,
      2 ** 53,
      1.5,
      -1,
      -0,
      Number.NaN,
      Number.POSITIVE_INFINITY,
    ];
    const sequence: number[] = [];
    for (let i = 0; i < 40_000; i++) {
      // Runs of one millisecond (as a 1,000-event POST asks), steps, and the odd values between.
      const at = nows[Math.floor(i / 997) % nows.length] ?? 0;
      sequence.push(
        i % 13 === 0 ? (nows[i % nows.length] ?? 0) : at + (i % 3 === 0 ? 0 : Math.floor(i / 500)),
      );
    }
    random.reset();
    const ours = sequence.map((now) => uuidv7(now));
    random.reset();
    const ref = reference();
    const theirs = sequence.map((now) => ref(now));
    expect(ours).toEqual(theirs);
    expect(new Set(ours).size).toBe(ours.length);
    expect(ours[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("allocates no typed array per id", () => {
    let constructed = 0;
    class Counting extends Uint8Array {
      constructor(...args: ConstructorParameters<typeof Uint8Array>) {
        super(...args);
        constructed++;
      }
    }
    vi.stubGlobal("Uint8Array", Counting);
    const now = Date.UTC(2026, 10, 22, 12, 0, 1);
    for (let i = 0; i < 1000; i++) uuidv7(now);
    expect(constructed).toBe(0);
  });
});

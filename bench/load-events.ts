import { createHash } from "node:crypto";

/**
 * The bench's events, shared by the load generator (bench/load-worker.ts) and the measurements
 * that model its traffic (bench/deflate-levels.ts): 50,000 users, 9,000 sessions, 500 pages.
 */
export const BENCH_USERS = 50_000;

/** `user-<n>`, or a UUID per user (as many apps have them). */
export type UserIdKind = "short" | "uuid";

/** A UUID-shaped id per user index, the same in every process (random-looking, version 4 bits). */
const uuidOf = (n: number) => {
  const h = createHash("sha256").update(`user-${n}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

/** The user id of event `n` (ids computed once per process). */
export function userIdsOf(kind: UserIdKind = "short"): (n: number) => string {
  const uuids = kind === "uuid" ? Array.from({ length: BENCH_USERS }, (_, n) => uuidOf(n)) : undefined;
  return (n) => uuids?.[n % BENCH_USERS] ?? `user-${n % BENCH_USERS}`;
}

/** Event `n` of the load, as a client sends it. */
export function benchEvent(n: number, userId: (n: number) => string, eventType: string, timestamp: number) {
  return {
    user_id: userId(n),
    session_id: `s-${n % 9_000}`,
    event_type: eventType,
    timestamp,
    page_url: `https://shop.example/p/${n % 500}`,
    properties: {
      amount: (n % 1000) / 10,
      currency: n % 3 === 0 ? "EUR" : "USD",
      product_id: `p-${n % 200}`,
    },
    metadata: { platform: n % 2 === 0 ? "web" : "ios" },
  };
}

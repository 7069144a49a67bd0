import { newestTimestampBound } from "./layout.ts";

/** An archive object as a listing shows it. */
export interface ListedObject {
  readonly key: string;
  readonly etag: string;
  /** `LastModified`, epoch ms; unknown means unbounded. */
  readonly lastModifiedMs?: number;
}

export interface BoundedObject extends ListedObject {
  /** The newest event timestamp the object can hold (`newestTimestampBound`). */
  readonly newest: number;
}

/**
 * The order GET /events reads one hour's objects in: newest bound first (ties by key, so a
 * query's plan does not depend on the listing's order), without the objects that cannot hold an
 * event at or after `fromMs`.
 */
export function readOrder(objects: readonly ListedObject[], fromMs: number): BoundedObject[] {
  return objects
    .map((o) => ({ ...o, newest: newestTimestampBound(o.key, o.lastModifiedMs) }))
    .filter((o) => o.newest >= fromMs)
    .sort((a, b) => b.newest - a.newest || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Whether the newest-first rows read so far are the final page: `limit` rows, the last of them
 * newer than anything the unread objects can hold (`unreadNewest`, the first unread object's
 * bound). A tie is not final: an unread row with the same timestamp may sort before it by id.
 */
export function pageIsFinal(
  rows: readonly { readonly timestamp: number }[],
  limit: number,
  unreadNewest: number | undefined,
): boolean {
  if (unreadNewest === undefined) return true;
  const last = rows[limit - 1];
  return rows.length >= limit && last !== undefined && last.timestamp > unreadNewest;
}

/**
 * How many objects (a prefix of `order`) the next round reads, after a round of `read` objects
 * found `rows`. With a full page, every object that can hold a row newer than its last row, and no
 * other: whatever they hold, the page is then final. Without one, twice as many.
 */
export function nextRound(
  order: readonly BoundedObject[],
  read: number,
  rows: readonly { readonly timestamp: number }[],
  limit: number,
): number {
  const last = rows.length >= limit ? rows[limit - 1] : undefined;
  if (last === undefined) return Math.min(order.length, read * 2);
  let n = read;
  while (n < order.length && (order[n]?.newest ?? Number.NEGATIVE_INFINITY) >= last.timestamp) n++;
  return Math.max(n, read + 1);
}

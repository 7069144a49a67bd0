import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
} from "@aws-sdk/lib-dynamodb";
import { type Granularity, parseWindowKey, windowStartOf } from "../stream/fold.ts";
import {
  bucketOf,
  bucketPk,
  type PartialRecord,
  recordBytes,
  windowSkRange,
} from "../stream/partial-items.ts";
import { itemSizeBytes, writeUnits } from "./dynamodb-item-size.ts";
import { usageMeter } from "./usage-meter.ts";

/** A write lost the race against another writer of the same partition: retry the batch. */
export class FenceConflictError extends Error {
  override name = "FenceConflictError";
}

/**
 * What the aggregator keeps per source partition, in one item written in the same transaction as
 * the partials: the offset fence, the watermark, which windows hold uncompacted deltas, and the
 * late records whose publication to `events.late` is not yet confirmed.
 */
export interface Fence {
  /** Highest offset whose effect is stored; -1 before any. */
  readonly lastOffset: number;
  /** Highest event time seen (bounded by arrival time), -Infinity before any. */
  readonly maxEventTime: number;
  /**
   * Every event-time window ending at or before this instant is closed for good: no later commit
   * of the partition changes it (its events are late). The highest watermark so far, so raising
   * the allowed lateness never reopens a window. Readers cache closed windows by it (GET /stats).
   * -Infinity before any.
   */
  readonly closedBefore: number;
  /** windowKey → delta records not yet compacted. */
  readonly dirty: ReadonlyMap<string, number>;
  /** Offsets of late records committed but not yet confirmed on `events.late`. */
  readonly latePending: readonly number[];
  /** Whether the item exists (the condition of the first write is its absence). */
  readonly stored: boolean;
}

export const INITIAL_FENCE: Fence = {
  lastOffset: -1,
  maxEventTime: Number.NEGATIVE_INFINITY,
  closedBefore: Number.NEGATIVE_INFINITY,
  dirty: new Map(),
  latePending: [],
  stored: false,
};

export interface PartialKey {
  readonly pk: string;
  readonly sk: string;
  /**
   * The stored item's size (`itemSizeBytes`), when the writer read it: a delete is billed by it.
   * @default unknown: counted as an item under 1 KB
   */
  readonly bytes?: number;
}

export interface StoreChange {
  readonly topic: string;
  readonly partition: number;
  /** The fence as read: the change applies only if the stored fence did not move since. */
  readonly expected: Fence;
  readonly fence: Fence;
  readonly puts: readonly PartialRecord[];
  readonly deletes: readonly PartialKey[];
  /**
   * Sizes of stored items that puts of this change replace, by sort key (a compaction rewriting
   * its compacted chunks): a put over an item is billed by the larger of the two.
   * @default none
   */
  readonly replaces?: ReadonlyMap<string, number>;
}

/** Partial aggregates and the per-partition fence (the aggregates and stream-state tables). */
export interface WindowStore {
  getFence(topic: string, partition: number): Promise<Fence>;
  /** All of a change or nothing (one DynamoDB transaction); FenceConflictError if the fence moved. */
  apply(change: StoreChange): Promise<void>;
  /**
   * Deletes delta items that a committed compaction absorbed, outside any transaction (a plain
   * delete is billed half a transactional one). Readers already ignore them (`effectiveRecords`),
   * so deleting them is housekeeping: a crash before it leaves items no number counts, which the
   * window's next compaction deletes, or their TTL. Only deltas: their keys are never written
   * again once absorbed (a delta is keyed by an offset at or below the compaction's).
   */
  discard(deltas: readonly PartialKey[]): Promise<void>;
  /**
   * The records of a rule's windows (strongly consistent), from every source partition or one.
   * Window starts are grouped by bucket, so a range of every partition costs one Query per bucket.
   */
  read(
    ruleKey: string,
    granularity: Granularity,
    windowStarts: readonly number[],
    partition?: number,
  ): Promise<PartialRecord[]>;
  /** What the fences of every partition of `topic` say about readers' windows (one Query). */
  fenceSnapshot(topic: string, partitions: number): Promise<FenceSnapshot>;
  /** Write units consumed so far (ReturnConsumedCapacity), for cost figures. */
  readonly consumedWriteUnits: number;
}

/** What the partitions' fences, read together, tell readers. */
export interface FenceSnapshot {
  /**
   * The instant before which every event-time window of every partition is closed: the lowest
   * `closedBefore` of the partitions' fences, -Infinity while any partition has none. It only
   * ever grows, so a stale answer is a safe one.
   */
  readonly closedBefore: number;
  /**
   * Per rule key, the hours (start) with minute deltas not yet compacted in some partition, so
   * not yet rolled up into the hour (`unrolledDeltas`). From the same fences as `closedBefore`.
   */
  readonly unrolledHours: ReadonlyMap<string, ReadonlySet<number>>;
}

/** Adds the hours of a fence's uncompacted minute windows (`dirty` keys) to `into`. */
export function addUnrolledHours(dirty: Iterable<string>, into: Map<string, Set<number>>): void {
  for (const key of dirty) {
    const { ruleKey, granularity, windowStart } = parseWindowKey(key);
    if (granularity !== "m") continue;
    let hours = into.get(ruleKey);
    if (!hours) {
      hours = new Set();
      into.set(ruleKey, hours);
    }
    hours.add(windowStartOf(windowStart, "h"));
  }
}

/** The lowest `closedBefore` over partitions 0..partitions-1 (-Infinity when one is missing). */
export function lowestClosedBefore(byPartition: ReadonlyMap<number, number>, partitions: number): number {
  for (let p = 0; p < partitions; p++) if (!byPartition.has(p)) return Number.NEGATIVE_INFINITY;
  return byPartition.size > 0 ? Math.min(...byPartition.values()) : Number.NEGATIVE_INFINITY;
}

/** Bytes of a change as DynamoDB counts them against the 4 MB transaction limit. */
export const changeBytes = (puts: readonly PartialRecord[]) => puts.reduce((n, r) => n + recordBytes(r), 0);

/** One Query of a read: a key and an inclusive sort-key range. */
export interface WindowQuery {
  readonly pk: string;
  readonly lo: string;
  readonly hi: string;
}

/**
 * The Queries of a read. Every partition: one per bucket (the window starts of a bucket are one
 * contiguous sort-key range, whatever the partitions). One partition (the aggregator compacting
 * its own window): one per window start, so it reads none of the other partitions' items.
 */
export function readPlan(
  ruleKey: string,
  granularity: Granularity,
  windowStarts: readonly number[],
  partition?: number,
): WindowQuery[] {
  if (partition !== undefined) {
    return [...new Set(windowStarts)].map((ws) => {
      const [lo, hi] = windowSkRange(ws, ws, partition);
      return { pk: bucketPk(ruleKey, granularity, bucketOf(granularity, ws)), lo, hi };
    });
  }
  const byBucket = new Map<number, { from: number; to: number }>();
  for (const ws of windowStarts) {
    const bucket = bucketOf(granularity, ws);
    const range = byBucket.get(bucket);
    if (!range) byBucket.set(bucket, { from: ws, to: ws });
    else {
      range.from = Math.min(range.from, ws);
      range.to = Math.max(range.to, ws);
    }
  }
  return [...byBucket].map(([bucket, r]) => {
    const [lo, hi] = windowSkRange(r.from, r.to);
    return { pk: bucketPk(ruleKey, granularity, bucket), lo, hi };
  });
}

interface FenceRow {
  last_offset: number;
  max_event_time: number | string;
  closed_before?: number | string;
  dirty?: string;
  late_pending?: string;
}

export class DynamoWindowStore implements WindowStore {
  #writeUnits = 0;
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly aggregatesTable: string,
    private readonly stateTable: string,
  ) {}

  get consumedWriteUnits(): number {
    return this.#writeUnits;
  }

  #fenceKey(topic: string, partition: number) {
    return { pk: `fence#${topic}`, sk: `p${partition}` };
  }

  /**
   * The fence this environment last committed, per partition: only the partition's owner writes
   * it, so it saves a read per batch. Stale after the partition moved to another environment and
   * back: the commit's condition then fails, the entry is dropped, and the retried batch reads
   * the table (as after any failed write: its outcome is unknown).
   */
  readonly #fences = new Map<string, Fence>();
  /** Size of each fence item this environment last wrote (its next put replaces it). */
  readonly #fenceBytes = new Map<string, number>();

  async getFence(topic: string, partition: number): Promise<Fence> {
    const cached = this.#fences.get(`${topic}#${partition}`);
    if (cached) return cached;
    const res = await this.db.send(
      new GetCommand({
        TableName: this.stateTable,
        Key: this.#fenceKey(topic, partition),
        ConsistentRead: true,
      }),
    );
    const row = res.Item as FenceRow | undefined;
    if (!row) return INITIAL_FENCE;
    return {
      lastOffset: Number(row.last_offset),
      maxEventTime: Number(row.max_event_time),
      closedBefore: instantOf(row.closed_before),
      dirty: new Map(JSON.parse(row.dirty ?? "[]") as [string, number][]),
      latePending: JSON.parse(row.late_pending ?? "[]") as number[],
      stored: true,
    };
  }

  async apply(change: StoreChange): Promise<void> {
    const { expected, fence } = change;
    const fencePut = {
      Put: {
        TableName: this.stateTable,
        Item: {
          ...this.#fenceKey(change.topic, change.partition),
          last_offset: fence.lastOffset,
          max_event_time: storedInstant(fence.maxEventTime),
          closed_before: storedInstant(fence.closedBefore),
          dirty: JSON.stringify([...fence.dirty]),
          late_pending: JSON.stringify(fence.latePending),
        },
        ...(expected.stored
          ? {
              ConditionExpression: "last_offset = :expected",
              ExpressionAttributeValues: { ":expected": expected.lastOffset },
            }
          : { ConditionExpression: "attribute_not_exists(pk)" }),
      },
    };
    const actions = [
      ...change.puts.map((Item) => ({ Put: { TableName: this.aggregatesTable, Item } })),
      ...change.deletes.map((Key) => ({
        Delete: { TableName: this.aggregatesTable, Key: { pk: Key.pk, sk: Key.sk } },
      })),
      fencePut,
    ];
    const fenceKey = `${change.topic}#${change.partition}`;
    try {
      const res = await this.db.send(
        new TransactWriteCommand({ TransactItems: actions, ReturnConsumedCapacity: "TOTAL" }),
      );
      this.#fences.set(fenceKey, fence);
      for (const c of res.ConsumedCapacity ?? [])
        this.#writeUnits += c.WriteCapacityUnits ?? c.CapacityUnits ?? 0;
      const fenceBytes = itemSizeBytes(fencePut.Put.Item);
      const billed = billedUnits(change, fenceBytes, this.#fenceBytes.get(fenceKey));
      this.#fenceBytes.set(fenceKey, fenceBytes);
      usageMeter.recordComputedWrites(billed.units, billed.owedChange, billed.costByWindowKind);
    } catch (error) {
      this.#fences.delete(fenceKey);
      if (error instanceof TransactionCanceledException) {
        const codes = error.CancellationReasons?.map((r) => r.Code) ?? [];
        if (codes.includes("ConditionalCheckFailed"))
          throw new FenceConflictError(
            `partition ${change.partition}: the fence moved (${JSON.stringify(codes)})`,
          );
      }
      throw error;
    }
  }

  async discard(deltas: readonly PartialKey[]): Promise<void> {
    for (const key of deltas)
      if (!isDelta(key.sk)) throw new RangeError(`discard takes absorbed deltas only, not ${key.sk}`);
    for (let i = 0; i < deltas.length; i += BATCH_WRITE_ITEMS) {
      const group = deltas.slice(i, i + BATCH_WRITE_ITEMS);
      let requests = group.map((key) => ({ DeleteRequest: { Key: { pk: key.pk, sk: key.sk } } }));
      for (let attempt = 0; requests.length > 0; attempt++) {
        if (attempt > 0) {
          if (attempt > DISCARD_ATTEMPTS)
            throw new Error(`${requests.length} absorbed deltas left undeleted`);
          await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
        }
        const res = await this.db.send(
          new BatchWriteCommand({
            RequestItems: { [this.aggregatesTable]: requests },
            ReturnConsumedCapacity: "TOTAL",
          }),
        );
        for (const c of res.ConsumedCapacity ?? [])
          this.#writeUnits += c.WriteCapacityUnits ?? c.CapacityUnits ?? 0;
        const unprocessed = res.UnprocessedItems?.[this.aggregatesTable] ?? [];
        requests = unprocessed.flatMap((r) =>
          r.DeleteRequest?.Key
            ? [{ DeleteRequest: { Key: r.DeleteRequest.Key as { pk: string; sk: string } } }]
            : [],
        );
      }
      const billed = discardedUnits(group);
      usageMeter.recordComputedWrites(billed, -billed);
    }
  }

  async fenceSnapshot(topic: string, partitions: number): Promise<FenceSnapshot> {
    const byPartition = new Map<number, number>();
    const unrolledHours = new Map<string, Set<number>>();
    let start: Record<string, unknown> | undefined;
    do {
      // Strongly consistent: a fence's closedBefore and dirty windows are read as one item, and
      // a reader that caches an hour must not see an older dirty list than its closedBefore.
      const res = await this.db.send(
        new QueryCommand({
          TableName: this.stateTable,
          KeyConditionExpression: "pk = :pk",
          ExpressionAttributeValues: { ":pk": this.#fenceKey(topic, 0).pk },
          ProjectionExpression: "sk, closed_before, dirty",
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const row of (res.Items ?? []) as (Pick<FenceRow, "closed_before" | "dirty"> & { sk: string })[]) {
        byPartition.set(Number(row.sk.slice(1)), instantOf(row.closed_before));
        addUnrolledHours(
          (JSON.parse(row.dirty ?? "[]") as [string, number][]).map(([key]) => key),
          unrolledHours,
        );
      }
      start = res.LastEvaluatedKey;
    } while (start);
    return { closedBefore: lowestClosedBefore(byPartition, partitions), unrolledHours };
  }

  async read(
    ruleKey: string,
    granularity: Granularity,
    windowStarts: readonly number[],
    partition?: number,
  ): Promise<PartialRecord[]> {
    const queries = readPlan(ruleKey, granularity, windowStarts, partition);
    const wanted = new Set(windowStarts);
    const results = await Promise.all(
      queries.map(async ({ pk, lo, hi }) => {
        const rows: PartialRecord[] = [];
        let start: Record<string, unknown> | undefined;
        do {
          const res = await this.db.send(
            new QueryCommand({
              TableName: this.aggregatesTable,
              KeyConditionExpression: "pk = :pk AND sk BETWEEN :lo AND :hi",
              ExpressionAttributeValues: { ":pk": pk, ":lo": lo, ":hi": hi },
              ConsistentRead: true,
              ExclusiveStartKey: start,
            }),
          );
          for (const row of (res.Items ?? []) as PartialRecord[])
            if (wanted.has(Number(row.ws))) rows.push(fromRow(row));
          start = res.LastEvaluatedKey;
        } while (start);
        return rows;
      }),
    );
    return results.flat();
  }
}

const isDelta = (sk: string) => sk.includes("#d#");
/** BatchWriteItem's limit of requests per call. */
const BATCH_WRITE_ITEMS = 25;
/** Retries of the deletes DynamoDB left unprocessed (throttling) before the batch fails. */
const DISCARD_ATTEMPTS = 6;
/** A fence's instant as stored: DynamoDB numbers cannot hold ±Infinity, so those go as text. */
const storedInstant = (t: number) => (Number.isFinite(t) ? t : String(t));
/** A stored instant back; absent (a fence written before the attribute existed): -Infinity. */
const instantOf = (v: number | string | undefined) =>
  v === undefined ? Number.NEGATIVE_INFINITY : Number(v);

/**
 * A committed change's write units by DynamoDB's rule for transactions (2 per KB of each item,
 * rounded up per item; a put over an item billed by the larger of the two, a delete by the item
 * deleted), and how it changes the units owed for delta items not yet deleted: a delta owes its
 * deletion by `discard`, a plain delete (1 per KB).
 */
export function billedUnits(
  change: Pick<StoreChange, "puts" | "deletes" | "replaces">,
  fenceBytes: number,
  previousFenceBytes: number | undefined,
): { units: number; owedChange: number; costByWindowKind: Record<string, number> } {
  let units = 0;
  let owedChange = 0;
  /** Paid + owed per `<rule key>#<m|h>`: what each rule's windows cost in all, once compacted. */
  const costByWindowKind: Record<string, number> = {};
  const cost = (pk: string, n: number) => {
    const kind = windowKindOf(pk);
    costByWindowKind[kind] = (costByWindowKind[kind] ?? 0) + n;
  };
  for (const put of change.puts) {
    const bytes = itemSizeBytes(put);
    const replaced = change.replaces?.get(put.sk) ?? 0;
    const paid = writeUnits(Math.max(bytes, replaced), true);
    const owed = isDelta(put.sk) ? writeUnits(bytes, false) : 0;
    units += paid;
    owedChange += owed;
    cost(put.pk, paid + owed);
  }
  for (const key of change.deletes) {
    const deleted = writeUnits(key.bytes ?? 0, true);
    units += deleted;
    // A delta's deletion was counted in its cost when it was put, as a plain delete.
    if (isDelta(key.sk)) owedChange -= writeUnits(key.bytes ?? 0, false);
    cost(key.pk, isDelta(key.sk) ? deleted - writeUnits(key.bytes ?? 0, false) : deleted);
  }
  const fenceUnits = writeUnits(Math.max(fenceBytes, previousFenceBytes ?? 0), true);
  units += fenceUnits;
  costByWindowKind.fence = fenceUnits;
  return { units, owedChange, costByWindowKind };
}

/** Write units of deleting absorbed deltas outside a transaction (1 per KB of each, rounded up). */
export const discardedUnits = (deltas: readonly PartialKey[]) =>
  deltas.reduce((n, key) => n + writeUnits(key.bytes ?? 0, false), 0);

/** `<rule key>#<m|h>` of an item's partition key (`<rule key>#<m|h>#<bucket start>`). */
const windowKindOf = (pk: string) => pk.slice(0, pk.lastIndexOf("#"));

function fromRow(row: PartialRecord): PartialRecord {
  return {
    ...row,
    ws: Number(row.ws),
    p: Number(row.p),
    offset: Number(row.offset),
    chunk: Number(row.chunk),
    n: Number(row.n),
    expires_at: Number(row.expires_at),
    at: Number(row.at),
  };
}

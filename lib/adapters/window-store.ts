import { deflateRawSync, inflateRawSync } from "node:zlib";
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  PutItemCommand,
  QueryCommand as RawQueryCommand,
  TransactionCanceledException,
} from "@aws-sdk/client-dynamodb";
import {
  BatchGetCommand,
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
} from "@aws-sdk/lib-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { z } from "zod";
import { type Granularity, parseWindowKey, windowStartOf } from "../stream/fold.ts";
import { bucketOf, bucketPk, type PartialRecord, windowSkRange } from "../stream/partial-items.ts";
import { MARSHALL_OPTIONS } from "./dynamodb-client.ts";
import { itemSizeBytes, writeUnits } from "./dynamodb-item-size.ts";
import { usageMeter } from "./usage-meter.ts";

/** A write lost the race against another writer of the same partition: retry the batch. */
export class FenceConflictError extends Error {
  override name = "FenceConflictError";
}

/**
 * What the aggregator keeps per source partition, in one item: the offset fence, the watermark,
 * which windows hold uncompacted deltas, the slice claimed but not yet confirmed written, and the
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
  /**
   * The slice this fence claimed (`lastOffset` is its last record) whose deltas are not yet
   * confirmed written: whoever reads the fence next writes them again from the same records
   * before going on (lib/pipeline/aggregate-batch.ts). Absent once confirmed.
   */
  readonly pending?: PendingSlice;
  /** Whether the item exists (the condition of the first write is its absence). */
  readonly stored: boolean;
}

/**
 * What makes a claimed slice's deltas reproducible by another execution environment: the same
 * records (offsets `first`..`lastOffset`, `records` of them), the fence's watermark before the
 * slice (`maxEventTime` here, `closedBefore` of the fence), and which records the claimant skipped
 * as resends (its recent-id cache is its own).
 *
 * The fence's `closedBefore` does not move until the slice is confirmed: readers cache the windows
 * it closes (GET /stats), and the slice's deltas, which it may close, are not all written before.
 */
export interface PendingSlice {
  readonly first: number;
  readonly records: number;
  readonly maxEventTime: number;
  /** The fence's `closedBefore` once the slice is confirmed. */
  readonly closesBefore: number;
  /** Offsets of the records skipped as resends of an event_id already counted. */
  readonly duplicates: readonly number[];
  /**
   * Windows whose delta the slice extends rather than writing its own: window key and the
   * extended delta's offset (its key). Absent when none.
   */
  readonly extended?: readonly (readonly [string, number])[];
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

export type FenceChange = Pick<StoreChange, "topic" | "partition" | "expected" | "fence">;

/** Partial aggregates and the per-partition fence (the aggregates and stream-state tables). */
export interface WindowStore {
  getFence(topic: string, partition: number): Promise<Fence>;
  /** All of a change or nothing (one DynamoDB transaction); FenceConflictError if the fence moved. */
  apply(change: StoreChange): Promise<void>;
  /**
   * The fence alone, by a plain conditional put (half a transactional write's units);
   * FenceConflictError if the stored fence moved since `expected`.
   */
  putFence(change: FenceChange): Promise<void>;
  /**
   * Delta items outside any transaction (BatchWriteItem, a plain put each). Only for the deltas
   * of a slice the fence claims: a repeat writes the same keys with the same groups.
   */
  putDeltas(puts: readonly PartialRecord[]): Promise<void>;
  /**
   * Which of these deltas are not stored (strongly consistent): a slice written again puts only
   * those. Any that is stored holds the same groups, put by the slice's claimant.
   */
  missingDeltas(puts: readonly PartialRecord[]): Promise<PartialRecord[]>;
  /**
   * Deltas of a claimed slice written again by another invocation: each by a put conditioned on
   * the key being free, as a stored one holds the same groups, or those and a later slice's (its
   * claimant may have extended it since: see `extendDelta`). A plain put could undo that.
   */
  putDeltasIfAbsent(puts: readonly PartialRecord[]): Promise<void>;
  /**
   * Puts `put` over the partition's delta of the same key, which it extends with a later slice's
   * groups: a conditional put, applied only while the stored delta holds groups through
   * `previous.through` (its `t`), so the same extension never lands twice (its claimant's and a
   * rewriter's) and a late one never undoes a later. FenceConflictError when it does not apply.
   * `previous.bytes`: the stored item's size (the put is billed by the larger of the two).
   */
  extendDelta(
    put: PartialRecord,
    previous: { readonly through: number; readonly bytes: number },
  ): Promise<void>;
  /** One stored delta (strongly consistent), or undefined. */
  getDelta(key: PartialKey): Promise<PartialRecord | undefined>;
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
  /** Deflated JSON of `[windowKey, deltas][]`; text JSON in fences written before session 9. */
  dirty?: string | Uint8Array;
  late_pending?: string;
  pending?: string;
}

export class DynamoWindowStore implements WindowStore {
  #writeUnits = 0;
  /**
   * @param raw a low-level client whose middleware stack is resolved once (`createDynamoDbRaw`):
   *   the conditional puts and the windows' Queries (`read`) go through it, the same requests for
   *   less CPU each; without it they go through `db`
   */
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly aggregatesTable: string,
    private readonly stateTable: string,
    private readonly raw?: DynamoDBClient,
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
      dirty: new Map(parseDirty(row.dirty)),
      latePending: JSON.parse(row.late_pending ?? "[]") as number[],
      ...(row.pending ? { pending: parsePending(row.pending) } : {}),
      stored: true,
    };
  }

  /** The fence's item, and the condition that the stored one is still `expected`. */
  #fencePut(change: FenceChange) {
    const { expected, fence } = change;
    return {
      TableName: this.stateTable,
      Item: {
        ...this.#fenceKey(change.topic, change.partition),
        last_offset: fence.lastOffset,
        max_event_time: storedInstant(fence.maxEventTime),
        closed_before: storedInstant(fence.closedBefore),
        dirty: storedDirty(fence.dirty),
        late_pending: JSON.stringify(fence.latePending),
        ...(fence.pending ? { pending: stringifyPending(fence.pending) } : {}),
      },
      ...(expected.stored
        ? {
            ConditionExpression: "last_offset = :expected",
            ExpressionAttributeValues: { ":expected": expected.lastOffset },
          }
        : { ConditionExpression: "attribute_not_exists(pk)" }),
    };
  }

  /**
   * A conditional PutItem, its consumed units counted: false when its condition failed (any other
   * error throws).
   */
  async #putIf(input: ConstructorParameters<typeof PutCommand>[0]): Promise<boolean> {
    try {
      const put = { ...input, ReturnConsumedCapacity: "TOTAL" as const };
      const res = this.raw
        ? await this.raw.send(
            new PutItemCommand({
              ...put,
              Item: marshall(put.Item, MARSHALL_OPTIONS),
              ...(put.ExpressionAttributeValues
                ? { ExpressionAttributeValues: marshall(put.ExpressionAttributeValues, MARSHALL_OPTIONS) }
                : {}),
            }),
          )
        : await this.db.send(new PutCommand(put));
      this.#writeUnits +=
        res.ConsumedCapacity?.WriteCapacityUnits ?? res.ConsumedCapacity?.CapacityUnits ?? 0;
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async putFence(change: FenceChange): Promise<void> {
    const put = this.#fencePut(change);
    const fenceKey = `${change.topic}#${change.partition}`;
    let stored = false;
    try {
      stored = await this.#putIf(put);
    } finally {
      if (!stored) this.#fences.delete(fenceKey);
    }
    if (!stored) throw new FenceConflictError(`partition ${change.partition}: the fence moved`);
    this.#fences.set(fenceKey, change.fence);
    const fenceBytes = itemSizeBytes(put.Item);
    const units = writeUnits(Math.max(fenceBytes, this.#fenceBytes.get(fenceKey) ?? 0), false);
    this.#fenceBytes.set(fenceKey, fenceBytes);
    usageMeter.recordComputedWrites(units, 0, { fence: units });
  }

  async putDeltas(puts: readonly PartialRecord[]): Promise<void> {
    for (const put of puts)
      if (!isDelta(put.sk)) throw new RangeError(`putDeltas takes deltas only, not ${put.sk}`);
    await this.#batchWrite(
      puts.map((Item) => ({ PutRequest: { Item } })),
      "deltas left unwritten",
    );
    const billed = deltaPutUnits(puts);
    usageMeter.recordComputedWrites(billed.units, billed.owedChange, billed.costByWindowKind);
  }

  async missingDeltas(puts: readonly PartialRecord[]): Promise<PartialRecord[]> {
    const stored = new Set<string>();
    const keys: Record<string, unknown>[] = puts.map((r) => ({ pk: r.pk, sk: r.sk }));
    for (const group of chunksOf(keys, BATCH_GET_KEYS))
      await untilProcessed(group, "deltas left unread", async (Keys) => {
        const res = await this.db.send(
          new BatchGetCommand({
            RequestItems: {
              [this.aggregatesTable]: { Keys, ProjectionExpression: "pk, sk", ConsistentRead: true },
            },
          }),
        );
        for (const item of res.Responses?.[this.aggregatesTable] ?? []) stored.add(`${item.pk}|${item.sk}`);
        return res.UnprocessedKeys?.[this.aggregatesTable]?.Keys ?? [];
      });
    return puts.filter((r) => !stored.has(`${r.pk}|${r.sk}`));
  }

  async putDeltasIfAbsent(puts: readonly PartialRecord[]): Promise<void> {
    for (const put of puts)
      if (!isDelta(put.sk)) throw new RangeError(`putDeltasIfAbsent takes deltas only, not ${put.sk}`);
    const written = await Promise.all(
      puts.map((Item) =>
        this.#putIf({
          TableName: this.aggregatesTable,
          Item,
          ConditionExpression: "attribute_not_exists(sk)",
        }),
      ),
    );
    // A put refused by its condition is billed too; only a stored one owes its deletion.
    const billed = deltaPutUnits(puts);
    const owed = deltaPutUnits(puts.filter((_, i) => written[i])).owedChange;
    usageMeter.recordComputedWrites(billed.units, owed, billed.costByWindowKind);
  }

  async extendDelta(put: PartialRecord, previous: { readonly through: number; readonly bytes: number }) {
    if (!isDelta(put.sk) || put.t === undefined)
      throw new RangeError(`extendDelta takes a slice's delta, not ${put.sk}`);
    const extended = await this.#putIf({
      TableName: this.aggregatesTable,
      Item: put,
      ConditionExpression: "t = :through",
      ExpressionAttributeValues: { ":through": previous.through },
    });
    if (!extended)
      throw new FenceConflictError(
        `partition ${put.p}: delta ${put.sk} no longer holds groups through offset ${previous.through}`,
      );
    const billed = extensionUnits(put, previous.bytes);
    usageMeter.recordComputedWrites(billed.units, billed.owedChange, billed.costByWindowKind);
  }

  async getDelta(key: PartialKey): Promise<PartialRecord | undefined> {
    const res = await this.db.send(
      new GetCommand({
        TableName: this.aggregatesTable,
        Key: { pk: key.pk, sk: key.sk },
        ConsistentRead: true,
      }),
    );
    return res.Item ? fromRow(res.Item as PartialRecord) : undefined;
  }

  /**
   * BatchWriteItems of at most 25 requests each, in parallel, each retrying what DynamoDB leaves
   * unprocessed.
   */
  async #batchWrite(requests: BatchRequest[], failure: string): Promise<void> {
    await Promise.all(
      chunksOf(requests, BATCH_WRITE_ITEMS).map((group) => this.#batchWriteOne(group, failure)),
    );
  }

  #batchWriteOne(requests: BatchRequest[], failure: string): Promise<void> {
    return untilProcessed(requests, failure, async (batch) => {
      const res = await this.db.send(
        new BatchWriteCommand({
          RequestItems: { [this.aggregatesTable]: batch },
          ReturnConsumedCapacity: "TOTAL",
        }),
      );
      for (const c of res.ConsumedCapacity ?? [])
        this.#writeUnits += c.WriteCapacityUnits ?? c.CapacityUnits ?? 0;
      return (res.UnprocessedItems?.[this.aggregatesTable] ?? []) as BatchRequest[];
    });
  }

  async apply(change: StoreChange): Promise<void> {
    const { fence } = change;
    const fencePut = { Put: this.#fencePut(change) };
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
    await this.#batchWrite(
      deltas.map((key) => ({ DeleteRequest: { Key: { pk: key.pk, sk: key.sk } } })),
      "absorbed deltas left undeleted",
    );
    const billed = discardedUnits(deltas);
    usageMeter.recordComputedWrites(billed, -billed);
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
          parseDirty(row.dirty).map(([key]) => key),
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
          const page = await this.#queryWindows(pk, lo, hi, start);
          for (const row of page.items) if (wanted.has(Number(row.ws))) rows.push(fromRow(row));
          start = page.next;
        } while (start);
        return rows;
      }),
    );
    return results.flat();
  }

  /** One page of a bucket's windows `lo`..`hi` (strongly consistent), items as the document client gives them. */
  async #queryWindows(
    pk: string,
    lo: string,
    hi: string,
    start: Record<string, unknown> | undefined,
  ): Promise<{ items: PartialRecord[]; next: Record<string, unknown> | undefined }> {
    const input = {
      TableName: this.aggregatesTable,
      KeyConditionExpression: "pk = :pk AND sk BETWEEN :lo AND :hi",
      ConsistentRead: true,
    };
    if (!this.raw) {
      const res = await this.db.send(
        new QueryCommand({
          ...input,
          ExpressionAttributeValues: { ":pk": pk, ":lo": lo, ":hi": hi },
          ExclusiveStartKey: start,
        }),
      );
      return { items: (res.Items ?? []) as PartialRecord[], next: res.LastEvaluatedKey };
    }
    const res = await this.raw.send(
      new RawQueryCommand({
        ...input,
        ExpressionAttributeValues: { ":pk": { S: pk }, ":lo": { S: lo }, ":hi": { S: hi } },
        ...(start ? { ExclusiveStartKey: marshall(start, MARSHALL_OPTIONS) } : {}),
      }),
    );
    return {
      items: (res.Items ?? []).map((item) => unmarshall(item) as PartialRecord),
      next: res.LastEvaluatedKey ? unmarshall(res.LastEvaluatedKey) : undefined,
    };
  }
}

const isDelta = (sk: string) => sk.includes("#d#");
/**
 * TransactWriteItems' limits (DynamoDB API reference, TransactWriteItems; Developer Guide,
 * "Quotas": transactions): at most 100 actions, whose items add up to at most 4 MB. Beyond, the
 * call fails with a ValidationException, however often it is retried.
 */
export const TRANSACT_MAX_ACTIONS = 100;
export const TRANSACT_MAX_BYTES = 4 * 1024 * 1024;
/** What a change's fence may take of the transaction: one item, so at most DynamoDB's 400 KB. */
const FENCE_RESERVE_BYTES = 400 * 1024;

/**
 * Whether `apply` can commit these puts and deletes with a fence in one transaction. Deletes
 * count by the size of the item they remove when known (DynamoDB does not say whether a delete
 * counts toward the 4 MB; counting it errs on the side that commits).
 */
export function fitsOneTransaction(puts: readonly PartialRecord[], deletes: readonly PartialKey[]): boolean {
  if (puts.length + deletes.length + 1 > TRANSACT_MAX_ACTIONS) return false;
  let bytes = FENCE_RESERVE_BYTES;
  for (const r of puts) bytes += itemSizeBytes(r);
  for (const d of deletes) bytes += d.bytes ?? Buffer.byteLength(d.pk) + Buffer.byteLength(d.sk);
  return bytes <= TRANSACT_MAX_BYTES;
}

/** BatchWriteItem's limit of requests per call, and BatchGetItem's of keys. */
const BATCH_WRITE_ITEMS = 25;
const BATCH_GET_KEYS = 100;
/** `items` cut into runs of at most `size`, in order. */
const chunksOf = <T>(items: readonly T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
/** Retries of the requests DynamoDB left unprocessed (throttling) before the batch fails. */
const BATCH_ATTEMPTS = 6;
/**
 * Sends `requests` by a batch operation, then what it left unprocessed, with exponential backoff,
 * as DynamoDB asks; fails after `BATCH_ATTEMPTS` retries.
 */
async function untilProcessed<T>(
  requests: T[],
  failure: string,
  send: (requests: T[]) => Promise<T[]>,
): Promise<void> {
  for (let attempt = 0; requests.length > 0; attempt++) {
    if (attempt > 0) {
      if (attempt > BATCH_ATTEMPTS) throw new Error(`${requests.length} ${failure}`);
      await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
    }
    requests = await send(requests);
  }
}
type BatchRequest = { PutRequest: { Item: object } } | { DeleteRequest: { Key: Record<string, unknown> } };
const stringifyPending = (p: PendingSlice) =>
  JSON.stringify({
    ...p,
    maxEventTime: storedInstant(p.maxEventTime),
    closesBefore: storedInstant(p.closesBefore),
  });
/**
 * The fence's dirty list as stored: deflated JSON. A fence is written at least twice a slice, and
 * its dirty list (a window key and a count for each window with deltas: some 20 under load) is most
 * of its bytes; as text it made the item about 1 KB, so many of its puts cost 2 units instead of 1.
 */
export const storedDirty = (dirty: ReadonlyMap<string, number>): Uint8Array =>
  deflateRawSync(JSON.stringify([...dirty]));
const dirtySchema = z.array(z.tuple([z.string(), z.number().int().nonnegative()]));
/** A stored dirty list back: deflated JSON, or the text JSON of fences written before session 9. */
export function parseDirty(stored: string | Uint8Array | undefined): [string, number][] {
  if (stored === undefined) return [];
  const text = typeof stored === "string" ? stored : inflateRawSync(stored).toString("utf8");
  return dirtySchema.parse(JSON.parse(text));
}
/** A stored instant: a number, or ±Infinity as text. */
const storedInstantSchema = z.union([z.number(), z.enum(["Infinity", "-Infinity"])]).transform(Number);
const pendingSchema = z.object({
  first: z.number().int().nonnegative(),
  records: z.number().int().positive(),
  maxEventTime: storedInstantSchema,
  closesBefore: storedInstantSchema,
  duplicates: z.array(z.number().int().nonnegative()),
  extended: z.array(z.tuple([z.string(), z.number().int().nonnegative()])).optional(),
});
/** A fence's claim as stored; a malformed one fails loudly rather than being taken as none. */
const parsePending = (text: string): PendingSlice => pendingSchema.parse(JSON.parse(text));
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

/**
 * Write units of a slice's deltas put outside a transaction (1 per KB of each, rounded up), and
 * what they owe for their later deletion (as much again).
 */
export function deltaPutUnits(puts: readonly PartialRecord[]): {
  units: number;
  owedChange: number;
  costByWindowKind: Record<string, number>;
} {
  let units = 0;
  const costByWindowKind: Record<string, number> = {};
  for (const put of puts) {
    const paid = writeUnits(itemSizeBytes(put), false);
    units += paid;
    const kind = windowKindOf(put.pk);
    costByWindowKind[kind] = (costByWindowKind[kind] ?? 0) + 2 * paid;
  }
  return { units, owedChange: units, costByWindowKind };
}

/**
 * Write units of a put that extends a stored delta of `previousBytes` (the larger of the two, 1
 * per KB: a plain put), and the change in what the delta owes for its later deletion (it is
 * deleted at its new size).
 */
export function extensionUnits(
  put: PartialRecord,
  previousBytes: number,
): { units: number; owedChange: number; costByWindowKind: Record<string, number> } {
  const bytes = itemSizeBytes(put);
  const units = writeUnits(Math.max(bytes, previousBytes), false);
  const owedChange = writeUnits(bytes, false) - writeUnits(previousBytes, false);
  return { units, owedChange, costByWindowKind: { [windowKindOf(put.pk)]: units + owedChange } };
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
    ...(row.t === undefined ? {} : { t: Number(row.t) }),
  };
}

import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
} from "@aws-sdk/lib-dynamodb";
import type { Granularity, GroupPartial, WindowItem } from "../stream/fold.ts";
import { itemId } from "../stream/fold.ts";
import { INITIAL_WATERMARK, type WatermarkState } from "../stream/watermark.ts";

/** A write lost the race against another writer of the same item: retry the batch. */
export class FenceConflictError extends Error {
  override name = "FenceConflictError";
}

/** Partial aggregates and stream-processor state in DynamoDB (the aggregates and stream-state tables). */
export interface WindowStore {
  getMany(keys: readonly { pk: string; sk: string }[]): Promise<Map<string, WindowItem>>;
  /** Every partial (all source partitions) of the given windows. */
  readWindows(pks: readonly string[]): Promise<WindowItem[]>;
  getWatermark(topic: string, partition: number): Promise<WatermarkState>;
  /**
   * Writes the items (each fenced on the `last_offset` it was read with) and then the
   * partition's watermark, in as few round trips as the store allows; all-or-nothing per round trip.
   */
  commit(
    items: readonly { item: WindowItem; expected: number | undefined }[],
    watermark: { topic: string; partition: number; state: WatermarkState },
  ): Promise<void>;
}

interface Row {
  pk: string;
  sk: string;
  rule_id: string;
  granularity: Granularity;
  window_start: number;
  partition: number;
  last_offset: number;
  groups: Record<string, GroupPartial>;
  expires_at: number;
}

// Map keys may not be empty in DynamoDB; a rule without group_by has the group "".
const encodeGroups = (groups: Record<string, GroupPartial>) =>
  Object.fromEntries(Object.entries(groups).map(([k, v]) => [`g:${k}`, v]));
const decodeGroups = (groups: Record<string, GroupPartial>) =>
  Object.fromEntries(Object.entries(groups ?? {}).map(([k, v]) => [k.slice(2), normalize(v)]));

function normalize(v: GroupPartial): GroupPartial {
  // The document client returns numbers as numbers and binary as Uint8Array already.
  return v;
}

function fromRow(r: Row): WindowItem {
  return {
    pk: r.pk,
    sk: r.sk,
    ruleId: r.rule_id,
    granularity: r.granularity,
    windowStart: Number(r.window_start),
    partition: Number(r.partition),
    lastOffset: Number(r.last_offset),
    groups: decodeGroups(r.groups),
    expiresAt: Number(r.expires_at),
  };
}

function toRow(i: WindowItem): Row {
  return {
    pk: i.pk,
    sk: i.sk,
    rule_id: i.ruleId,
    granularity: i.granularity,
    window_start: i.windowStart,
    partition: i.partition,
    last_offset: i.lastOffset,
    groups: encodeGroups(i.groups),
    expires_at: i.expiresAt,
  };
}

export class DynamoWindowStore implements WindowStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly aggregatesTable: string,
    private readonly stateTable: string,
  ) {}

  async getMany(keys: readonly { pk: string; sk: string }[]): Promise<Map<string, WindowItem>> {
    const out = new Map<string, WindowItem>();
    const unique = [...new Map(keys.map((k) => [itemId(k.pk, k.sk), { pk: k.pk, sk: k.sk }])).values()];
    const chunks: { pk: string; sk: string }[][] = [];
    for (let i = 0; i < unique.length; i += 100) chunks.push(unique.slice(i, i + 100));
    await Promise.all(
      chunks.map(async (chunk) => {
        let pending: { pk: string; sk: string }[] = chunk;
        for (let attempt = 0; pending.length > 0; attempt++) {
          if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 25 * 2 ** attempt)));
          const res = await this.db.send(
            new BatchGetCommand({
              RequestItems: { [this.aggregatesTable]: { Keys: pending, ConsistentRead: true } },
            }),
          );
          for (const row of (res.Responses?.[this.aggregatesTable] ?? []) as Row[])
            out.set(itemId(row.pk, row.sk), fromRow(row));
          pending = (res.UnprocessedKeys?.[this.aggregatesTable]?.Keys ?? []) as { pk: string; sk: string }[];
        }
      }),
    );
    return out;
  }

  /**
   * One DynamoDB transaction per 99 items (the limit is 100 actions), the watermark riding in the
   * last: a batch applies in one round trip instead of one per item, and a partially applied
   * batch can only be cut between transactions, where the offset fence makes a retry exact.
   */
  async commit(
    items: readonly { item: WindowItem; expected: number | undefined }[],
    watermark: { topic: string; partition: number; state: WatermarkState },
  ): Promise<void> {
    const puts = items.map(({ item, expected }) => ({ Put: this.#fencedPut(item, expected) }));
    const chunks: (typeof puts)[] = [];
    for (let i = 0; i < puts.length; i += 99) chunks.push(puts.slice(i, i + 99));
    if (chunks.length === 0) chunks.push([]);
    for (const [i, chunk] of chunks.entries()) {
      const last = i === chunks.length - 1;
      const actions = [
        ...chunk,
        ...(last && Number.isFinite(watermark.state.maxEventTime)
          ? [{ Put: this.#watermarkPut(watermark) }]
          : []),
      ];
      if (actions.length === 0) continue;
      try {
        await this.db.send(new TransactWriteCommand({ TransactItems: actions }));
      } catch (error) {
        if (error instanceof TransactionCanceledException) {
          throw new FenceConflictError(
            `batch commit cancelled: ${JSON.stringify(error.CancellationReasons?.map((r) => r.Code))}`,
          );
        }
        throw error;
      }
    }
  }

  /** The item, on the condition that its stored `last_offset` is still `expected` (undefined: absent). */
  #fencedPut(item: WindowItem, expected: number | undefined) {
    return {
      TableName: this.aggregatesTable,
      Item: toRow(item),
      ...(expected === undefined
        ? { ConditionExpression: "attribute_not_exists(pk)" }
        : {
            ConditionExpression: "last_offset = :expected",
            ExpressionAttributeValues: { ":expected": expected },
          }),
    };
  }

  /** The watermark, never moved backwards (a stale retry must not reopen closed windows). */
  #watermarkPut(w: { topic: string; partition: number; state: WatermarkState }) {
    return {
      TableName: this.stateTable,
      Item: {
        pk: `watermark#${w.topic}`,
        sk: `p${w.partition}`,
        max_event_time: w.state.maxEventTime,
        last_offset: w.state.lastOffset,
      },
      ConditionExpression: "attribute_not_exists(pk) OR last_offset <= :o",
      ExpressionAttributeValues: { ":o": w.state.lastOffset },
    };
  }

  async readWindows(pks: readonly string[]): Promise<WindowItem[]> {
    const results = await Promise.all(
      pks.map(async (pk) => {
        const rows: WindowItem[] = [];
        let start: Record<string, unknown> | undefined;
        do {
          const res = await this.db.send(
            new QueryCommand({
              TableName: this.aggregatesTable,
              KeyConditionExpression: "pk = :pk",
              ExpressionAttributeValues: { ":pk": pk },
              ExclusiveStartKey: start,
            }),
          );
          for (const row of (res.Items ?? []) as Row[]) rows.push(fromRow(row));
          start = res.LastEvaluatedKey;
        } while (start);
        return rows;
      }),
    );
    return results.flat();
  }

  async getWatermark(topic: string, partition: number): Promise<WatermarkState> {
    const res = await this.db.send(
      new GetCommand({
        TableName: this.stateTable,
        Key: { pk: `watermark#${topic}`, sk: `p${partition}` },
        ConsistentRead: true,
      }),
    );
    const item = res.Item as { max_event_time?: number; last_offset?: number } | undefined;
    if (!item || item.max_event_time === undefined) return INITIAL_WATERMARK;
    return { maxEventTime: Number(item.max_event_time), lastOffset: Number(item.last_offset ?? -1) };
  }
}

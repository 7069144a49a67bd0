import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
} from "@aws-sdk/lib-dynamodb";

/**
 * Partial aggregates in DynamoDB. Each item belongs to one (rule, group, window) and one source
 * Kafka partition, so exactly one consumer writes it; `last_offset` is the highest offset of
 * that partition already folded into the item. Writers read the item, fold in only records with
 * a higher offset, and write back on the condition that nobody moved `last_offset` meanwhile:
 * replays, retries and crashes mid-batch therefore change no number.
 */
export interface PartialValue {
  count: number;
  sum?: number;
  min?: number;
  max?: number;
  /** Serialized unique-count sketch. */
  hll?: Uint8Array;
}

export interface StoredPartial {
  readonly pk: string;
  readonly sk: string;
  readonly lastOffset: number;
  readonly value: PartialValue;
  /** Epoch seconds after which DynamoDB TTL removes the item. */
  readonly expiresAt: number;
  /** Denormalized descriptors for readers (rule id, group, window start, granularity…). */
  readonly attributes: Readonly<Record<string, string | number>>;
}

export class FenceConflictError extends Error {
  override name = "FenceConflictError";
}

export interface AggregateStore {
  getMany(keys: readonly { pk: string; sk: string }[]): Promise<Map<string, StoredPartial>>;
  /** Writes `item` if the stored `last_offset` is still `expectedLastOffset` (undefined: item absent). */
  putFenced(item: StoredPartial, expectedLastOffset: number | undefined): Promise<void>;
  /** Every partial (all source partitions) of the given windows. */
  readWindows(pks: readonly string[]): Promise<StoredPartial[]>;
}

export const itemKey = (pk: string, sk: string) => `${pk}\u0000${sk}`;

interface Row {
  pk: string;
  sk: string;
  last_offset: number;
  c: number;
  s?: number;
  mn?: number;
  mx?: number;
  h?: Uint8Array;
  expires_at: number;
  [attribute: string]: unknown;
}

const RESERVED = new Set(["pk", "sk", "last_offset", "c", "s", "mn", "mx", "h", "expires_at"]);

function fromRow(row: Row): StoredPartial {
  const attributes: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(row)) {
    if (!RESERVED.has(k) && (typeof v === "string" || typeof v === "number")) attributes[k] = v;
  }
  const value: PartialValue = { count: row.c };
  if (row.s !== undefined) value.sum = row.s;
  if (row.mn !== undefined) value.min = row.mn;
  if (row.mx !== undefined) value.max = row.mx;
  if (row.h !== undefined) value.hll = row.h;
  return {
    pk: row.pk,
    sk: row.sk,
    lastOffset: row.last_offset,
    value,
    expiresAt: row.expires_at,
    attributes,
  };
}

function toRow(item: StoredPartial): Row {
  return {
    ...item.attributes,
    pk: item.pk,
    sk: item.sk,
    last_offset: item.lastOffset,
    c: item.value.count,
    s: item.value.sum,
    mn: item.value.min,
    mx: item.value.max,
    h: item.value.hll,
    expires_at: item.expiresAt,
  };
}

export class DynamoAggregateStore implements AggregateStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async getMany(keys: readonly { pk: string; sk: string }[]): Promise<Map<string, StoredPartial>> {
    const out = new Map<string, StoredPartial>();
    const unique = [...new Map(keys.map((k) => [itemKey(k.pk, k.sk), { pk: k.pk, sk: k.sk }])).values()];
    const chunks: { pk: string; sk: string }[][] = [];
    for (let i = 0; i < unique.length; i += 100) chunks.push(unique.slice(i, i + 100));
    await Promise.all(
      chunks.map(async (chunk) => {
        let request: Record<string, { pk: string; sk: string }[]> | undefined = { [this.tableName]: chunk };
        for (let attempt = 0; request && Object.keys(request).length > 0; attempt++) {
          if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 25 * 2 ** attempt)));
          const res = await this.db.send(
            new BatchGetCommand({
              RequestItems: Object.fromEntries(
                Object.entries(request).map(([t, k]) => [t, { Keys: k, ConsistentRead: true }]),
              ),
            }),
          );
          for (const row of (res.Responses?.[this.tableName] ?? []) as Row[])
            out.set(itemKey(row.pk, row.sk), fromRow(row));
          const unprocessed = res.UnprocessedKeys?.[this.tableName]?.Keys as
            | { pk: string; sk: string }[]
            | undefined;
          request = unprocessed?.length ? { [this.tableName]: unprocessed } : undefined;
        }
      }),
    );
    return out;
  }

  async putFenced(item: StoredPartial, expectedLastOffset: number | undefined): Promise<void> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: toRow(item),
          ...(expectedLastOffset === undefined
            ? { ConditionExpression: "attribute_not_exists(pk)" }
            : {
                ConditionExpression: "last_offset = :expected",
                ExpressionAttributeValues: { ":expected": expectedLastOffset },
              }),
        }),
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) {
        throw new FenceConflictError(`${item.pk}/${item.sk} changed since it was read`);
      }
      throw error;
    }
  }

  async readWindows(pks: readonly string[]): Promise<StoredPartial[]> {
    const results = await Promise.all(
      pks.map(async (pk) => {
        const rows: StoredPartial[] = [];
        let start: Record<string, unknown> | undefined;
        do {
          const res = await this.db.send(
            new QueryCommand({
              TableName: this.tableName,
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
}

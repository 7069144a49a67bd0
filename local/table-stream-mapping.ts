import type { AttributeValue as SdkAttributeValue } from "@aws-sdk/client-dynamodb";
import {
  DescribeStreamCommand,
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListStreamsCommand,
  type _Record as StreamRecord,
} from "@aws-sdk/client-dynamodb-streams";
import type { DynamoDBRecord, DynamoDBStreamEvent, AttributeValue as LambdaAttributeValue } from "aws-lambda";
import { api, type TableStreamMappingSpec } from "../lib/topology.ts";

/**
 * Emulates a DynamoDB Streams event-source mapping against DynamoDB Local's stream API: polls
 * every shard, invokes the function with `DynamoDBStreamEvent`s of at most `batchSize` records,
 * advances a shard only after success, retries up to `maximumRetryAttempts`, and honours
 * `batchItemFailures` (sequence numbers). A batch that still fails is never skipped silently: it
 * goes to the on-failure destination with AWS's invocation record (`DDBStreamBatchInfo`: shard,
 * first and last sequence numbers, so it can be re-read) plus, locally, the records themselves;
 * it is counted in `stats` and logged with its keys.
 */
export interface StreamFailureRecord {
  readonly requestContext: {
    readonly condition: "RetryAttemptsExhausted";
    readonly approximateInvokeCount: number;
  };
  readonly responseContext: { readonly statusCode: number; readonly functionError: string };
  readonly version: "1.0";
  readonly timestamp: string;
  readonly DDBStreamBatchInfo: {
    readonly shardId: string;
    readonly startSequenceNumber: string;
    readonly endSequenceNumber: string;
    readonly batchSize: number;
    readonly streamArn: string;
  };
  readonly records: DynamoDBRecord[];
}
export interface TableStreamMappingOptions {
  readonly spec: Pick<
    TableStreamMappingSpec,
    | "id"
    | "batchSize"
    | "maximumBatchingWindowSeconds"
    | "startingPosition"
    | "maximumRetryAttempts"
    | "reportBatchItemFailures"
  >;
  readonly client: DynamoDBStreamsClient;
  readonly tableName: string;
  readonly region: string;
  readonly invoke: (event: DynamoDBStreamEvent) => Promise<unknown>;
  /** The on-failure destination (locally a Kafka topic; an SQS queue in AWS). */
  readonly onFailure: (failure: StreamFailureRecord) => Promise<void>;
  /**
   * How long a pass over the shards that delivered nothing waits before the next (default 250 ms:
   * AWS documents that Lambda polls each shard of a DynamoDB stream about 4 times a second).
   */
  readonly pollIntervalMs?: number;
  /** How often DescribeStream looks for new shards besides when a shard closes (default 10 s). */
  readonly shardRefreshMs?: number;
  readonly log?: (line: string) => void;
}

interface ShardState {
  iterator: string | undefined;
  closed: boolean;
  /** Records read but not yet delivered: the batching window is still open. */
  gathered: StreamRecord[];
  /** When the first gathered record was read. */
  gatheringSince: number;
}

export class LocalTableStreamMapping {
  readonly stats = { invocations: 0, failedInvocations: 0, recordsDelivered: 0, recordsSentToOnFailure: 0 };
  readonly #o: TableStreamMappingOptions;
  readonly #shards = new Map<string, ShardState>();
  #streamArn = "";
  #running = false;
  #loop: Promise<void> | undefined;
  #firstDescribe = true;

  constructor(options: TableStreamMappingOptions) {
    this.#o = options;
  }

  async start(): Promise<void> {
    const streams = await this.#o.client.send(new ListStreamsCommand({ TableName: this.#o.tableName }));
    const arn = streams.Streams?.[0]?.StreamArn;
    if (!arn) throw new Error(`table ${this.#o.tableName} has no stream`);
    this.#streamArn = arn;
    await this.#refreshShards();
    this.#running = true;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  async #refreshShards(): Promise<void> {
    const description = await this.#o.client.send(new DescribeStreamCommand({ StreamArn: this.#streamArn }));
    for (const shard of description.StreamDescription?.Shards ?? []) {
      const id = shard.ShardId;
      if (!id || this.#shards.has(id)) continue;
      // Shards that exist at start begin at the configured position; later ones from their start.
      const type =
        this.#firstDescribe && this.#o.spec.startingPosition === "LATEST" ? "LATEST" : "TRIM_HORIZON";
      const it = await this.#o.client.send(
        new GetShardIteratorCommand({ StreamArn: this.#streamArn, ShardId: id, ShardIteratorType: type }),
      );
      this.#shards.set(id, { iterator: it.ShardIterator, closed: false, gathered: [], gatheringSince: 0 });
    }
    this.#firstDescribe = false;
  }

  async #run(): Promise<void> {
    let lastRefresh = Date.now();
    while (this.#running) {
      let delivered = 0;
      /** A shard closed in this pass: its children (a rollover or split) are looked for at once. */
      let closedNow = false;
      const windowMs = this.#o.spec.maximumBatchingWindowSeconds * 1000;
      for (const [id, shard] of this.#shards) {
        if (!this.#running) break;
        // As Lambda does, a batch is invoked once it is full or the batching window since its
        // first record has passed (a closed shard hands over what it gathered).
        const due = () =>
          shard.gathered.length > 0 &&
          (shard.gathered.length >= this.#o.spec.batchSize ||
            Date.now() - shard.gatheringSince >= windowMs ||
            shard.closed);
        if (!shard.closed && shard.iterator && shard.gathered.length < this.#o.spec.batchSize) {
          try {
            const res = await this.#o.client.send(
              new GetRecordsCommand({
                ShardIterator: shard.iterator,
                Limit: this.#o.spec.batchSize - shard.gathered.length,
              }),
            );
            const records = res.Records ?? [];
            if (records.length > 0) {
              if (shard.gathered.length === 0) shard.gatheringSince = Date.now();
              shard.gathered.push(...records);
            }
            shard.iterator = res.NextShardIterator;
            if (!shard.iterator) {
              shard.closed = true;
              closedNow = true;
            }
          } catch (error) {
            if ((error as { name?: string }).name === "TrimmedDataAccessException") {
              // The iterator points before the oldest record still kept: as Lambda does, resume at the
              // trim horizon. DynamoDB Local also answers this for a LATEST iterator taken on a shard
              // that was still empty, forever, so without this a fresh table is never delivered.
              shard.iterator = (
                await this.#o.client
                  .send(
                    new GetShardIteratorCommand({
                      StreamArn: this.#streamArn,
                      ShardId: id,
                      ShardIteratorType: "TRIM_HORIZON",
                    }),
                  )
                  .catch(() => ({ ShardIterator: shard.iterator }))
              ).ShardIterator;
              continue;
            }
            this.#o.log?.(`[stream ${this.#o.spec.id}] shard ${id}: ${String(error)}`);
          }
        }
        if (due()) {
          // As Lambda does, a batch is also cut at the invocation payload quota (6 MB): locally a
          // batch of deltas of long group keys was a 101 MB event AWS would never deliver.
          const records = shard.gathered.map((r) => this.#toLambdaRecord(r));
          const taken = recordsWithinPayload(records, api.payload.lambdaInvokeBytes);
          shard.gathered = shard.gathered.slice(taken);
          if (shard.gathered.length > 0) shard.gatheringSince = 0; // the rest is due at once
          await this.#deliver(records.slice(0, taken), id);
          delivered += taken;
        }
      }
      // New shards appear when one closes (DynamoDB rolls a shard over, about every 4 hours in
      // AWS): looked for then, and otherwise every `shardRefreshMs`. Every 2 s, DescribeStream was
      // one DynamoDB Local request in twenty of the stream's, answering the same shards each time.
      if (closedNow || Date.now() - lastRefresh > (this.#o.shardRefreshMs ?? 10_000)) {
        lastRefresh = Date.now();
        await this.#refreshShards().catch((error: unknown) =>
          this.#o.log?.(`[stream ${this.#o.spec.id}] ${String(error)}`),
        );
      }
      // As Lambda does, about 4 polls a second per shard (every 100 ms before, 2.5 times the
      // GetRecords, each a read of DynamoDB Local's stream table on the cores the pipeline shares).
      if (delivered === 0) await new Promise((r) => setTimeout(r, this.#o.pollIntervalMs ?? 250));
    }
  }

  async #deliver(records: DynamoDBRecord[], shardId: string): Promise<void> {
    let pending = records;
    let lastError = "";
    let attempts = 0;
    for (let attempt = 0; attempt <= this.#o.spec.maximumRetryAttempts && pending.length > 0; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** (attempt - 1))));
      attempts++;
      this.stats.invocations++;
      try {
        const result = (await this.#o.invoke({ Records: pending })) as
          | { batchItemFailures?: { itemIdentifier?: string }[] }
          | undefined;
        const failures = this.#o.spec.reportBatchItemFailures ? (result?.batchItemFailures ?? []) : [];
        if (failures.length === 0) {
          this.stats.recordsDelivered += pending.length;
          return;
        }
        this.stats.failedInvocations++;
        lastError = "batchItemFailures";
        // Sequence numbers exceed 2^53: compared as BigInt (Math.min cannot take them).
        let lowest = BigInt(failures[0]?.itemIdentifier ?? "0");
        for (const f of failures) {
          const sequence = BigInt(f.itemIdentifier ?? "0");
          if (sequence < lowest) lowest = sequence;
        }
        pending = pending.filter((r) => BigInt(r.dynamodb?.SequenceNumber ?? "0") >= lowest);
      } catch (error) {
        this.stats.failedInvocations++;
        lastError = String(error);
        this.#o.log?.(`[stream ${this.#o.spec.id}] attempt ${attempt + 1} failed: ${lastError}`);
      }
    }
    if (pending.length === 0) return;
    const keys = pending.map((r) => JSON.stringify(r.dynamodb?.Keys ?? {}));
    this.#o.log?.(
      `[stream ${this.#o.spec.id}] ${pending.length} record(s) sent to the on-failure destination after ${attempts} attempts (${lastError}); keys: ${keys.slice(0, 20).join(" ")}${keys.length > 20 ? " …" : ""}`,
    );
    this.stats.recordsSentToOnFailure += pending.length;
    // Delivered to the destination or the shard does not advance: a failure is never lost.
    await this.#o.onFailure({
      requestContext: { condition: "RetryAttemptsExhausted", approximateInvokeCount: attempts },
      responseContext: { statusCode: 200, functionError: lastError.slice(0, 1000) },
      version: "1.0",
      timestamp: new Date().toISOString(),
      DDBStreamBatchInfo: {
        shardId,
        startSequenceNumber: pending[0]?.dynamodb?.SequenceNumber ?? "",
        endSequenceNumber: pending.at(-1)?.dynamodb?.SequenceNumber ?? "",
        batchSize: pending.length,
        streamArn: this.#streamArn,
      },
      records: pending,
    });
  }

  #toLambdaRecord(r: StreamRecord): DynamoDBRecord {
    const d = r.dynamodb;
    return {
      eventID: r.eventID,
      eventName: r.eventName,
      eventVersion: r.eventVersion ?? "1.1",
      eventSource: "aws:dynamodb",
      awsRegion: this.#o.region,
      eventSourceARN: this.#streamArn,
      dynamodb: {
        ...(d?.ApproximateCreationDateTime
          ? { ApproximateCreationDateTime: Math.floor(d.ApproximateCreationDateTime.getTime() / 1000) }
          : {}),
        ...(d?.Keys ? { Keys: toLambdaImage(d.Keys) } : {}),
        ...(d?.NewImage ? { NewImage: toLambdaImage(d.NewImage) } : {}),
        ...(d?.OldImage ? { OldImage: toLambdaImage(d.OldImage) } : {}),
        SequenceNumber: d?.SequenceNumber,
        SizeBytes: d?.SizeBytes,
        StreamViewType: d?.StreamViewType,
      },
    };
  }
}

/**
 * How many of `records`, from the first, make a `DynamoDBStreamEvent` of at most `maxBytes` of
 * JSON: at least one (a single record is at most DynamoDB's 400 KB item, twice, as old and new
 * image).
 */
export function recordsWithinPayload(records: readonly DynamoDBRecord[], maxBytes: number): number {
  let bytes = Buffer.byteLength('{"Records":[]}');
  let taken = 0;
  for (const record of records) {
    bytes += Buffer.byteLength(JSON.stringify(record)) + (taken > 0 ? 1 : 0);
    if (taken > 0 && bytes > maxBytes) break;
    taken++;
  }
  return taken;
}

/**
 * An image as Lambda hands it to the function: Lambda's event is JSON, so binary attributes (`B`,
 * `BS`, also inside `M` and `L`) are base64 text, not the bytes the Streams SDK client decoded
 * them to. Passing the bytes on made the stats publisher work here and publish nothing in AWS.
 */
export function toLambdaImage(
  image: Record<string, SdkAttributeValue>,
): Record<string, LambdaAttributeValue> {
  const out: Record<string, LambdaAttributeValue> = {};
  for (const [name, value] of Object.entries(image)) out[name] = toLambdaValue(value);
  return out;
}

function toLambdaValue(value: SdkAttributeValue): LambdaAttributeValue {
  if (value.B !== undefined) return { B: Buffer.from(value.B).toString("base64") };
  if (value.BS !== undefined) return { BS: value.BS.map((b) => Buffer.from(b).toString("base64")) };
  if (value.M !== undefined) return { M: toLambdaImage(value.M) };
  if (value.L !== undefined) return { L: value.L.map(toLambdaValue) };
  // S, N, SS, NS, BOOL and NULL have the same shape in the SDK and in Lambda's JSON.
  return value as LambdaAttributeValue;
}

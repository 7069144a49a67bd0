import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { S3Client } from "@aws-sdk/client-s3";
import { z } from "zod";

/**
 * Process-wide counters of what this process asked of DynamoDB and S3: consumed read/write
 * capacity units (from `ReturnConsumedCapacity`) and requests per operation. They are what AWS
 * bills for, so `npm run bench` turns them into units and requests per million events instead
 * of estimating. Attached to every client `createDynamoDb`/`createS3` builds; the cost is a few
 * additions per request.
 */
export const UsageSnapshotSchema = z.object({
  dynamodb: z.object({
    readUnits: z.number(),
    writeUnits: z.number(),
    /** Calls per operation (`TransactWriteItems`, `Query`, …), failed ones included. */
    requests: z.record(z.string(), z.number()),
    /**
     * Write units of the aggregator's transactions by DynamoDB's billing rule (2 units per KB of
     * each item, rounded up per item), computed by the writer from the items it puts and deletes.
     * DynamoDB Local reports transactions by a rule of its own (test/integration/dynamodb-item-size.test.ts),
     * so `writeUnits` is what the server said and this is what DynamoDB bills.
     */
    computedWriteUnits: z.number(),
    /**
     * Write units still owed for delta items written and not yet deleted: a compaction later
     * deletes each one, billed like its put. Goes up with every delta put, down with every delta
     * deleted, so a period's change is what its deltas will still cost.
     */
    owedWriteUnits: z.number(),
    /**
     * `computedWriteUnits + owedWriteUnits` by `<rule key>#<m|h>` (and `fence`): which rule's
     * windows the write units go to.
     */
    costByWindowKind: z.record(z.string(), z.number()),
  }),
  s3: z.object({ requests: z.record(z.string(), z.number()) }),
});
export type UsageSnapshot = z.infer<typeof UsageSnapshotSchema>;

export const emptyUsage = (): UsageSnapshot => ({
  dynamodb: {
    readUnits: 0,
    writeUnits: 0,
    requests: {},
    computedWriteUnits: 0,
    owedWriteUnits: 0,
    costByWindowKind: {},
  },
  s3: { requests: {} },
});

function combine(a: Record<string, number>, b: Record<string, number>, sign: 1 | -1): Record<string, number> {
  const out: Record<string, number> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + sign * v;
  return out;
}

function merge(a: UsageSnapshot, b: UsageSnapshot, sign: 1 | -1): UsageSnapshot {
  return {
    dynamodb: {
      readUnits: a.dynamodb.readUnits + sign * b.dynamodb.readUnits,
      writeUnits: a.dynamodb.writeUnits + sign * b.dynamodb.writeUnits,
      requests: combine(a.dynamodb.requests, b.dynamodb.requests, sign),
      computedWriteUnits: a.dynamodb.computedWriteUnits + sign * b.dynamodb.computedWriteUnits,
      owedWriteUnits: a.dynamodb.owedWriteUnits + sign * b.dynamodb.owedWriteUnits,
      costByWindowKind: combine(a.dynamodb.costByWindowKind, b.dynamodb.costByWindowKind, sign),
    },
    s3: { requests: combine(a.s3.requests, b.s3.requests, sign) },
  };
}

export const addUsage = (a: UsageSnapshot, b: UsageSnapshot) => merge(a, b, 1);
/** What happened between two snapshots of the same meter(s): `later − earlier`. */
export const usageSince = (later: UsageSnapshot, earlier: UsageSnapshot) => merge(later, earlier, -1);

/** S3 operations billed as PUT-class requests (PUT, COPY, POST, LIST). */
const S3_PUT_CLASS = new Set([
  "PutObject",
  "CopyObject",
  "CreateMultipartUpload",
  "UploadPart",
  "CompleteMultipartUpload",
  "ListObjectsV2",
  "ListObjects",
]);
/** S3 requests billed at the PUT-class rate. */
export const s3PutClassRequests = (u: UsageSnapshot) =>
  Object.entries(u.s3.requests).reduce((n, [op, v]) => n + (S3_PUT_CLASS.has(op) ? v : 0), 0);

export class UsageMeter {
  private state = emptyUsage();

  recordDynamoDb(operation: string, units: { read: number; write: number }): void {
    const d = this.state.dynamodb;
    d.readUnits += units.read;
    d.writeUnits += units.write;
    d.requests[operation] = (d.requests[operation] ?? 0) + 1;
  }

  /** A committed write's units by DynamoDB's per-item rule, and the change in units owed. */
  recordComputedWrites(
    units: number,
    owedChange: number,
    costByWindowKind: Record<string, number> = {},
  ): void {
    const d = this.state.dynamodb;
    d.computedWriteUnits += units;
    d.owedWriteUnits += owedChange;
    d.costByWindowKind = combine(d.costByWindowKind, costByWindowKind, 1);
  }

  recordS3(operation: string): void {
    const r = this.state.s3.requests;
    r[operation] = (r[operation] ?? 0) + 1;
  }

  snapshot(): UsageSnapshot {
    return structuredClone(this.state);
  }
}

/** The meter of this process. */
export const usageMeter = new UsageMeter();

/** Operations that accept `ReturnConsumedCapacity`, and whether their units are write units. */
const CAPACITY_OPERATIONS: Readonly<Record<string, "read" | "write">> = {
  GetItem: "read",
  BatchGetItem: "read",
  Query: "read",
  Scan: "read",
  TransactGetItems: "read",
  PutItem: "write",
  UpdateItem: "write",
  DeleteItem: "write",
  BatchWriteItem: "write",
  TransactWriteItems: "write",
};

const ConsumedCapacitySchema = z.object({
  CapacityUnits: z.number().optional(),
  ReadCapacityUnits: z.number().optional(),
  WriteCapacityUnits: z.number().optional(),
});
const ConsumedCapacityOutput = z.object({
  ConsumedCapacity: z.union([ConsumedCapacitySchema, z.array(ConsumedCapacitySchema)]).optional(),
});

/** Read and write units of one response (one table's entry or a list of them, per table). */
export function unitsOf(output: unknown, kind: "read" | "write"): { read: number; write: number } {
  const parsed = ConsumedCapacityOutput.safeParse(output);
  const entries = parsed.success ? [parsed.data.ConsumedCapacity ?? []].flat() : [];
  const units = { read: 0, write: 0 };
  for (const c of entries) {
    if (c.ReadCapacityUnits !== undefined || c.WriteCapacityUnits !== undefined) {
      units.read += c.ReadCapacityUnits ?? 0;
      units.write += c.WriteCapacityUnits ?? 0;
    } else units[kind] += c.CapacityUnits ?? 0;
  }
  return units;
}

const operationOf = (commandName: unknown) =>
  typeof commandName === "string" ? commandName.replace(/Command$/, "") : "unknown";

/**
 * Meters a DynamoDB client (and every `DynamoDBDocumentClient` built on it: they share the
 * middleware stack). Operations that can report consumed capacity are asked to (`TOTAL`) unless
 * the caller already chose a mode; a caller that asked keeps its `ConsumedCapacity` untouched.
 */
export function meterDynamoDb(client: DynamoDBClient, meter: UsageMeter = usageMeter): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = operationOf(context.commandName);
      const kind = CAPACITY_OPERATIONS[operation];
      const input: Record<string, unknown> = { ...args.input };
      if (kind && input.ReturnConsumedCapacity === undefined) input.ReturnConsumedCapacity = "TOTAL";
      let output: unknown;
      try {
        const result = await next({ ...args, input: input as typeof args.input });
        output = result.output;
        return result;
      } finally {
        // A failed call (a cancelled transaction, a throttle) is still a request; its units are
        // not reported to the caller, so they are not counted here either.
        meter.recordDynamoDb(operation, kind ? unitsOf(output, kind) : { read: 0, write: 0 });
      }
    },
    { step: "initialize", name: "tidemarkUsageMeter", override: true },
  );
}

/** Meters an S3 client: one count per call and operation (`PutObject`, `GetObject`, …). */
export function meterS3(client: S3Client, meter: UsageMeter = usageMeter): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      try {
        return await next(args);
      } finally {
        meter.recordS3(operationOf(context.commandName));
      }
    },
    { step: "initialize", name: "tidemarkUsageMeter", override: true },
  );
}

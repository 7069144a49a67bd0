import { promisify } from "node:util";
import { gunzip, gzip } from "node:zlib";
import { GetObjectCommand, NoSuchKey, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** One archive object: NDJSON lines in source-offset order, and the highest offset they hold. */
export interface ArchiveObject {
  readonly lines: readonly string[];
  readonly maxOffset: number;
}

/** An object as stored, with the entity tag of that version. */
export interface StoredArchiveObject {
  readonly object: ArchiveObject;
  readonly etag: string;
}

/**
 * The write only succeeds if the object is still the version `ifMatch` names, or, with
 * `ifNoneMatch`, if there is no object yet (S3 conditional writes).
 */
export type WriteCondition = { readonly ifMatch: string } | { readonly ifNoneMatch: true };

/** The archive's write port. */
export interface ArchiveStore {
  get(key: string): Promise<StoredArchiveObject | undefined>;
  /** The new version's entity tag, or `"conflict"` when the condition did not hold. */
  put(key: string, object: ArchiveObject, condition: WriteCondition): Promise<string | "conflict">;
}

const MAX_OFFSET_METADATA = "max-offset";

/** NDJSON, gzip-compressed (Athena picks the codec from the `.gz` suffix). */
export class S3ArchiveStore implements ArchiveStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  async get(key: string): Promise<StoredArchiveObject | undefined> {
    try {
      const res = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const bytes = await res.Body?.transformToByteArray();
      const text = bytes ? (await gunzipAsync(bytes)).toString("utf8") : "";
      const maxOffset = Number(res.Metadata?.[MAX_OFFSET_METADATA] ?? "-1");
      return {
        object: { lines: text.split("\n").filter((l) => l.length > 0), maxOffset },
        etag: res.ETag ?? "",
      };
    } catch (error) {
      if (error instanceof NoSuchKey || (error as { name?: string }).name === "NoSuchKey") return undefined;
      throw error;
    }
  }

  async put(key: string, object: ArchiveObject, condition: WriteCondition): Promise<string | "conflict"> {
    const body = await gzipAsync(`${object.lines.join("\n")}\n`, { level: 4 });
    const header: [string, string] =
      "ifMatch" in condition ? ["if-match", condition.ifMatch] : ["if-none-match", "*"];
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      Body: body,
      ContentType: "application/x-ndjson",
      Metadata: { [MAX_OFFSET_METADATA]: String(object.maxOffset) },
      ...("ifMatch" in condition ? { IfMatch: condition.ifMatch } : { IfNoneMatch: "*" }),
    });
    // The condition goes on the request itself, before signing: in AWS the S3 client is the Lambda
    // runtime's (infra/bundling.ts), whose version Lambda does not promise, and a serializer that
    // predates PutObject's IfMatch/IfNoneMatch drops them silently, turning the write into an
    // overwrite that loses what a concurrent or replayed batch wrote.
    command.middlewareStack.add(
      (next) => (args) => {
        const request = args.request as { headers?: Record<string, string> };
        if (request.headers) request.headers[header[0]] = header[1];
        return next(args);
      },
      { step: "build", name: "tidemarkArchiveWriteCondition" },
    );
    try {
      const res = await this.s3.send(command);
      return res.ETag ?? "";
    } catch (error) {
      // 412: the object is not the version we built on. 409: a concurrent conditional write won.
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 412 || status === 409) return "conflict";
      throw error;
    }
  }
}

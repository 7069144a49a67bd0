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

/** The archive's write port. */
export interface ArchiveStore {
  get(key: string): Promise<ArchiveObject | undefined>;
  put(key: string, object: ArchiveObject): Promise<void>;
}

const MAX_OFFSET_METADATA = "max-offset";

/** NDJSON, gzip-compressed (Athena picks the codec from the `.gz` suffix). */
export class S3ArchiveStore implements ArchiveStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  async get(key: string): Promise<ArchiveObject | undefined> {
    try {
      const res = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const bytes = await res.Body?.transformToByteArray();
      const text = bytes ? (await gunzipAsync(bytes)).toString("utf8") : "";
      const maxOffset = Number(res.Metadata?.[MAX_OFFSET_METADATA] ?? "-1");
      return { lines: text.split("\n").filter((l) => l.length > 0), maxOffset };
    } catch (error) {
      if (error instanceof NoSuchKey || (error as { name?: string }).name === "NoSuchKey") return undefined;
      throw error;
    }
  }

  async put(key: string, object: ArchiveObject): Promise<void> {
    const body = await gzipAsync(`${object.lines.join("\n")}\n`, { level: 4 });
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentType: "application/x-ndjson",
        Metadata: { [MAX_OFFSET_METADATA]: String(object.maxOffset) },
      }),
    );
  }
}

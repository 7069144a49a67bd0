import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";

const gzipAsync = promisify(gzip);

/** The archive's write port: one object per (partition of the archive, source batch). */
export interface ArchiveWriter {
  put(key: string, lines: readonly string[]): Promise<void>;
}

/** NDJSON, gzip-compressed (Athena picks the codec from the `.gz` suffix). */
export class S3ArchiveWriter implements ArchiveWriter {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  async put(key: string, lines: readonly string[]): Promise<void> {
    const body = await gzipAsync(`${lines.join("\n")}\n`, { level: 4 });
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentType: "application/x-ndjson",
      }),
    );
  }
}

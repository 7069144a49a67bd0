import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";

/**
 * The event types present in the archive (its `event_type=` partitions), from a delimiter
 * listing. Queries without an event type need them: the Glue table projects `event_type` as
 * `injected`, so Athena must be told which values to read.
 */
export async function listEventTypes(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const res = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: "/", ContinuationToken: token }),
    );
    for (const p of res.CommonPrefixes ?? []) {
      const m = /event_type=([^/]+)\/$/.exec(p.Prefix ?? "");
      if (m?.[1]) out.push(m[1]);
    }
    token = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (token);
  return out;
}

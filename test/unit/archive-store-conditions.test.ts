import { S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { S3ArchiveStore } from "../../lib/adapters/archive-store.ts";

/**
 * The archive's conditional writes (`If-Match`, `If-None-Match: *` on PutObject) reach S3 whatever
 * SDK serializes them. In AWS the S3 client is the Lambda runtime's (infra/bundling.ts), whose
 * version Lambda does not promise; a serializer older than the member drops it without a word
 * (PutObject's `IfMatch` is from November 2024), and the write becomes an unconditional overwrite
 * that loses the lines a concurrent or replayed batch wrote.
 */
function capturingClient(options: { serializerKnowsConditions: boolean }) {
  const sent: HttpRequest[] = [];
  const s3 = new S3Client({
    region: "us-east-1",
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
    requestChecksumCalculation: "WHEN_REQUIRED",
    requestHandler: {
      handle: async (request: HttpRequest) => {
        sent.push(request);
        return {
          response: { statusCode: 200, headers: { etag: '"new-etag"' }, body: undefined },
        };
      },
    } as never,
  });
  if (!options.serializerKnowsConditions) {
    // What an SDK predating the members sends: the serialized request without their headers.
    s3.middlewareStack.add(
      (next) => async (args) => {
        const headers = (args.request as HttpRequest).headers;
        delete headers["if-match"];
        delete headers["if-none-match"];
        return next(args);
      },
      { step: "serialize", priority: "low", name: "olderSerializer" },
    );
  }
  return { s3, sent };
}

type HttpRequest = { headers: Record<string, string> };

const object = { lines: ['{"event_id":"a"}'], maxOffset: 7 };

describe("S3ArchiveStore conditional writes", () => {
  for (const serializerKnowsConditions of [true, false]) {
    const sdk = serializerKnowsConditions ? "a current SDK" : "an SDK predating the members";
    it(`sends If-None-Match: * for a new object with ${sdk}`, async () => {
      const { s3, sent } = capturingClient({ serializerKnowsConditions });
      const store = new S3ArchiveStore(s3, "archive");
      expect(await store.put("events/k.ndjson.gz", object, { ifNoneMatch: true })).toBe('"new-etag"');
      expect(sent).toHaveLength(1);
      expect(sent[0]?.headers["if-none-match"]).toBe("*");
      expect(sent[0]?.headers["if-match"]).toBeUndefined();
      s3.destroy();
    });

    it(`sends If-Match with the version built on with ${sdk}`, async () => {
      const { s3, sent } = capturingClient({ serializerKnowsConditions });
      const store = new S3ArchiveStore(s3, "archive");
      expect(await store.put("events/k.ndjson.gz", object, { ifMatch: '"old-etag"' })).toBe('"new-etag"');
      expect(sent).toHaveLength(1);
      expect(sent[0]?.headers["if-match"]).toBe('"old-etag"');
      expect(sent[0]?.headers["if-none-match"]).toBeUndefined();
      s3.destroy();
    });
  }
});

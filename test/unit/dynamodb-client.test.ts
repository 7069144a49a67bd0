import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createDynamoDb, decodeBase64 } from "../../lib/adapters/dynamodb-client.ts";

describe("the DynamoDB client's binary attributes", () => {
  it("are decoded by Buffer's decoder, not the SDK's regular-expression check", () => {
    const client = createDynamoDb({ AWS_REGION: "us-east-1" });
    expect(client.config.base64Decoder).toBe(decodeBase64);
    client.destroy();
  });

  it("decode exactly, at every padding and at size", () => {
    for (const size of [0, 1, 2, 3, 4, 5, 255, 256, 257, 300_001]) {
      const bytes = new Uint8Array(randomBytes(size));
      const decoded = decodeBase64(Buffer.from(bytes).toString("base64"));
      expect(decoded).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(decoded).equals(Buffer.from(bytes))).toBe(true);
    }
  });
});

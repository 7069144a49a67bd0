import { describe, expect, it } from "vitest";
import { createDynamoDb } from "../../lib/adapters/dynamodb-client.ts";
import { createS3 } from "../../lib/adapters/s3-client.ts";

/**
 * The SDK's logger middleware copies every command's input and output through its log filter
 * before calling even a no-op logger: Tidemark's clients run without it.
 */
const loggers = (stack: { identify(): string[] }) => stack.identify().filter((m) => m.startsWith("logger"));

describe("AWS SDK clients", () => {
  it("run without the logger middleware, and keep the usage meter", () => {
    const db = createDynamoDb({ AWS_REGION: "us-east-1" });
    const s3 = createS3({ AWS_REGION: "us-east-1" });
    expect(loggers(db.middlewareStack)).toEqual([]);
    expect(loggers(s3.middlewareStack)).toEqual([]);
    expect(db.middlewareStack.identify()).toContain("tidemarkUsageMeter - initialize");
    db.destroy();
    s3.destroy();
  });
});

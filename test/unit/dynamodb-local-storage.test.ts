import { describe, expect, it } from "vitest";
import { dynamoDbStorageArgs } from "../../local/services/index.ts";

describe("where DynamoDB Local keeps its tables", () => {
  it("on disk in the data dir by default (kept across restarts of npm start)", () => {
    expect(dynamoDbStorageArgs("/data/dynamodb", {})).toEqual(["-dbPath", "/data/dynamodb"]);
    expect(dynamoDbStorageArgs("/data/dynamodb", { TIDEMARK_DYNAMODB_IN_MEMORY: "0" })).toEqual([
      "-dbPath",
      "/data/dynamodb",
    ]);
  });

  it("in memory with TIDEMARK_DYNAMODB_IN_MEMORY=1", () => {
    expect(dynamoDbStorageArgs("/data/dynamodb", { TIDEMARK_DYNAMODB_IN_MEMORY: "1" })).toEqual([
      "-inMemory",
    ]);
  });
});

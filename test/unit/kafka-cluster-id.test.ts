import { describe, expect, it } from "vitest";
import { kafkaClusterId } from "../../local/services/index.ts";

describe("the local broker's KRaft cluster id", () => {
  // One id in 64 started with "-", which kafka-storage's argument parser takes for an option.
  it("never starts with '-', and is 16 bytes of base64url", () => {
    for (let i = 0; i < 2_000; i++) {
      const id = kafkaClusterId();
      expect(id.startsWith("-"), id).toBe(false);
      expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(Buffer.from(id, "base64url")).toHaveLength(16);
    }
  });
});

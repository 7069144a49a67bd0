import { describe, expect, it } from "vitest";
import { handler } from "../../functions/ws-authorizer.ts";
import { authorizerResult, decideConnect, fingerprint, MAX_KEY_LENGTH } from "../../lib/live/connect-auth.ts";
import { webSocketApi } from "../../lib/topology.ts";

const KEY = "Xy7dQ2mP9sLk4ZbT1wRc8VnH3fJg6AeU0oIy5tNq";
const METHOD_ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/live/$connect";

/** API Gateway's WebSocket REQUEST authorizer event, as AWS documents it. */
const authorizerEvent = (query: Record<string, string> | null) => ({
  type: "REQUEST",
  methodArn: METHOD_ARN,
  headers: { Host: "abc123.execute-api.eu-west-1.amazonaws.com" },
  queryStringParameters: query,
  stageVariables: {},
  requestContext: {
    routeKey: "$connect",
    eventType: "CONNECT",
    connectionId: "L0SM9cOFvHcCIhw=",
    stage: "live",
    apiId: "abc123",
  },
});

describe("live-stats $connect authorization", () => {
  it("reads the key from the topology's query parameter, `key`", () => {
    expect(webSocketApi.connectAuthorizer.keyParameter).toBe("key");
  });

  it("answers 401 (Unauthorized) without a key", () => {
    expect(decideConnect(undefined)).toEqual({ outcome: "unauthorized" });
    expect(decideConnect(null)).toEqual({ outcome: "unauthorized" });
    expect(decideConnect({})).toEqual({ outcome: "unauthorized" });
    expect(decideConnect({ key: "" })).toEqual({ outcome: "unauthorized" });
    expect(decideConnect({ apiKey: KEY, token: KEY })).toEqual({ outcome: "unauthorized" });
  });

  it("denies what can never be an API key, without asking the usage plan", () => {
    expect(decideConnect({ key: "k".repeat(MAX_KEY_LENGTH + 1) })).toMatchObject({ outcome: "deny" });
    expect(decideConnect({ key: "has space in it 1234567" })).toMatchObject({ outcome: "deny" });
    expect(decideConnect({ key: "tab\there-1234567890123" })).toMatchObject({ outcome: "deny" });
    expect(decideConnect({ key: "ключ-1234567890123456" })).toMatchObject({ outcome: "deny" });
  });

  it("hands any other key to API Gateway's usage-plan check, named by fingerprint only", () => {
    const decision = decideConnect({ key: KEY });
    expect(decision).toEqual({ outcome: "allow", key: KEY, principalId: fingerprint(KEY) });
    if (decision.outcome === "unauthorized") throw new Error("unreachable");
    const result = authorizerResult(decision, METHOD_ARN);
    expect(result).toEqual({
      principalId: fingerprint(KEY),
      policyDocument: {
        Version: "2012-10-17",
        Statement: [{ Action: "execute-api:Invoke", Effect: "Allow", Resource: METHOD_ARN }],
      },
      usageIdentifierKey: KEY,
      context: { credential: "api_key", key_fingerprint: fingerprint(KEY) },
    });
    // The key itself never reaches the routes' requestContext.authorizer (nor logs of it).
    expect(JSON.stringify(result.context)).not.toContain(KEY);
    expect(JSON.stringify(result.principalId)).not.toContain(KEY);
  });

  it("fingerprints keys apart and stably", () => {
    expect(fingerprint(KEY)).toBe(fingerprint(KEY));
    expect(fingerprint(KEY)).not.toBe(fingerprint(`${KEY}x`));
    expect(fingerprint(KEY)).toMatch(/^key-[0-9a-f]{16}$/);
  });

  it("denies with a Deny policy and no key for the usage plan", () => {
    const decision = decideConnect({ key: "x".repeat(200) });
    if (decision.outcome === "unauthorized") throw new Error("unreachable");
    const result = authorizerResult(decision, METHOD_ARN);
    expect(result.policyDocument.Statement).toEqual([
      { Action: "execute-api:Invoke", Effect: "Deny", Resource: METHOD_ARN },
    ]);
    expect(result.usageIdentifierKey).toBeUndefined();
  });

  describe("the handler (functions/ws-authorizer.ts)", () => {
    it("throws Unauthorized (API Gateway's 401) without a key", async () => {
      await expect(handler(authorizerEvent(null))).rejects.toThrow(/^Unauthorized$/);
      await expect(handler(authorizerEvent({ other: "1" }))).rejects.toThrow(/^Unauthorized$/);
    });

    it("allows a key on the event's method ARN and returns it for the usage plan", async () => {
      const result = await handler(authorizerEvent({ key: KEY }));
      expect(result.usageIdentifierKey).toBe(KEY);
      expect(result.policyDocument.Statement[0]).toMatchObject({ Effect: "Allow", Resource: METHOD_ARN });
    });

    it("fails (500) on an event that is not a REQUEST authorizer event", async () => {
      await expect(handler({ type: "TOKEN", methodArn: METHOD_ARN })).rejects.toThrow(/REQUEST/);
      await expect(handler(undefined)).rejects.toThrow(/REQUEST/);
    });
  });
});

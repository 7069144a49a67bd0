import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { afterEach, describe, expect, it, vi } from "vitest";
import { apiHandler, json } from "../../functions/shared/http.ts";
import { MAX_EVENT_BYTES, parseIngestBody } from "../../lib/contract/event.ts";
import { api } from "../../lib/topology.ts";

/**
 * The request body's limit (5 MiB) and an event's (32 KiB) are in UTF-8 bytes, and counting them
 * is a pass over the text: once per POST over the whole body, once per event over its JSON. A
 * UTF-16 code unit is at most 3 bytes of UTF-8 (a lone surrogate is written as U+FFFD, 3 bytes),
 * so a text no longer than a third of the limit is certainly within it and is not counted. These
 * pin that bound (no count for ordinary sizes) and that the limits still hold to the byte where
 * the bound cannot decide (multi-byte text).
 */
const now = Date.UTC(2026, 10, 22, 12, 0, 0);
const context = { functionName: "t", awsRequestId: "r", getRemainingTimeInMillis: () => 1000 } as Context;
const { maxRequestBodyBytes } = api.payload;

afterEach(() => {
  vi.restoreAllMocks();
});

describe("byte counts against the payload limits", () => {
  it("counts no event's bytes when its JSON is short enough to be within the limit", () => {
    const count = vi.spyOn(Buffer, "byteLength");
    const events = Array.from({ length: 100 }, (_, i) => ({
      user_id: `u${i}`,
      event_type: "page_view",
      timestamp: now,
      properties: { note: "€".repeat(100) },
    }));
    const result = parseIngestBody(JSON.stringify(events), { now, retentionMs: 86_400_000 });
    expect(result.ok).toBe(true);
    expect(count).not.toHaveBeenCalled();
  });

  it("still refuses an event just over 32 KiB of multi-byte text, and accepts one just under", () => {
    // 3-byte characters in properties: n of them serialize to at most 32 KiB, n + 1 to more.
    const heavy = (n: number) =>
      JSON.stringify({
        event_id: "e",
        user_id: "u",
        event_type: "t",
        timestamp: now,
        properties: { s: "€".repeat(n) },
      });
    const serialized = (n: number) =>
      Buffer.byteLength(
        JSON.stringify({
          event_id: "e",
          user_id: "u",
          event_type: "t",
          timestamp: now,
          properties: { s: "€".repeat(n) },
          received_at: now,
        }),
      );
    let n = Math.floor(MAX_EVENT_BYTES / 3) - 100;
    while (serialized(n + 1) <= MAX_EVENT_BYTES) n++;
    expect(parseIngestBody(heavy(n), { now, retentionMs: 86_400_000 }).ok).toBe(true);
    const over = parseIngestBody(heavy(n + 1), { now, retentionMs: 86_400_000 });
    expect(over.ok).toBe(false);
    if (over.ok) return;
    expect(JSON.stringify(over.error.details)).toContain(
      `is ${serialized(n + 1)} bytes serialized; at most ${MAX_EVENT_BYTES}`,
    );
  });

  it("counts no request body's bytes when it is short enough, and still answers 413 to the byte", async () => {
    const handler = apiHandler(async () => json(200, { ok: true }));
    const count = vi.spyOn(Buffer, "byteLength");
    const small = await handler({ body: "€".repeat(100_000) } as APIGatewayProxyEvent, context);
    expect(small.statusCode).toBe(200);
    expect(count).not.toHaveBeenCalledWith("€".repeat(100_000));
    count.mockRestore();
    // 3-byte characters: at the limit in bytes passes, one byte over is a 413.
    const third = Math.floor(maxRequestBodyBytes / 3);
    const rest = maxRequestBodyBytes - third * 3;
    const atLimit = "€".repeat(third) + "x".repeat(rest);
    expect((await handler({ body: atLimit } as APIGatewayProxyEvent, context)).statusCode).toBe(200);
    const over = await handler({ body: `${atLimit}x` } as APIGatewayProxyEvent, context);
    expect(over.statusCode).toBe(413);
  });
});

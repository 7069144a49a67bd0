import { createRequire } from "node:module";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

// kafkajs's per-connection request queue (CommonJS internals; patched: patches/README.md).
const require = createRequire(import.meta.url);
interface Entry {
  correlationId: number;
  apiName: string;
  apiKey: number;
  apiVersion: number;
  resolve(response: unknown): void;
  reject(error: unknown): void;
}
interface RequestQueueInstance {
  push(request: { entry: Entry; expectResponse: boolean; sendRequest(): void }): void;
  fulfillRequest(response: { correlationId: number; payload: Buffer; size: number }): void;
  maybeThrottle(clientSideThrottleTime: number): void;
  checkPendingRequests(): void;
  destroy(): void;
}
const RequestQueue = require("kafkajs/src/network/requestQueue/index.js") as new (options: {
  maxInFlightRequests: number | null;
  requestTimeout: number;
  enforceRequestTimeout: boolean;
  clientId: string;
  broker: string;
  logger: { debug(): void; warn(): void; info(): void; error(): void };
}) => RequestQueueInstance;

const quiet = { debug() {}, warn() {}, info() {}, error() {} };
const newQueue = () =>
  new RequestQueue({
    maxInFlightRequests: null,
    requestTimeout: 30_000,
    enforceRequestTimeout: false,
    clientId: "test",
    broker: "127.0.0.1:9092",
    logger: quiet,
  });
const entry = (correlationId: number, resolve: (r: unknown) => void = () => {}): Entry => ({
  correlationId,
  apiName: "Fetch",
  apiKey: 1,
  apiVersion: 11,
  resolve,
  reject: () => {},
});

describe("kafkajs's request queue, patched", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  // kafkajs 2.2.4 re-armed a timer of the throttle's remaining time after every check, also with
  // nothing pending and no throttle: a negative delay, so a 1 ms loop on every broker connection
  // for as long as it is open (tulios/kafkajs#1556). The stack's seven consumer processes spent
  // about 8 % of a core each on it while idle.
  it("arms no timer once nothing is pending: an idle connection does not check every millisecond", () => {
    const queue = newQueue();
    const checks = vi.spyOn(queue, "checkPendingRequests");
    let answered = 0;
    queue.push({ entry: entry(1, () => answered++), expectResponse: true, sendRequest: () => {} });
    queue.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    expect(answered).toBe(1);
    vi.advanceTimersByTime(1_000);
    expect(checks.mock.calls.length).toBeLessThanOrEqual(1);
    expect(vi.getTimerCount()).toBe(0);
    queue.destroy();
  });

  it("still sends a request held by a client-side throttle once the throttle ends, then goes quiet", () => {
    const queue = newQueue();
    const sent: number[] = [];
    queue.maybeThrottle(50);
    queue.push({ entry: entry(7), expectResponse: true, sendRequest: () => sent.push(7) });
    vi.advanceTimersByTime(40);
    expect(sent).toEqual([]);
    vi.advanceTimersByTime(20);
    expect(sent).toEqual([7]);
    queue.fulfillRequest({ correlationId: 7, payload: Buffer.alloc(0), size: 0 });
    vi.advanceTimersByTime(1_000);
    expect(vi.getTimerCount()).toBe(0);
    queue.destroy();
  });

  it("checks again within the interval when a throttle's remaining time is marginal (kafkajs#1532)", () => {
    const queue = newQueue();
    const sent: number[] = [];
    queue.maybeThrottle(1);
    queue.push({ entry: entry(3), expectResponse: true, sendRequest: () => sent.push(3) });
    // The throttle has just ended when the check is scheduled: it must still be scheduled.
    vi.advanceTimersByTime(1);
    queue.checkPendingRequests();
    vi.advanceTimersByTime(20);
    expect(sent).toEqual([3]);
    queue.destroy();
  });
});

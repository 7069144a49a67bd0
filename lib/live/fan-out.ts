import type { AggregationRule } from "../stream/rules.ts";
import { webSocketApi } from "../topology.ts";
import {
  LIVE_SCHEMA,
  type LiveFrame,
  matchesSubscription,
  type RoutedStatsMessage,
  type Subscription,
} from "./subscriptions.ts";

/** A WebSocket connection as the store knows it; no subscription yet means it receives nothing. */
export interface ConnectionRecord {
  readonly connection_id: string;
  readonly subscription?: Subscription;
}

/** Port: where connections and their subscriptions live (DynamoDB in both wirings). */
export type SubscribeOutcome = "stored" | "superseded" | "gone";

export interface ConnectionStore {
  add(connectionId: string, now: number): Promise<void>;
  /** Resolves false when the connection is unknown (it disconnected meanwhile). */
  /**
   * Replaces the connection's filters with those of a subscribe message sent at `now`: "stored";
   * "superseded" when a message sent later is already stored (two in flight at once may be handled
   * in either order); "gone" when the connection no longer exists.
   */
  subscribe(connectionId: string, subscription: Subscription, now: number): Promise<SubscribeOutcome>;
  remove(connectionId: string): Promise<void>;
  subscribed(): Promise<ConnectionRecord[]>;
}

/** Port: sends one frame to one connection; `gone` when the client is no longer connected (410). */
export interface ConnectionNotifier {
  post(connectionId: string, data: string): Promise<"sent" | "gone">;
}

export interface FanOutResult {
  readonly frames: number;
  readonly gone: readonly string[];
  readonly failed: number;
  /** Messages of the batch left out because no frame can carry them (counted once, not per connection). */
  readonly oversize: number;
}

/** API Gateway's WebSocket message quota (lib/topology.ts): PostToConnection refuses larger data (413). */
export const MAX_WEBSOCKET_MESSAGE_BYTES: number = webSocketApi.maxMessageBytes;

/** API Gateway's WebSocket message limit is 128 KB; frames of several messages stay under it with room to spare. */
export const MAX_FRAME_BYTES = 120 * 1024;

const STATS_ENVELOPE_BYTES = Buffer.byteLength(
  JSON.stringify({ schema: LIVE_SCHEMA, type: "stats", messages: [] } satisfies LiveFrame),
);

/** A message's size serialized, in UTF-8 bytes. */
export const messageBytes = (message: RoutedStatsMessage): number =>
  Buffer.byteLength(JSON.stringify(message));

/**
 * Whether a message of `bytes` fits a `stats` frame of its own under API Gateway's message quota.
 * A group key is bounded only by the event (32 KiB), and the message holds it twice (`window_id`
 * and `group`), escaped once more for each level of JSON it sits in: a rule grouped by
 * object-valued properties makes messages of several hundred KB. API Gateway refuses those, and
 * posting them failed the connection for the rest of its batch.
 */
export const fitsWebSocketMessage = (bytes: number): boolean =>
  STATS_ENVELOPE_BYTES + bytes <= MAX_WEBSOCKET_MESSAGE_BYTES;

/**
 * Splits messages into `stats` frames of at most `maxBytes` serialized (a lone larger message still
 * goes alone: fanOut has left out those over API Gateway's quota). `sizeOf` gives a message's
 * serialized bytes; fanOut passes the sizes it took once for the batch, not once per connection.
 */
export function statsFrames(
  messages: readonly RoutedStatsMessage[],
  maxBytes = MAX_FRAME_BYTES,
  sizeOf: (message: RoutedStatsMessage) => number = messageBytes,
): string[] {
  const frames: string[] = [];
  let batch: RoutedStatsMessage[] = [];
  let size = 0;
  const flush = () => {
    if (batch.length === 0) return;
    const frame: LiveFrame = { schema: LIVE_SCHEMA, type: "stats", messages: batch };
    frames.push(JSON.stringify(frame));
    batch = [];
    size = 0;
  };
  for (const m of messages) {
    const bytes = sizeOf(m) + 1; // and its comma
    if (batch.length > 0 && STATS_ENVELOPE_BYTES + size + bytes > maxBytes) flush();
    batch.push(m);
    size += bytes;
  }
  flush();
  return frames;
}

/**
 * Sends each subscribed connection the messages its subscription matches, in order, batched
 * into frames. A connection that is gone (410) is deleted from the store; any other posting
 * failure is counted and skipped, because the next update of the same window supersedes it and
 * one slow client must not hold back the others. A message over API Gateway's message quota is
 * sent to nobody (`onOversize` is told once): API Gateway would refuse it to every connection,
 * and the window stays readable by GET /stats and on `analytics.stats`.
 */
export async function fanOut(
  messages: readonly RoutedStatsMessage[],
  deps: {
    readonly store: ConnectionStore;
    readonly notifier: ConnectionNotifier;
    readonly ruleFor: (ruleId: string) => Pick<AggregationRule, "event_type" | "group_by"> | undefined;
    readonly onError?: (connectionId: string, error: unknown) => void;
    readonly onOversize?: (message: RoutedStatsMessage) => void;
    /** The subscribed connections, if the caller already read them. */
    readonly connections?: readonly ConnectionRecord[];
  },
): Promise<FanOutResult> {
  const sendable: RoutedStatsMessage[] = [];
  const sizes = new Map<RoutedStatsMessage, number>();
  let oversize = 0;
  for (const m of messages) {
    const bytes = messageBytes(m);
    if (fitsWebSocketMessage(bytes)) {
      sendable.push(m);
      sizes.set(m, bytes);
    } else {
      oversize++;
      deps.onOversize?.(m);
    }
  }
  if (sendable.length === 0) return { frames: 0, gone: [], failed: 0, oversize };
  const connections = deps.connections ?? (await deps.store.subscribed());
  const gone: string[] = [];
  let frames = 0;
  let failed = 0;
  await Promise.all(
    connections.map(async (c) => {
      const subscription = c.subscription;
      if (!subscription) return;
      const matching = sendable.filter((m) => matchesSubscription(subscription, m, deps.ruleFor(m.rule_id)));
      for (const frame of statsFrames(matching, MAX_FRAME_BYTES, (m) => sizes.get(m) ?? messageBytes(m))) {
        try {
          if ((await deps.notifier.post(c.connection_id, frame)) === "gone") {
            gone.push(c.connection_id);
            await deps.store.remove(c.connection_id);
            return;
          }
          frames++;
        } catch (error) {
          failed++;
          deps.onError?.(c.connection_id, error);
          return;
        }
      }
    }),
  );
  return { frames, gone, failed, oversize };
}

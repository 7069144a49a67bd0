import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  ScanCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import type { ConnectionRecord, ConnectionStore, SubscribeOutcome } from "../live/fan-out.ts";
import type { Subscription } from "../live/subscriptions.ts";

/**
 * Connections of the live-stats WebSocket API in DynamoDB: one item per connection, expiring
 * (TTL) when API Gateway would have closed it anyway. `subscribed()` scans: there is one item
 * per open dashboard, so a scan is a page or two, and it saves an index.
 */
export class DynamoConnectionStore implements ConnectionStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly ttlSeconds: number,
  ) {}

  async add(connectionId: string, now: number): Promise<void> {
    await this.db.send(
      new PutCommand({
        TableName: this.table,
        Item: {
          connection_id: connectionId,
          connected_at: now,
          expires_at: Math.ceil(now / 1000) + this.ttlSeconds,
        },
      }),
    );
  }

  async subscribe(connectionId: string, subscription: Subscription, now: number): Promise<SubscribeOutcome> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { connection_id: connectionId },
          UpdateExpression: "SET subscription = :s, subscribed_at = :now",
          // Never resurrect a connection whose $disconnect already ran, and never let a message
          // sent earlier replace one sent later: API Gateway invokes the route once per message,
          // and two invocations of one connection may finish in either order.
          ConditionExpression:
            "attribute_exists(connection_id) AND (attribute_not_exists(subscribed_at) OR subscribed_at <= :now)",
          ExpressionAttributeValues: {
            ":s": { rule_ids: [...subscription.rule_ids], event_types: [...subscription.event_types] },
            ":now": now,
          },
        }),
      );
      return "stored";
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const current = await this.db.send(
        new GetCommand({ TableName: this.table, Key: { connection_id: connectionId }, ConsistentRead: true }),
      );
      return current.Item ? "superseded" : "gone";
    }
  }

  async remove(connectionId: string): Promise<void> {
    await this.db.send(new DeleteCommand({ TableName: this.table, Key: { connection_id: connectionId } }));
  }

  async subscribed(): Promise<ConnectionRecord[]> {
    const out: ConnectionRecord[] = [];
    const nowSeconds = Math.floor(Date.now() / 1000);
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new ScanCommand({
          TableName: this.table,
          // TTL deletion lags by up to days; an expired item is a connection API Gateway closed.
          FilterExpression: "attribute_exists(subscription) AND expires_at > :now",
          ExpressionAttributeValues: { ":now": nowSeconds },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) {
        const subscription = item.subscription as Subscription | undefined;
        out.push({
          connection_id: String(item.connection_id),
          ...(subscription
            ? {
                subscription: {
                  rule_ids: subscription.rule_ids ?? [],
                  event_types: subscription.event_types ?? [],
                },
              }
            : {}),
        });
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }
}

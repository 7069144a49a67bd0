import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
  ScanCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import type { ConnectionRecord, ConnectionStore } from "../live/fan-out.ts";
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

  async subscribe(connectionId: string, subscription: Subscription, now: number): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { connection_id: connectionId },
          UpdateExpression: "SET subscription = :s, subscribed_at = :now",
          // Never resurrect a connection whose $disconnect already ran.
          ConditionExpression: "attribute_exists(connection_id)",
          ExpressionAttributeValues: {
            ":s": { rule_ids: [...subscription.rule_ids], event_types: [...subscription.event_types] },
            ":now": now,
          },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
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

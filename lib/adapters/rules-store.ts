import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { type DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand } from "@aws-sdk/lib-dynamodb";
import type { AggregationRule } from "../stream/rules.ts";

export class RuleExistsError extends Error {
  override name = "RuleExistsError";
}
export class RuleNotFoundError extends Error {
  override name = "RuleNotFoundError";
}

/** Aggregation rules created at run time, in the rules table. */
export interface RulesStore {
  list(): Promise<AggregationRule[]>;
  get(ruleId: string): Promise<AggregationRule | undefined>;
  create(rule: AggregationRule): Promise<void>;
  replace(rule: AggregationRule): Promise<void>;
}

export class DynamoRulesStore implements RulesStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async list(): Promise<AggregationRule[]> {
    const out: AggregationRule[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const res = await this.db.send(
        new ScanCommand({ TableName: this.table, ExclusiveStartKey: start, ConsistentRead: true }),
      );
      out.push(...((res.Items ?? []) as AggregationRule[]));
      start = res.LastEvaluatedKey;
    } while (start);
    return out.sort((a, b) => a.rule_id.localeCompare(b.rule_id));
  }

  async get(ruleId: string): Promise<AggregationRule | undefined> {
    const res = await this.db.send(
      new GetCommand({ TableName: this.table, Key: { rule_id: ruleId }, ConsistentRead: true }),
    );
    return res.Item as AggregationRule | undefined;
  }

  async create(rule: AggregationRule): Promise<void> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: rule,
          ConditionExpression: "attribute_not_exists(rule_id)",
        }),
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) throw new RuleExistsError(rule.rule_id);
      throw error;
    }
  }

  async replace(rule: AggregationRule): Promise<void> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: rule,
          ConditionExpression: "attribute_exists(rule_id)",
        }),
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) throw new RuleNotFoundError(rule.rule_id);
      throw error;
    }
  }
}

/**
 * The rules in force: the built-ins plus the table's active rules, re-read at most every
 * `ttlMs`, so a rule created through the API is counted within seconds, without a restart.
 */
export class CachedRules {
  #value: AggregationRule[] | undefined;
  #at = 0;
  /** The read under way: concurrent callers (one per partition of a batch) share it. */
  #reading: Promise<AggregationRule[]> | undefined;
  constructor(
    private readonly store: RulesStore,
    private readonly builtIns: readonly AggregationRule[],
    private readonly ttlMs = 3_000,
  ) {}

  async current(now = Date.now()): Promise<AggregationRule[]> {
    if (this.#value && now - this.#at <= this.ttlMs) return this.#value;
    this.#reading ??= this.#read(now).finally(() => {
      this.#reading = undefined;
    });
    return this.#reading;
  }

  async #read(now: number): Promise<AggregationRule[]> {
    const custom = (await this.store.list()).filter(
      (r) => r.active && !this.builtIns.some((b) => b.rule_id === r.rule_id),
    );
    this.#value = [...this.builtIns, ...custom];
    this.#at = now;
    return this.#value;
  }
}

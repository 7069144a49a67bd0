import { RuleExistsError, RuleNotFoundError, type RulesStore } from "../../../lib/adapters/rules-store.ts";
import type { AggregationRule } from "../../../lib/stream/rules.ts";

/** The rules table in memory, for the rules service's unit tests. */
export class MemoryRules implements RulesStore {
  readonly rules = new Map<string, AggregationRule>();
  async list() {
    return [...this.rules.values()];
  }
  async get(id: string) {
    return this.rules.get(id);
  }
  async create(rule: AggregationRule) {
    if (this.rules.has(rule.rule_id)) throw new RuleExistsError(rule.rule_id);
    this.rules.set(rule.rule_id, rule);
  }
  async replace(rule: AggregationRule) {
    if (!this.rules.has(rule.rule_id)) throw new RuleNotFoundError(rule.rule_id);
    this.rules.set(rule.rule_id, rule);
  }
}

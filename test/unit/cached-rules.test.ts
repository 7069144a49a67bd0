import { describe, expect, it } from "vitest";
import { CachedRules, type RulesStore } from "../../lib/adapters/rules-store.ts";
import { type AggregationRule, BUILT_IN_RULES } from "../../lib/stream/rules.ts";

/** A rules table that counts its reads and answers only when told to. */
class CountingRules implements Pick<RulesStore, "list"> {
  reads = 0;
  readonly #waiting: (() => void)[] = [];
  constructor(private readonly rules: AggregationRule[]) {}
  list(): Promise<AggregationRule[]> {
    this.reads++;
    return new Promise((resolve) => this.#waiting.push(() => resolve(this.rules)));
  }
  answerAll(): void {
    for (const answer of this.#waiting.splice(0)) answer();
  }
}

const custom: AggregationRule = {
  rule_id: "checkout_count",
  event_type: "checkout",
  metric: "count",
  group_by: [],
  window: { type: "tumbling", size: "1m" },
  active: true,
};

describe("CachedRules", () => {
  it("reads the rules table once for concurrent callers (one per partition of a batch)", async () => {
    const table = new CountingRules([custom]);
    const rules = new CachedRules(table as unknown as RulesStore, BUILT_IN_RULES, 3_000);
    const callers = Array.from({ length: 6 }, () => rules.current(1_000));
    table.answerAll();
    const answers = await Promise.all(callers);
    expect(table.reads).toBe(1);
    for (const answer of answers) expect(answer.map((r) => r.rule_id)).toContain("checkout_count");
    // Within the TTL: no read; past it: one read again.
    expect((await rules.current(3_900)).length).toBe(BUILT_IN_RULES.length + 1);
    expect(table.reads).toBe(1);
    const later = [rules.current(4_100), rules.current(4_100)];
    table.answerAll();
    await Promise.all(later);
    expect(table.reads).toBe(2);
  });

  it("past the TTL the caller gets the table as it is now: a rule created is counted from then on", async () => {
    // A background read (the rules in hand used while it runs) left events sent 3.5 s after a
    // rule's creation uncounted by it: test/integration/stream-analytics.test.ts.
    let inTable: AggregationRule[] = [];
    const table = { list: async () => inTable };
    const rules = new CachedRules(table as unknown as RulesStore, BUILT_IN_RULES, 3_000);
    expect((await rules.current(0)).map((r) => r.rule_id)).not.toContain("checkout_count");
    inTable = [custom];
    expect((await rules.current(3_000)).map((r) => r.rule_id)).not.toContain("checkout_count");
    expect((await rules.current(3_001)).map((r) => r.rule_id)).toContain("checkout_count");
  });

  it("reads again after a failed read instead of keeping the failure", async () => {
    let fail = true;
    const table = {
      list: async () => {
        if (fail) throw new Error("table away");
        return [custom];
      },
    };
    const rules = new CachedRules(table as unknown as RulesStore, BUILT_IN_RULES);
    await expect(rules.current(0)).rejects.toThrow("table away");
    fail = false;
    expect((await rules.current(1)).map((r) => r.rule_id)).toContain("checkout_count");
  });
});

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
    const later = [rules.current(7_100), rules.current(7_100)];
    table.answerAll();
    await Promise.all(later);
    expect(table.reads).toBe(2);
  });

  /** Whether `p` is still pending once everything already queued has run. */
  const stillPending = <T>(p: Promise<T>) =>
    Promise.race([p.then(() => false), new Promise<boolean>((r) => setImmediate(() => r(true)))]);

  it("past the TTL, callers go on with the rules they have while the table is read (up to twice the TTL)", async () => {
    const table = new CountingRules([custom]);
    const rules = new CachedRules(table as unknown as RulesStore, BUILT_IN_RULES, 3_000);
    const first = rules.current(1_000);
    table.answerAll();
    await first;
    // 4,100: due, and the table does not answer yet: the rules read at 1,000 without waiting.
    const due = rules.current(4_100);
    expect(await stillPending(due)).toBe(false);
    expect((await due).map((r) => r.rule_id)).toContain("checkout_count");
    expect(table.reads).toBe(2);
    expect(await stillPending(rules.current(7_000))).toBe(false); // the same read still under way
    expect(table.reads).toBe(2);
    // Older than twice the TTL: the caller waits for the read.
    const stale = rules.current(7_001);
    expect(await stillPending(stale)).toBe(true);
    table.answerAll();
    await stale;
    expect(table.reads).toBe(2);
    // The read that answered (started at 4,100) is fresh until 7,100.
    await rules.current(7_100);
    expect(table.reads).toBe(2);
  });

  it("a background read that fails leaves the rules in use and is tried again by the next caller", async () => {
    let fail = false;
    let reads = 0;
    const table = {
      list: async () => {
        reads++;
        if (fail) throw new Error("table away");
        return [custom];
      },
    };
    const rules = new CachedRules(table as unknown as RulesStore, BUILT_IN_RULES, 3_000);
    await rules.current(0);
    fail = true;
    expect((await rules.current(3_500)).map((r) => r.rule_id)).toContain("checkout_count");
    await new Promise((r) => setImmediate(r));
    expect(reads).toBe(2);
    fail = false;
    await rules.current(3_600);
    await new Promise((r) => setImmediate(r));
    expect(reads).toBe(3);
    await rules.current(6_500); // fresh: read at 3,600
    expect(reads).toBe(3);
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

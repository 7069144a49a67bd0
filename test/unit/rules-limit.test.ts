import { describe, expect, it } from "vitest";
import { MAX_ACTIVE_RULES, MAX_RULES } from "../../lib/contract/api.ts";
import { RulesService } from "../../lib/pipeline/rules-service.ts";
import { MemoryRules } from "./support/memory-rules-store.ts";

/**
 * POST /rules created rules without bound. Every active rule is folded for every event of its
 * type and writes its own delta items for every window of every batch, so a client (or a script
 * gone wrong) creating thousands of `event_type: "*"` rules multiplied the aggregator's work and
 * DynamoDB writes by as much, and GET /rules, which returns them all at once, grew past Lambda's
 * 6 MB response quota (an error instead of the list). Rules are now bounded: at most
 * MAX_ACTIVE_RULES active and MAX_RULES stored, beyond which create (and re-enabling by PUT) is
 * a 409 that says so; disabling one makes room.
 */

const body = (id: string, active = true) => ({
  rule_id: id,
  event_type: "*",
  metric: "count",
  group_by: ["user_id"],
  window: { type: "tumbling", size: "1m" },
  active,
});

describe("the number of rules", () => {
  it("is bounded: active rules at MAX_ACTIVE_RULES, stored rules at MAX_RULES", async () => {
    expect(MAX_ACTIVE_RULES).toBeGreaterThanOrEqual(50);
    expect(MAX_RULES).toBeGreaterThan(MAX_ACTIVE_RULES);
    const store = new MemoryRules();
    const rules = new RulesService(store);
    for (let i = 0; i < MAX_ACTIVE_RULES; i++) expect((await rules.create(body(`r${i}`))).ok).toBe(true);

    const refused = await rules.create(body("one_more"));
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.error).toMatchObject({ status: 409, code: "rule_limit" });
    expect(refused.error.message).toContain(String(MAX_ACTIVE_RULES));
    expect(store.rules.has("one_more")).toBe(false);

    // Disabled rules may still be created, up to MAX_RULES stored.
    for (let i = MAX_ACTIVE_RULES; i < MAX_RULES; i++)
      expect((await rules.create(body(`r${i}`, false))).ok).toBe(true);
    const full = await rules.create(body("stored_too_many", false));
    expect(full.ok ? undefined : full.error).toMatchObject({ status: 409, code: "rule_limit" });
    expect(store.rules.size).toBe(MAX_RULES);
  });

  it("re-enabling by PUT counts too, and disabling makes room", async () => {
    const store = new MemoryRules();
    const rules = new RulesService(store);
    for (let i = 0; i < MAX_ACTIVE_RULES; i++) await rules.create(body(`r${i}`));
    await rules.create(body("idle", false));
    const enable = await rules.update("idle", body("idle"));
    expect(enable.ok ? undefined : enable.error).toMatchObject({ status: 409, code: "rule_limit" });
    expect(store.rules.get("idle")?.active).toBe(false);
    // An active rule's own update is not refused at the limit.
    expect((await rules.update("r0", { ...body("r0"), group_by: ["event_type"] })).ok).toBe(true);

    expect((await rules.disable("r1")).ok).toBe(true);
    expect((await rules.update("idle", body("idle"))).ok).toBe(true);
    expect(store.rules.get("idle")?.active).toBe(true);
  });
});

import { describe, expect, it } from "vitest";
import { RulesService, validateRule } from "../../lib/pipeline/rules-service.ts";
import { planRuleWindow } from "../../lib/stream/read-plan.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import { MemoryRules } from "./support/memory-rules-store.ts";

const rule = (window: Record<string, string>) => ({
  rule_id: "clicks",
  event_type: "click",
  metric: "count",
  window,
});

const NOW = Date.UTC(2026, 11, 5, 19, 30, 12);

/**
 * POST /rules answered 201 for a sliding window whose slide is longer than its size
 * (`{"type":"sliding","size":"5m","slide":"10m"}`): the rule was stored and counted events, but
 * every GET /stats?rule_id= of it answered 400 "window.slide must not exceed window.size". A
 * window GET /stats cannot read is now refused when the rule is created or updated.
 */
describe("a rule's window", () => {
  it("is refused on POST /rules when the slide is longer than the size, and nothing is stored", async () => {
    const store = new MemoryRules();
    const created = await new RulesService(store).create(rule({ type: "sliding", size: "5m", slide: "10m" }));
    expect(created.ok).toBe(false);
    if (created.ok) return;
    expect(created.error).toMatchObject({ status: 400, code: "invalid_rule" });
    expect(created.error.message).toMatch(/window\.slide:? must not exceed window\.size/);
    expect(store.rules.size).toBe(0);
  });

  it("is refused on PUT /rules/{rule_id} too, leaving the stored rule as it was", async () => {
    const store = new MemoryRules();
    const rules = new RulesService(store);
    expect((await rules.create(rule({ type: "sliding", size: "10m", slide: "1m" }))).ok).toBe(true);
    const updated = await rules.update("clicks", rule({ type: "sliding", size: "10m", slide: "15m" }));
    expect(updated.ok).toBe(false);
    if (updated.ok) return;
    expect(updated.error).toMatchObject({ status: 400, code: "invalid_rule" });
    expect(store.rules.get("clicks")?.window).toEqual({ type: "sliding", size: "10m", slide: "1m" });
  });

  it("of every accepted rule can be read by GET /stats", () => {
    const windows: Record<string, string>[] = [];
    for (const size of ["1m", "5m", "15m", "1h", "6h", "1d", "7d", "10080m"]) {
      windows.push({ type: "tumbling", size });
      for (const slide of ["1m", "5m", "1h", "1d"]) windows.push({ type: "sliding", size, slide });
    }
    for (const gap of ["1m", "30m", "2h", "120m"]) windows.push({ type: "session", gap });
    let accepted = 0;
    for (const window of windows) {
      const valid = validateRule(rule(window));
      if (!valid.ok) continue;
      accepted++;
      expect(() => planRuleWindow(valid.value.window, NOW), JSON.stringify(window)).not.toThrow();
    }
    // Most of them are valid: the check is not vacuous.
    expect(accepted).toBeGreaterThan(windows.length / 2);
    expect(accepted).toBeLessThan(windows.length);
  });
});

/**
 * A 400 invalid_rule listed its problems in two shapes: `{field, message}` objects when the
 * schema found them (`"window.size": must be 1m..`), but bare strings when a later check did
 * (`"field: required for metric sum"`), so a client reading `details.problems[i].field` got
 * undefined for a sum rule without a field. Every problem is now `{field, message}`.
 */
describe("the problems of an invalid rule", () => {
  const cases: [string, unknown, string | undefined, string][] = [
    ["schema: a size no duration", rule({ type: "tumbling", size: "7x" }), undefined, "window.size"],
    ["sum without a field", { ...rule({ type: "tumbling", size: "1m" }), metric: "sum" }, undefined, "field"],
    ["a rule_id other than the path's", rule({ type: "tumbling", size: "1m" }), "other", "rule_id"],
    [
      "a slide longer than the size",
      rule({ type: "sliding", size: "5m", slide: "10m" }),
      undefined,
      "window.slide",
    ],
  ];
  for (const [name, body, pathRuleId, field] of cases) {
    it(`are {field, message} objects: ${name}`, () => {
      const result = validateRule(body, pathRuleId);
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.error).toMatchObject({ status: 400, code: "invalid_rule" });
      const details = result.error.details as { problems: unknown[] };
      expect(details.problems.length).toBeGreaterThan(0);
      for (const p of details.problems) {
        expect(p).toEqual({ field: expect.any(String), message: expect.any(String) });
      }
      expect(details.problems).toContainEqual(expect.objectContaining({ field }));
      expect(result.error.message).toContain(`${field}: `);
    });
  }
});

/**
 * POST /rules answered 201 for `group_by: ["country"]` (meant: properties.country) or
 * `field: "amount"`: paths no event has. The rule then counted every event in one group "" (or
 * summed nothing) and said nothing about why. A field or group_by path must now name an event
 * field, or a path inside properties or metadata.
 */
describe("a rule's field and group_by paths", () => {
  const base = { rule_id: "paths", event_type: "checkout", window: { type: "tumbling", size: "1m" } };

  it("are refused when no event can have them, naming each", () => {
    const result = validateRule({
      ...base,
      metric: "sum",
      field: "amount",
      group_by: ["country", "properties.country", "metadata."],
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toMatchObject({ status: 400, code: "invalid_rule" });
    const fields = (result.error.details as { problems: { field: string }[] }).problems.map((p) => p.field);
    expect(fields).toEqual(["field", "group_by.0", "group_by.2"]);
    expect(result.error.message).toContain('"country" is not a field of an event');
    expect(result.error.message).toContain("properties.<name>");
  });

  it("are accepted for event fields and paths inside properties and metadata", () => {
    for (const [metric, field, group_by] of [
      ["sum", "properties.amount", ["properties.country", "metadata.platform"]],
      ["max", "properties.cart.total", ["page_url"]],
      ["unique", "session_id", ["user_id", "event_type"]],
      ["count", undefined, ["metadata.screen.w"]],
    ] as const) {
      const result = validateRule({ ...base, metric, ...(field ? { field } : {}), group_by });
      expect(result.ok, JSON.stringify(result)).toBe(true);
    }
  });

  it("of every built-in rule are event paths", () => {
    for (const rule of BUILT_IN_RULES) {
      const { version: _v, reads: _r, rollup: _o, detailed: _d, time_basis: _t, ...input } = rule;
      const result = validateRule({ ...input, rule_id: "copy" });
      expect(result.ok, rule.rule_id).toBe(true);
    }
  });
});

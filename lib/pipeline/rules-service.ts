import type { z } from "zod";
import { RuleExistsError, RuleNotFoundError, type RulesStore } from "../adapters/rules-store.ts";
import { MAX_ACTIVE_RULES, MAX_RULES, RuleSchema } from "../contract/api.ts";
import { type ApiError, badRequest, conflict, notFound } from "../contract/errors.ts";
import { StoredEventSchema } from "../contract/event.ts";
import { parseRuleWindow, ReadPlanError } from "../stream/read-plan.ts";
import { type AggregationRule, BUILT_IN_RULES, LATE_EVENTS_RULE } from "../stream/rules.ts";

type Result<T> = { ok: true; value: T } | { ok: false; error: ApiError };

const ruleLimit = (message: string): ApiError => ({ status: 409, code: "rule_limit", message });

/** Event fields that hold objects: a rule reads a path inside them (`properties.amount`). */
const OBJECT_FIELDS = new Set(["properties", "metadata"]);
/** Event fields a rule reads as they are (`user_id`, `page_url`, …). */
const SCALAR_FIELDS = Object.keys(StoredEventSchema.shape).filter((k) => !OBJECT_FIELDS.has(k));

/**
 * Whether `path` can name a value of an event. Any other path (`country` for
 * `properties.country`, `amount`) reads nothing from every event: its rule stored one group "" or
 * no sum at all, and said nothing.
 */
function isEventPath(path: string): boolean {
  const [head = "", ...rest] = path.split(".");
  if (OBJECT_FIELDS.has(head)) return rest.length > 0 && rest.every((part) => part.length > 0);
  return rest.length === 0 && SCALAR_FIELDS.includes(head);
}

const NOT_AN_EVENT_PATH = `is not a field of an event: use ${SCALAR_FIELDS.join(", ")}, or properties.<name> or metadata.<name>`;

const reserved = new Set([...BUILT_IN_RULES.map((r) => r.rule_id), LATE_EVENTS_RULE.rule_id]);

/** Validates a rule body: the schema, then what the schema cannot say. */
/** One 400 for every check that refuses a rule: `{field, message}` problems, also in the message. */
function invalidRule(problems: readonly { field: string; message: string }[]): ApiError {
  return badRequest(problems.map((p) => `${p.field}: ${p.message}`).join("; "), { problems }, "invalid_rule");
}

export function validateRule(body: unknown, pathRuleId?: string): Result<AggregationRule> {
  const input =
    typeof body === "object" && body !== null && pathRuleId ? { rule_id: pathRuleId, ...body } : body;
  const parsed = RuleSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => ({
      field: i.path.join(".") || "(rule)",
      message: i.message,
    }));
    return { ok: false, error: invalidRule(problems) };
  }
  const r: z.infer<typeof RuleSchema> = parsed.data;
  // The same {field, message} entries as the schema's problems: a client reads one shape for
  // invalid_rule, whichever check found the problem.
  const problems: { field: string; message: string }[] = [];
  const problem = (field: string, message: string) => problems.push({ field, message });
  if (pathRuleId && r.rule_id !== pathRuleId) problem("rule_id", "must match the path");
  if (["sum", "avg", "min", "max"].includes(r.metric) && !r.field)
    problem("field", `required for metric ${r.metric}`);
  if (r.field !== undefined && !isEventPath(r.field)) problem("field", `"${r.field}" ${NOT_AN_EVENT_PATH}`);
  r.group_by.forEach((path, i) => {
    if (!isEventPath(path)) problem(`group_by.${i}`, `"${path}" ${NOT_AN_EVENT_PATH}`);
  });
  if (r.window.type === "sliding" && (!r.window.size || !r.window.slide))
    problem("window", "sliding needs size and slide");
  if (r.window.type === "tumbling" && !r.window.size) problem("window", "tumbling needs size");
  // What the schema cannot say of a window (a slide longer than the size, a size beyond the
  // roll-ups' retention) is otherwise found only when GET /stats reads the rule: it was stored
  // and counted, and every read of it answered 400.
  if (problems.length === 0) {
    try {
      parseRuleWindow(r.window);
    } catch (error) {
      if (!(error instanceof ReadPlanError)) throw error;
      const named = /^(window\.[a-z]+) (.+)$/.exec(error.message);
      problem(named?.[1] ?? "window", named?.[2] ?? error.message);
    }
  }
  if (r.window.type === "session" && r.group_by.length === 0) r.group_by = ["user_id"];
  if (problems.length > 0) return { ok: false, error: invalidRule(problems) };
  return {
    ok: true,
    value: {
      rule_id: r.rule_id,
      ...(r.name !== undefined ? { name: r.name } : {}),
      event_type: r.event_type,
      metric: r.metric,
      ...(r.field !== undefined ? { field: r.field } : {}),
      group_by: r.group_by,
      window: r.window.type === "session" ? { ...r.window, gap: r.window.gap ?? "30m" } : r.window,
      active: r.active,
    },
  };
}

/** The error when `stored` already holds MAX_ACTIVE_RULES active rules. */
function activeLimit(stored: readonly AggregationRule[]): ApiError | undefined {
  if (stored.filter((r) => r.active).length < MAX_ACTIVE_RULES) return undefined;
  return ruleLimit(
    `at most ${MAX_ACTIVE_RULES} rules can be active; disable one (DELETE /rules/{rule_id}) or create this one with active: false`,
  );
}

/**
 * A rule's version: unchanged when only its name, window or active flag change (the window says
 * how stored windows are read, not what is stored); bumped when what is stored changes (event
 * type, metric, field, group_by), so the new definition writes under a new storage key and never
 * reads windows folded under the old one (issue 8.13). The old version's windows expire with
 * their TTL.
 */
export function nextVersion(existing: AggregationRule, updated: AggregationRule): number {
  const current = existing.version ?? 1;
  const stored = (r: AggregationRule) =>
    JSON.stringify([r.event_type, r.metric, r.field ?? null, r.group_by]);
  return stored(existing) === stored(updated) ? current : current + 1;
}

export class RulesService {
  constructor(private readonly store: RulesStore) {}

  async list(): Promise<AggregationRule[]> {
    return [...BUILT_IN_RULES, ...(await this.store.list())];
  }

  async get(ruleId: string): Promise<Result<AggregationRule>> {
    const builtIn = BUILT_IN_RULES.find((r) => r.rule_id === ruleId);
    if (builtIn) return { ok: true, value: builtIn };
    const rule = await this.store.get(ruleId);
    return rule ? { ok: true, value: rule } : { ok: false, error: notFound(`no rule ${ruleId}`) };
  }

  async create(body: unknown): Promise<Result<AggregationRule>> {
    const rule = validateRule(body);
    if (!rule.ok) return rule;
    if (reserved.has(rule.value.rule_id))
      return { ok: false, error: conflict(`${rule.value.rule_id} is a built-in rule`) };
    const stored = await this.store.list();
    if (stored.length >= MAX_RULES && !stored.some((r) => r.rule_id === rule.value.rule_id))
      return {
        ok: false,
        error: ruleLimit(
          `at most ${MAX_RULES} rules can be stored; change an existing one (PUT /rules/{rule_id}) instead`,
        ),
      };
    if (rule.value.active) {
      const full = activeLimit(stored);
      if (full) return { ok: false, error: full };
    }
    try {
      await this.store.create(rule.value);
      return rule;
    } catch (error) {
      if (error instanceof RuleExistsError)
        return { ok: false, error: conflict(`rule ${rule.value.rule_id} exists; PUT to change it`) };
      throw error;
    }
  }

  async update(ruleId: string, body: unknown): Promise<Result<AggregationRule>> {
    if (reserved.has(ruleId))
      return { ok: false, error: badRequest(`${ruleId} is a built-in rule and cannot change`) };
    const rule = validateRule(body, ruleId);
    if (!rule.ok) return rule;
    const existing = await this.store.get(ruleId);
    if (!existing) return { ok: false, error: notFound(`no rule ${ruleId}`) };
    if (rule.value.active && !existing.active) {
      const full = activeLimit(await this.store.list());
      if (full) return { ok: false, error: full };
    }
    const versioned: AggregationRule = { ...rule.value, version: nextVersion(existing, rule.value) };
    try {
      await this.store.replace(versioned);
      return { ok: true, value: versioned };
    } catch (error) {
      if (error instanceof RuleNotFoundError) return { ok: false, error: notFound(`no rule ${ruleId}`) };
      throw error;
    }
  }

  /** Disables a rule: it stops counting; its windows stay readable. */
  async disable(ruleId: string): Promise<Result<AggregationRule>> {
    if (reserved.has(ruleId))
      return { ok: false, error: badRequest(`${ruleId} is a built-in rule and cannot be disabled`) };
    const rule = await this.store.get(ruleId);
    if (!rule) return { ok: false, error: notFound(`no rule ${ruleId}`) };
    const disabled: AggregationRule = { ...rule, active: false };
    await this.store.replace(disabled);
    return { ok: true, value: disabled };
  }
}

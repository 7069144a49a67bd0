import fc from "fast-check";
import { expect } from "vitest";
import {
  type Fence,
  type FenceChange,
  FenceConflictError,
  type PartialKey,
  type StoreChange,
  type WindowStore,
} from "../../lib/adapters/window-store.ts";
import type { StatsQuery } from "../../lib/contract/api.ts";
import type { AcceptedEvent } from "../../lib/contract/event.ts";
import {
  aggregateBatch,
  OpenDeltas,
  PendingSliceError,
  RecentEventIds,
} from "../../lib/pipeline/aggregate-batch.ts";
import type { ClosedWindowCache } from "../../lib/pipeline/closed-windows.ts";
import { readStats, StatsQueryError } from "../../lib/pipeline/stats-service.ts";
import type { Granularity } from "../../lib/stream/fold.ts";
import { HLL_STANDARD_ERROR } from "../../lib/stream/hll.ts";
import type { PartialRecord } from "../../lib/stream/partial-items.ts";
import { BUILT_IN_RULES } from "../../lib/stream/rules.ts";
import {
  type ExactSum,
  HOUR,
  type LogRecord,
  MINUTE,
  type ModelGroup,
  processLogs,
  ReferenceModel,
} from "./reference-model.ts";

/**
 * The property of issue 8 ("Proof"), shared by the unit test (memory store) and the integration
 * test (DynamoDB Local): random partition logs with duplicates, out-of-order, late and future
 * events, hostile keys and huge numbers, delivered by a random schedule (batch boundaries,
 * replays of committed ranges, crashes at a random store write followed by a retry from the last
 * committed Kafka offset, container replacements, several partitions per batch) through the real
 * aggregateBatch and a WindowStore; then every GET /stats figure is compared with the model.
 */
export const TOPIC = "events.raw";
export const STORE_PARTITIONS = 3;
/** Event time origin of every scenario (arrivals within 30 minutes after it). */
export const T0 = Date.UTC(2026, 10, 24, 12, 0, 0);
/** When GET /stats is read: after every event's time (future skew included). */
export const READ_NOW = T0 + 40 * MINUTE + 17_000;

const HOSTILE = ["__proto__", "constructor", "toString", "hasOwnProperty", "a\u0000b", "\u001f", "ünï🙂"];
export const TYPES = ["page_view", "purchase_completed", "click", "constructor"];

const userArb = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom(...HOSTILE) },
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 30 }).map((i) => `u${i}`) },
);
const urlArb = fc.oneof(
  fc.constantFrom(...HOSTILE, ""),
  fc.integer({ min: 0, max: 5 }).map((i) => `/p${i}`),
  // 2 KB URLs (the contract's maximum is 2,048 characters)
  fc.integer({ min: 0, max: 3 }).map((i) => `https://shop.example/${i}/${"x".repeat(2_000)}`.slice(0, 2_048)),
);
const amountArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -1_000, max: 1_000 }),
  fc.integer({ min: 0, max: 1_000 }).map((i) => 2 ** 53 + i * 2),
  fc.integer({ min: 0, max: 1_000 }).map((i) => -(2 ** 60) - i * 256),
  fc.constantFrom(1e300, -1e300, 0.1, -0.3, 1e-300),
  fc.double({ min: -1e6, max: 1e6, noNaN: true }),
  fc.double({ min: -1e300, max: 1e300, noNaN: true }),
  fc.constantFrom("12", null, true),
);
/** Event time relative to arrival: jitter, late, from the future (≤ 5 min ahead), hours old. */
const skewArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -40_000, max: 30_000 }) },
  { weight: 2, arbitrary: fc.integer({ min: -30 * MINUTE, max: -2 * MINUTE }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 5 * MINUTE }) },
  { weight: 1, arbitrary: fc.integer({ min: -11 * HOUR, max: -3 * HOUR }) },
);

const newEventArb = fc.record({
  partition: fc.integer({ min: 0, max: STORE_PARTITIONS - 1 }),
  user: userArb,
  type: fc.constantFrom(...TYPES),
  arrival: fc.integer({ min: 0, max: 30 * MINUTE }),
  skew: skewArb,
  session: fc.option(fc.constantFrom("s1", "s2", "s3", "__proto__", "\u0000"), { nil: undefined }),
  url: fc.option(urlArb, { nil: undefined }),
  amount: fc.option(amountArb, { nil: undefined }),
  currency: fc.option(fc.constantFrom("EUR", "USD", ...HOSTILE), { nil: undefined }),
  extra: fc.option(fc.constantFrom(...HOSTILE), { nil: undefined }),
});
type NewEvent = typeof newEventArb extends fc.Arbitrary<infer T> ? T : never;
/** A resend of an earlier event (same event_id, same partition), or a new one. */
const opArb = fc.oneof(
  { weight: 5, arbitrary: newEventArb.map((e) => ({ kind: "new" as const, e })) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("resend" as const), of: fc.nat(), delay: fc.nat(5 * MINUTE) }),
  },
);

export interface Step {
  /** Records delivered per partition (from the last committed Kafka offset). */
  readonly sizes: readonly number[];
  /** Replay this many already committed records first (a rewound consumer). */
  readonly rewind: number;
  /** The store write (apply) at which the invocation dies, counted from its start. */
  readonly crashAt: number | undefined;
  /** The invocation runs in a new execution environment (empty RecentEventIds). */
  readonly newContainer: boolean;
  /**
   * Two invocations of the same batch run at once, each in its own new execution environment
   * (a rebalance's zombie): one commits each slice, the other's commit fails on the fence.
   */
  readonly zombie: boolean;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  sizes: fc.array(fc.integer({ min: 0, max: 12 }), {
    minLength: STORE_PARTITIONS,
    maxLength: STORE_PARTITIONS,
  }),
  rewind: fc.oneof(
    { weight: 4, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 15 }) },
  ),
  crashAt: fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined, freq: 3 }),
  newContainer: fc.integer({ min: 0, max: 4 }).map((i) => i === 0),
  zombie: fc.integer({ min: 0, max: 5 }).map((i) => i === 0),
});

export interface Scenario {
  readonly logs: Map<number, LogRecord[]>;
  readonly steps: readonly Step[];
  /** The aggregator's clock: windows it considers closed are compacted. */
  readonly processingNow: number;
  /**
   * One hot partition, arrivals within 40 seconds, at most one new record per invocation: windows collect many deltas, so compaction by delta count (16 a minute window, 64 an
   * hourly one) and in rounds runs, not only compaction of closed windows.
   */
  readonly trickle: boolean;
  /** Deltas a slice is cut at (`AggregateDeps.maxSliceDeltas`): small, a batch is several slices. */
  readonly maxSliceDeltas: number | undefined;
}

function toEvent(e: NewEvent, id: number, arrivalSpreadMs: number): AcceptedEvent {
  const received_at = T0 + (e.arrival % arrivalSpreadMs);
  const properties: [string, unknown][] = [];
  if (e.amount !== undefined) properties.push(["amount", e.amount]);
  if (e.currency !== undefined) properties.push(["currency", e.currency]);
  if (e.extra !== undefined) properties.push([e.extra, 1]);
  const event = {
    event_id: `e${id}`,
    user_id: e.user,
    event_type: e.type,
    timestamp: Math.max(1, received_at + e.skew),
    received_at,
    ...(e.session !== undefined ? { session_id: e.session } : {}),
    ...(e.url !== undefined ? { page_url: e.url } : {}),
    ...(properties.length > 0 ? { properties: Object.fromEntries(properties) } : {}),
  };
  // As the consumer sees it: parsed from JSON (own `__proto__` keys, no -0, no undefined).
  return JSON.parse(JSON.stringify(event)) as AcceptedEvent;
}

export function scenarioArb(maxEvents: number): fc.Arbitrary<Scenario> {
  return fc
    .integer({ min: 0, max: 4 })
    .map((i) => i === 0)
    .chain((trickle) =>
      fc.record({
        // "medium": lengths up to maxEvents (fast-check's default size keeps arrays near 10);
        // a trickle takes maxEvents records, so that hourly windows (64 deltas) compact by count.
        ops: fc.array(opArb, {
          minLength: trickle ? maxEvents : 1,
          maxLength: maxEvents,
          size: "medium",
        }),
        steps: fc.array(stepArb, { maxLength: 40, size: "medium" }),
        processingNow: fc.constantFrom(T0 - HOUR, READ_NOW),
        trickle: fc.constant(trickle),
        // 8 rules with late_events: 16 cuts a batch at two distinct minutes of event time.
        maxSliceDeltas: fc.constantFrom(undefined, 16, 24),
      }),
    )
    .map(({ ops, steps, processingNow, trickle, maxSliceDeltas }) => {
      const logs = new Map<number, LogRecord[]>();
      const all: LogRecord[] = [];
      for (const op of ops) {
        let partition: number;
        let event: AcceptedEvent;
        if (op.kind === "new") {
          partition = trickle ? 0 : op.e.partition;
          event = toEvent(op.e, all.length, trickle ? 40_000 : 30 * MINUTE + 1);
        } else {
          const original = all[op.of % Math.max(1, all.length)];
          if (!original) continue;
          partition = original.partition;
          event = { ...original.event, received_at: original.event.received_at + op.delay };
        }
        const log = logs.get(partition) ?? [];
        const record = { partition, offset: log.length, event };
        log.push(record);
        logs.set(partition, log);
        all.push(record);
      }
      return { logs, steps, processingNow, trickle, maxSliceDeltas };
    });
}

/**
 * A WindowStore that dies at a chosen apply, like a Lambda killed mid-invocation. Calls of the
 * dying invocation still in flight (other partitions of the batch) are awaited before the
 * schedule goes on, so no write of a dead invocation lands after its retry started.
 */
export class CrashingStore implements WindowStore {
  applies = 0;
  crashAt = Number.POSITIVE_INFINITY;
  readonly #inflight = new Set<Promise<unknown>>();
  constructor(readonly inner: WindowStore) {}
  get consumedWriteUnits() {
    return this.inner.consumedWriteUnits;
  }
  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    return p;
  }
  /** A write of the store, or the death of the invocation at it (`crashAt`). */
  #write(send: () => Promise<void>): Promise<void> {
    if (this.applies >= this.crashAt) return Promise.reject(new Error("crash"));
    this.applies++;
    return this.#track(send());
  }
  getFence(topic: string, partition: number): Promise<Fence> {
    return this.#track(this.inner.getFence(topic, partition));
  }
  apply(change: StoreChange): Promise<void> {
    return this.#write(() => this.inner.apply(change));
  }
  putFence(change: FenceChange): Promise<void> {
    return this.#write(() => this.inner.putFence(change));
  }
  putDeltas(puts: readonly PartialRecord[]): Promise<void> {
    return this.#write(() => this.inner.putDeltas(puts));
  }
  missingDeltas(puts: readonly PartialRecord[]) {
    return this.#track(this.inner.missingDeltas(puts));
  }
  putDeltasIfAbsent(puts: readonly PartialRecord[]): Promise<void> {
    return this.#write(() => this.inner.putDeltasIfAbsent(puts));
  }
  extendDelta(
    put: PartialRecord,
    previous: { readonly through: number; readonly bytes: number },
  ): Promise<void> {
    return this.#write(() => this.inner.extendDelta(put, previous));
  }
  getDelta(key: PartialKey) {
    return this.#track(this.inner.getDelta(key));
  }
  discard(deltas: readonly PartialKey[]): Promise<void> {
    return this.#write(() => this.inner.discard(deltas));
  }
  read(ruleKey: string, granularity: Granularity, windowStarts: readonly number[], partition?: number) {
    return this.#track(this.inner.read(ruleKey, granularity, windowStarts, partition));
  }
  fenceSnapshot(topic: string, partitions: number) {
    return this.#track(this.inner.fenceSnapshot(topic, partitions));
  }
  async settle(): Promise<void> {
    for (let i = 0; i < 1_000; i++) {
      await Promise.allSettled([...this.#inflight]);
      await new Promise((r) => setImmediate(r));
      if (this.#inflight.size === 0) return;
    }
    throw new Error("a dead invocation never settled");
  }
}

export interface RunResult {
  /** Per partition, the fences at which a new execution environment started. */
  readonly containerStarts: Map<number, number[]>;
  readonly invocations: number;
  readonly crashes: number;
  /** Compaction transactions committed by successful invocations. */
  readonly compactions: number;
  /** Zombie invocations that lost the fence race (and failed as a whole). */
  readonly fenceConflicts: number;
  /** Invocations refused because they carried only part of a claimed, unconfirmed slice. */
  readonly partialRetries: number;
  /** Claimed, unconfirmed slices written again by successful invocations. */
  readonly rewrites: number;
  /** Small deltas extended in place by successful invocations' slices. */
  readonly extensions: number;
  /** Extensions of claimed slices that a rewrite applied (its claimant died before it landed). */
  readonly extensionsRewritten: number;
}

let runClock = 0;

/**
 * Delivers the logs as the event-source mapping would under the scenario's schedule. `zombies`:
 * honour the steps' concurrent invocations. The model needs both of them to read the fence
 * before either commits (true of the memory store, whose calls complete in microtasks; against
 * DynamoDB one could read a fence the other already moved, and its dedupe cache would start
 * later than the model assumes).
 */
export async function deliver(
  scenario: Scenario,
  store: CrashingStore,
  {
    zombies = false,
    afterInvocation,
  }: {
    zombies?: boolean;
    /** Runs after every invocation (a reader polling GET /stats while the log is delivered). */
    afterInvocation?: () => Promise<void>;
  } = {},
): Promise<RunResult> {
  const partitions = [...scenario.logs.keys()];
  const committed = new Map(partitions.map((p) => [p, -1]));
  const containerStarts = new Map(partitions.map((p) => [p, [-1]]));
  let recent = new RecentEventIds();
  let openDeltas = new OpenDeltas();
  let invocations = 0;
  let crashes = 0;
  let compactions = 0;
  let fenceConflicts = 0;
  let partialRetries = 0;
  let rewrites = 0;
  let extensions = 0;
  let extensionsRewritten = 0;
  // Each run writes at its own instant (a few ms apart; no window edge moves), as real runs do.
  runClock = (runClock + 1) % 40_000;
  const clock = scenario.processingNow + runClock;
  const pending = () =>
    partitions.some((p) => (committed.get(p) ?? -1) < (scenario.logs.get(p)?.length ?? 0) - 1);
  for (let i = 0; pending(); i++) {
    if (i > scenario.steps.length + 10_000) throw new Error("schedule did not finish");
    const rest = scenario.trickle ? 1 : 50;
    const step: Step = scenario.steps[i] ?? {
      sizes: [rest, rest, rest],
      rewind: 0,
      crashAt: undefined,
      newContainer: false,
      zombie: false,
    };
    const zombie = zombies && step.zombie;
    const startContainer = async () => {
      recent = new RecentEventIds();
      openDeltas = new OpenDeltas();
      for (const p of partitions) containerStarts.get(p)?.push((await store.getFence(TOPIC, p)).lastOffset);
    };
    if (step.newContainer || zombie) await startContainer();
    const batch: LogRecord[] = [];
    const last = new Map<number, number>();
    for (const p of partitions) {
      const log = scenario.logs.get(p) ?? [];
      const next = (committed.get(p) ?? -1) + 1;
      const from = Math.max(0, next - step.rewind);
      const size = Math.min(step.sizes[p] ?? 0, scenario.trickle ? 1 : Number.POSITIVE_INFINITY);
      const records = log.slice(from, next + size);
      batch.push(...records);
      if (records.length > 0) last.set(p, records.at(-1)?.offset ?? -1);
    }
    if (batch.length === 0) continue;
    invocations++;
    store.crashAt = step.crashAt === undefined ? Number.POSITIVE_INFINITY : store.applies + step.crashAt;
    const invoke = (ids: RecentEventIds, open: OpenDeltas) =>
      aggregateBatch(TOPIC, batch, {
        store,
        rules: BUILT_IN_RULES,
        recent: ids,
        openDeltas: open,
        publishLate: async () => {},
        now: () => clock,
        ...(scenario.maxSliceDeltas === undefined ? {} : { maxSliceDeltas: scenario.maxSliceDeltas }),
      });
    const results = await Promise.allSettled(
      zombie
        ? [invoke(recent, openDeltas), invoke(new RecentEventIds(), new OpenDeltas())]
        : [invoke(recent, openDeltas)],
    );
    // A dead invocation's other partitions still run until they reach the store: settle them
    // before the crash is disarmed, so none of their writes lands after the retry started.
    if (results.some((r) => r.status === "rejected")) await store.settle();
    store.crashAt = Number.POSITIVE_INFINITY;
    let ok = false;
    for (const r of results) {
      if (r.status === "fulfilled") {
        ok = true;
        compactions += r.value.compactions;
        rewrites += r.value.rewrites;
        extensions += r.value.extensions;
        extensionsRewritten += r.value.extensionsRewritten;
      } else if (r.reason instanceof Error && r.reason.message === "crash") crashes++;
      // A retry that carries only part of a slice claimed before a crash: the mapping retries again.
      else if (r.reason instanceof PendingSliceError) partialRetries++;
      else if (!(zombie && r.reason instanceof FenceConflictError)) throw r.reason;
      else fenceConflicts++;
    }
    if (ok) for (const [p, o] of last) committed.set(p, Math.max(committed.get(p) ?? -1, o));
    // After a zombie round the surviving environment's cache missed what the other committed.
    if (zombie) await startContainer();
    await afterInvocation?.();
  }
  for (const p of partitions) {
    const fence = await store.getFence(TOPIC, p);
    expect(fence.lastOffset, `fence of partition ${p}`).toBe((scenario.logs.get(p)?.length ?? 0) - 1);
  }
  return {
    containerStarts,
    invocations,
    crashes,
    compactions,
    fenceConflicts,
    partialRetries,
    rewrites,
    extensions,
    extensionsRewritten,
  };
}

// --- comparing /stats with the model -----------------------------------------------------------

interface GotFigures {
  count: number;
  sum?: number;
  sum_out_of_range?: boolean;
  avg?: number;
  min?: number;
  max?: number;
  unique?: number;
  unique_users?: number;
}

/**
 * The sum guarantee the suite proves: the exact sum, rounded once (to nearest, ties to even); a
 * sum that rounds beyond ±MAX_VALUE is left out and flagged (JSON has no Infinity).
 */
function expectSum(label: string, got: GotFigures | undefined, s: ExactSum): void {
  const exact = `exact sum ${s.total} · 2^-1074, n=${s.n}`;
  if (Number.isFinite(s.value)) {
    expect(got?.sum, `${label}: sum (${exact})`).toBe(s.value);
    expect(got?.sum_out_of_range, `${label}: sum in range`).toBeUndefined();
  } else {
    expect(got?.sum, `${label}: no sum beyond the range (${exact})`).toBeUndefined();
    expect(got?.sum_out_of_range, `${label}: sum_out_of_range`).toBe(true);
  }
}

export function expectFigures(
  label: string,
  got: GotFigures | undefined,
  m: ModelGroup,
  { unique, values = true }: { unique?: "unique" | "unique_users"; values?: boolean } = {},
): void {
  expect(got?.count ?? 0, `${label}: count`).toBe(m.count);
  if (values && m.values.n > 0) {
    expectSum(label, got, m.values);
    expect(got?.min, `${label}: min`).toBe(m.values.min);
    expect(got?.max, `${label}: max`).toBe(m.values.max);
    expect(got?.avg, `${label}: avg`).toBe(m.values.mean);
  } else {
    expect(got?.sum, `${label}: no values, no sum`).toBeUndefined();
    expect(got?.avg, `${label}: no values, no avg`).toBeUndefined();
  }
  if (unique) {
    const estimate = got?.[unique] ?? 0;
    const exact = m.ids.size;
    expect(
      Math.abs(estimate - exact) <= 3 * HLL_STANDARD_ERROR * exact,
      `${label}: ${unique} ${estimate} vs exactly ${exact}`,
    ).toBe(true);
  }
}

interface GotGroup extends GotFigures {
  group: Record<string, string>;
}

const TOP_GROUPS = 20;

/** The top groups by count (ties in any order), each with the model's figures. */
export function expectGroups(
  label: string,
  got: readonly GotGroup[] | undefined,
  model: Map<string, ModelGroup>,
  groupBy: readonly string[],
  options: { unique?: "unique"; values?: boolean } = {},
): void {
  const list = got ?? [];
  expect(list.length, `${label}: groups`).toBe(Math.min(TOP_GROUPS, model.size));
  const keyOf = (g: GotGroup) => (groupBy.length === 0 ? "" : (g.group[groupBy[0] as string] as string));
  const seen = new Set<string>();
  for (const g of list) {
    const key = keyOf(g);
    expect(Object.keys(g.group), `${label}: group shape`).toEqual([...groupBy]);
    expect(seen.has(key), `${label}: group ${JSON.stringify(key)} once`).toBe(false);
    seen.add(key);
    const m = model.get(key);
    expect(m, `${label}: group ${JSON.stringify(key)} exists`).toBeDefined();
    expectFigures(`${label} group ${JSON.stringify(key)}`, g, m as ModelGroup, options);
  }
  const top = [...model.values()]
    .map((m) => m.count)
    .sort((a, b) => b - a)
    .slice(0, TOP_GROUPS);
  expect(
    list.map((g) => g.count).sort((a, b) => b - a),
    `${label}: top counts`,
  ).toEqual(top);
}

interface SeriesPoint extends GotFigures {
  minute: string;
  seconds: number;
}

interface EventTypeStats extends GotFigures {
  late_events: number;
  series: SeriesPoint[];
  groups?: GotGroup[];
}

interface RuleStats extends GotFigures {
  unique_users?: number;
  series: SeriesPoint[];
  groups: GotGroup[];
}

/** Builds the model for a finished run. */
export function modelOf(scenario: Scenario, run: RunResult): ReferenceModel {
  return new ReferenceModel(processLogs(scenario.logs, run.containerStarts));
}

export interface ReadPlan {
  /** A second read instant (event_type intervals, rule windows). */
  readonly readAt: number;
  readonly interval: "1m" | "5m" | "15m" | "30m";
  /** Rule ranges `[from, to)`: minutes, whole hours inside and minutes at the edges. */
  readonly ranges: readonly (readonly [number, number])[];
}

export const readPlanArb: fc.Arbitrary<ReadPlan> = fc.record({
  readAt: fc.integer({ min: T0 - 5 * MINUTE, max: READ_NOW }),
  interval: fc.constantFrom("1m", "5m", "15m", "30m"),
  ranges: fc.array(
    fc
      .tuple(fc.integer({ min: T0 - 12 * HOUR, max: READ_NOW }), fc.integer({ min: 1, max: 12 * HOUR }))
      .map(([from, len]) => [from, Math.min(from + len, READ_NOW)] as const)
      .filter(([from, to]) => from < to),
    { minLength: 1, maxLength: 3 },
  ),
});

const RULE_GROUP_BY: Record<string, readonly string[]> = {
  events_by_type: ["event_type"],
  unique_users: [],
  active_users: [],
  page_views_by_url: ["page_url"],
  active_sessions_per_user: ["user_id"],
  revenue_by_currency: ["properties.currency"],
  late_events: ["event_type"],
};
const RULE_UNIQUE: Record<string, boolean> = {
  events_by_type: true,
  unique_users: true,
  active_users: true,
  active_sessions_per_user: true,
};
/** What a rule read without a range covers (docs: the rule's own window), as `[from, to)`. */
const RULE_WINDOW: Record<string, (now: number) => number> = {
  events_by_type: (now) => Math.floor(now / MINUTE) * MINUTE,
  unique_users: (now) => Math.floor(now / MINUTE) * MINUTE,
  active_users: (now) => Math.floor((now - 5 * MINUTE) / MINUTE) * MINUTE,
  page_views_by_url: (now) => Math.floor((now - 15 * MINUTE) / MINUTE) * MINUTE,
  active_sessions_per_user: (now) => Math.floor((now - 5 * MINUTE) / MINUTE) * MINUTE,
  revenue_by_currency: (now) => Math.floor(now / MINUTE) * MINUTE,
  late_events: (now) => Math.floor(now / MINUTE) * MINUTE,
};

const INTERVAL_MS = { "1m": MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE, "30m": 30 * MINUTE, "1h": HOUR };

/** The series' windows tile `[floor(from, 1m), ceil(to, 1m))`, in order, minutes or hours. */
function expectTiling(label: string, series: readonly SeriesPoint[], from: number, to: number): void {
  let at = Math.floor(from / MINUTE) * MINUTE;
  for (const point of series) {
    expect(Date.parse(point.minute), `${label}: series window start`).toBe(at);
    expect([60, 3_600], `${label}: window size`).toContain(point.seconds);
    at += point.seconds * 1_000;
  }
  expect(at, `${label}: series end`).toBe(
    Math.max(Math.floor(from / MINUTE) * MINUTE, Math.ceil(to / MINUTE) * MINUTE),
  );
}

const windowOf = (p: SeriesPoint) =>
  [Date.parse(p.minute), Date.parse(p.minute) + p.seconds * 1_000] as const;

/** Every GET /stats figure the plan reads, against the model; returns the reads made. */
export async function expectStatsMatchModel(
  store: WindowStore,
  model: ReferenceModel,
  plan: ReadPlan,
  cache?: ClosedWindowCache,
): Promise<number> {
  let reads = 0;
  const read = async <T>(query: StatsQuery, now: number): Promise<T> => {
    reads++;
    return (await readStats(store, BUILT_IN_RULES, query, now, cache)) as unknown as T;
  };
  // By event type: the last interval, i.e. the minutes intersecting [now − interval, now).
  for (const [interval, now] of [
    ["1h", READ_NOW],
    [plan.interval, plan.readAt],
  ] as const) {
    const from = now - INTERVAL_MS[interval];
    for (const type of TYPES) {
      const label = `${type} over ${interval} at ${new Date(now).toISOString()}`;
      const got = await read<EventTypeStats>(
        {
          kind: "event_type",
          event_type: type,
          interval,
          intervalMs: INTERVAL_MS[interval],
          field: "properties.amount",
          group_by: [],
        },
        now,
      );
      expectFigures(label, got, model.group("events_by_type", type, from, now), { unique: "unique_users" });
      expect(got.late_events, `${label}: late_events`).toBe(
        model.group("late_events", type, from, now).count,
      );
      expectTiling(label, got.series, from, now);
      for (const point of got.series) {
        const [start, end] = windowOf(point);
        expectFigures(
          `${label} window ${point.minute}`,
          point,
          model.group("events_by_type", type, start, end),
          {
            unique: "unique_users",
          },
        );
      }
    }
    for (const [type, path, ruleId] of [
      ["purchase_completed", "properties.currency", "revenue_by_currency"],
      ["page_view", "page_url", "page_views_by_url"],
    ] as const) {
      const got = await read<EventTypeStats>(
        {
          kind: "event_type",
          event_type: type,
          interval,
          intervalMs: INTERVAL_MS[interval],
          group_by: [path],
        },
        now,
      );
      expectGroups(
        `${type} by ${path} over ${interval}`,
        got.groups,
        model.groups(ruleId, from, now),
        [path],
        {
          values: ruleId === "revenue_by_currency",
        },
      );
    }
  }
  // By rule: ranges [from, to), and each rule's own window (no range) at another instant.
  const ranged = [[T0 - 30 * MINUTE, READ_NOW] as const, [T0 - 12 * HOUR, READ_NOW] as const, ...plan.ranges];
  for (const ruleId of Object.keys(RULE_GROUP_BY)) {
    const queries: { from: number; to: number; now: number; query: StatsQuery }[] = [
      ...ranged.map(([from, to]) => ({
        from,
        to,
        now: READ_NOW,
        query: { kind: "rule" as const, rule_id: ruleId, from, to },
      })),
      {
        from: (RULE_WINDOW[ruleId] as (now: number) => number)(plan.readAt),
        to: plan.readAt,
        now: plan.readAt,
        query: { kind: "rule", rule_id: ruleId },
      },
    ];
    for (const { from, to, now, query } of queries) {
      // A rule without hourly roll-ups (the per-user built-in) refuses windows covering over 24 hours.
      if (
        BUILT_IN_RULES.find((r) => r.rule_id === ruleId)?.rollup === false &&
        Math.ceil(to / MINUTE) * MINUTE - Math.floor(from / MINUTE) * MINUTE > 24 * HOUR
      ) {
        await expect(read<RuleStats>(query, now), `${ruleId}: range beyond 24 hours`).rejects.toThrow(
          StatsQueryError,
        );
        continue;
      }
      const got = await read<RuleStats>(query, now);
      const label = `${ruleId} [${new Date(from).toISOString()}, ${new Date(to).toISOString()})`;
      expectTiling(label, got.series, from, to);
      const groups = model.groups(ruleId, from, to);
      expect(got.count, `${label}: count`).toBe(model.count(ruleId, from, to));
      expect(
        got.series.map((p) => p.count),
        `${label}: series`,
      ).toEqual(got.series.map((p) => model.count(ruleId, ...windowOf(p))));
      const unique = RULE_UNIQUE[ruleId] ? ("unique" as const) : undefined;
      expectGroups(label, got.groups, groups, RULE_GROUP_BY[ruleId] ?? [], {
        ...(unique ? { unique } : {}),
        values: ruleId === "revenue_by_currency",
      });
      if ((RULE_GROUP_BY[ruleId] ?? []).length === 0)
        expectFigures(`${label} (totals)`, got, model.group(ruleId, "", from, to), {
          ...(unique ? { unique: "unique_users" as const } : {}),
          values: false,
        });
    }
  }
  return reads;
}

/** fast-check parameters: a fixed seed unless FAST_CHECK_SEED / FAST_CHECK_RUNS say otherwise. */
export function checkParameters(defaultRuns: number, defaultSeed: number) {
  const seed = Number(process.env.FAST_CHECK_SEED ?? defaultSeed);
  const numRuns = Number(process.env.FAST_CHECK_RUNS ?? defaultRuns);
  if (!Number.isInteger(seed) || !Number.isInteger(numRuns) || numRuns < 1)
    throw new Error("FAST_CHECK_SEED and FAST_CHECK_RUNS must be integers");
  return { seed, numRuns };
}

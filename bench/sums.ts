import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { addValue, mergeStats, type NumberStats, newStats, statsSum } from "../lib/stream/partial.ts";

/**
 * `npx tsx bench/sums.ts`: the CPU cost of folding numbers into the stream partials (the
 * aggregator's hot path), exact sums (lib/stream/exact-sum.ts) against the Neumaier compensated
 * pair they replaced (copied below). 1,000,000 typical amounts (integers 1–500 and two-decimal
 * prices like 12.34, half each), folded into one group and spread over 1,000 groups, then the
 * 1,000 group partials merged 100 times over (the read path). Each way runs in its own process
 * (no call site sees both), twice, alternating; best of several rounds, in ns per value.
 */
interface Compensated {
  n: number;
  s: number;
  e: number;
  mn: number;
  mx: number;
}
const newCompensated = (v: number): Compensated => ({ n: 1, s: v, e: 0, mn: v, mx: v });
function addCompensated(acc: Compensated, v: number): void {
  const t = acc.s + v;
  if (Number.isFinite(t)) acc.e += Math.abs(acc.s) >= Math.abs(v) ? acc.s - t + v : v - t + acc.s;
  acc.s = t;
}
function addCompensatedValue(acc: Compensated, v: number): void {
  acc.n++;
  addCompensated(acc, v);
  if (v < acc.mn) acc.mn = v;
  if (v > acc.mx) acc.mx = v;
}
function mergeCompensated(into: Compensated, other: Compensated): void {
  into.n += other.n;
  addCompensated(into, other.s);
  addCompensated(into, other.e);
  if (other.mn < into.mn) into.mn = other.mn;
  if (other.mx > into.mx) into.mx = other.mx;
}

interface Way<S> {
  readonly name: string;
  readonly create: (v: number) => S;
  readonly add: (s: S, v: number) => void;
  readonly merge: (into: S, other: S) => void;
}
const compensated: Way<Compensated> = {
  name: "compensated (before)",
  create: newCompensated,
  add: addCompensatedValue,
  merge: mergeCompensated,
};
const exact: Way<NumberStats> = { name: "exact (now)", create: newStats, add: addValue, merge: mergeStats };

const N = 1_000_000;
const GROUPS = 1_000;
const ROUNDS = Number(process.env.ROUNDS ?? 7);

// Deterministic values (a small LCG): integers 1–500, and prices with two decimals below 500.
let seed = 42;
const random = () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
  return seed / 2 ** 31;
};
const values = Float64Array.from({ length: N }, (_, i) =>
  i % 2 === 0 ? 1 + Math.floor(random() * 500) : Math.round(random() * 50_000) / 100,
);
const groupOf = Uint16Array.from({ length: N }, () => Math.floor(random() * GROUPS));

function time(fn: () => number): { ns: number; check: number } {
  let best = Number.POSITIVE_INFINITY;
  let check = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    check = fn();
    best = Math.min(best, Number(process.hrtime.bigint() - start));
  }
  return { ns: best, check };
}

function run<S extends { n: number }>(way: Way<S>, sum: (s: S) => number) {
  const oneGroup = time(() => {
    const s = way.create(values[0] as number);
    for (let i = 1; i < N; i++) way.add(s, values[i] as number);
    return sum(s);
  });
  let groups: S[] = [];
  const manyGroups = time(() => {
    groups = new Array<S>(GROUPS);
    for (let i = 0; i < N; i++) {
      const g = groupOf[i] as number;
      const s = groups[g];
      if (s) way.add(s, values[i] as number);
      else groups[g] = way.create(values[i] as number);
    }
    return groups.length;
  });
  const merge = time(() => {
    const total = way.create(0);
    for (let k = 0; k < 100; k++) for (const s of groups) way.merge(total, s);
    return sum(total);
  });
  return {
    way: way.name,
    "fold, 1 group (ns/value)": (oneGroup.ns / N).toFixed(2),
    "fold, 1,000 groups (ns/value)": (manyGroups.ns / N).toFixed(2),
    "merge (ns/partial)": (merge.ns / (100 * GROUPS)).toFixed(2),
    sum: oneGroup.check,
  };
}

const way = process.argv[2];
if (way === "compensated") console.log(JSON.stringify(run(compensated, (s) => s.s + s.e)));
else if (way === "exact") console.log(JSON.stringify(run(exact, statsSum)));
else {
  const rows = [];
  for (let pass = 0; pass < 2; pass++)
    for (const name of ["compensated", "exact"]) {
      const out = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), name]);
      rows.push(JSON.parse(out.toString()));
    }
  console.table(rows);
}

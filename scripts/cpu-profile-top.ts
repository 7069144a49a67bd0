import { readFileSync } from "node:fs";

/**
 * `npx tsx scripts/cpu-profile-top.ts <file.cpuprofile> [n]`: self time by function and by
 * package/file of a V8 CPU profile (what `TIDEMARK_MAPPINGS_CPU_PROF` writes), largest first.
 */
interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
const [file, top = "25"] = process.argv.slice(2);
if (!file) throw new Error("usage: cpu-profile-top.ts <file.cpuprofile> [n]");
const profile = JSON.parse(readFileSync(file, "utf8")) as {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
};
const byNode = new Map<number, number>();
for (const [i, id] of profile.samples.entries())
  byNode.set(id, (byNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
const total = [...byNode.values()].reduce((a, b) => a + b, 0);
const fns = new Map<string, number>();
const places = new Map<string, number>();
for (const node of profile.nodes) {
  const us = byNode.get(node.id) ?? 0;
  const url = node.callFrame.url.replace(/^file:\/\//, "");
  const place = url.includes("node_modules/")
    ? (url.split("node_modules/").pop() ?? url)
        .split("/")
        .slice(0, url.includes("/@") ? 2 : 1)
        .join("/")
    : url.replace(/^.*?\/(lib|functions|local)\//, "$1/") || `(${node.callFrame.functionName || "native"})`;
  const fn = `${node.callFrame.functionName || "(anonymous)"} ${place}:${node.callFrame.lineNumber + 1}`;
  fns.set(fn, (fns.get(fn) ?? 0) + us);
  places.set(place, (places.get(place) ?? 0) + us);
}
const show = (title: string, m: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, Number(top)))
    console.log(
      `${((100 * v) / total).toFixed(1).padStart(5)} %  ${(v / 1e6).toFixed(1).padStart(7)} s  ${k}`,
    );
};
console.log(`total sampled: ${(total / 1e6).toFixed(1)} s`);
show("self time by package / file", places);
show("self time by function", fns);

import { describe, expect, it } from "vitest";

/** web/chart-axis.js is a browser module (plain JS, served as is): loaded by path, typed here. */
interface FakeChart {
  axes: { font: [string, number]; ticks: { size: number }; gap: number; _size?: number }[];
  ctx: { font: string; measureText: (text: string) => { width: number } };
}
const axisModule = "../../web/chart-axis.js";
const { countAxisSize, countLabels } = (await import(axisModule)) as {
  countLabels: (u: unknown, splits: (number | null)[]) => string[];
  countAxisSize: (u: FakeChart, values: string[] | null, axisIdx: number, cycleNum: number) => number;
};

/** A canvas whose font draws every character 7 px wide. */
function chart(): FakeChart {
  return {
    axes: [
      { font: ["12px system-ui", 12], ticks: { size: 10 }, gap: 5 },
      { font: ["12px system-ui", 12], ticks: { size: 10 }, gap: 5 },
    ],
    ctx: { font: "", measureText: (text) => ({ width: text.length * 7 }) },
  };
}

describe("the events chart's count axis", () => {
  it("labels counts compactly, so six-digit minutes stay readable", () => {
    expect(countLabels(undefined, [0, 950, 1500, 120_000, 2_400_000, null])).toEqual([
      "0",
      "950",
      "1.5K",
      "120K",
      "2.4M",
      "",
    ]);
  });

  it("makes the gutter as wide as its widest label (uPlot's default 50 px cut '120,000' to '0,000')", () => {
    const u = chart();
    const labels = ["0", "20,000", "40,000", "120,000"];
    const size = countAxisSize(u, labels, 1, 0);
    // tick 10 + gap 5 + 7 characters of 7 px
    expect(size).toBeGreaterThanOrEqual(10 + 5 + 7 * 7);
    expect(u.ctx.font).toBe("12px system-ui");
    // a narrow axis gets a narrow gutter
    expect(countAxisSize(chart(), ["0", "5"], 1, 0)).toBeLessThan(size);
  });

  it("settles: after two layout cycles it keeps the size uPlot already has", () => {
    const u = chart();
    const axis = u.axes[1];
    if (axis) axis._size = 61;
    expect(countAxisSize(u, ["1,000,000,000"], 1, 2)).toBe(61);
  });
});

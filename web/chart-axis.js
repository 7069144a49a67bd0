// The events chart's count axis. uPlot draws its labels on the canvas in a gutter of a fixed
// width (50 px by default), which cut "120,000" to "0,000": labels are compact ("120K") and the
// gutter is as wide as the widest label needs.

const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

/** Tick labels of a count axis: "950", "1.5K", "120K", "2.4M". */
export function countLabels(_u, splits) {
  return splits.map((v) => (v == null ? "" : compact.format(v)));
}

/**
 * uPlot's `axis.size` hook: the gutter that fits the widest label, plus the tick and the gap.
 * uPlot calls it again with the labels each layout cycle; it must settle, so after two cycles it
 * keeps the size it has.
 */
export function countAxisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1 && axis._size) return axis._size;
  const longest = (values ?? []).reduce((a, v) => (String(v).length > a.length ? String(v) : a), "");
  const ticks = (axis.ticks?.size ?? 10) + (axis.gap ?? 5);
  if (longest === "") return ticks + 30;
  u.ctx.font = Array.isArray(axis.font) ? axis.font[0] : axis.font;
  const pixels = u.ctx.measureText(longest).width / (globalThis.devicePixelRatio || 1);
  return Math.ceil(ticks + pixels + 4);
}

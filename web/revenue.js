// Revenue figures as the dashboard shows them. GET /stats and the live messages leave `sum` out
// when it is beyond a double's range (±1.8e308, which JSON cannot write) and say so with
// `sum_out_of_range`: read as `sum ?? 0`, such a currency showed 0.00, as if nothing was sold.

/** What the dashboard keeps for a sum it cannot show as a number. */
export const OUT_OF_RANGE = "out of range";

/** The revenue of a GET /stats group or an analytics.stats message: a number, or OUT_OF_RANGE. */
export function revenueOf(figures) {
  if (figures.sum_out_of_range) return OUT_OF_RANGE;
  return figures.sum ?? 0;
}

/** An hour's revenue per minute. */
export function perMinute(revenue, minutes) {
  return revenue === OUT_OF_RANGE ? OUT_OF_RANGE : revenue / minutes;
}

/** The table cell's text. */
export function revenueText(revenue, format) {
  return revenue === OUT_OF_RANGE ? "beyond ±1.8e308" : format.format(revenue);
}

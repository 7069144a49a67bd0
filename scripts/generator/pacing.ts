/**
 * Paces sends at `rate` events/s: a token bucket holding at most `capacity` tokens. `take(n, now)`
 * always takes the tokens, going into debt when there are not enough, and returns how long to wait
 * before sending (the time the debt takes to refill), so the long-run rate is exactly `rate`, and
 * an idle spell (waiting for a free request slot) can bank at most `capacity` tokens of burst.
 * Unlike the local API Gateway's bucket (which rejects), this one schedules.
 */
export class Pacer {
  #tokens: number;
  #last: number;
  constructor(
    private readonly rate: number,
    private readonly capacity: number,
    now: number,
  ) {
    if (!(rate > 0) || !(capacity > 0)) throw new RangeError("rate and capacity must be positive");
    this.#tokens = capacity;
    this.#last = now;
  }

  /** Takes `n` tokens at `now` (ms); returns the milliseconds to wait before using them. */
  take(n: number, now: number): number {
    this.#tokens = Math.min(this.capacity, this.#tokens + ((now - this.#last) / 1000) * this.rate);
    this.#last = now;
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : (-this.#tokens / this.rate) * 1000;
  }
}

/**
 * Request latencies in logarithmic buckets (2 % wide), so a run that goes on until Ctrl-C keeps
 * constant memory and still reports p50/p99 within 2 %.
 */
export class LatencyHistogram {
  static readonly #GROWTH = Math.log(1.02);
  readonly #buckets = new Map<number, number>();
  #count = 0;
  #max = 0;

  record(ms: number): void {
    const bucket = Math.max(0, Math.ceil(Math.log(Math.max(ms, 0.01) / 0.01) / LatencyHistogram.#GROWTH));
    this.#buckets.set(bucket, (this.#buckets.get(bucket) ?? 0) + 1);
    this.#count++;
    this.#max = Math.max(this.#max, ms);
  }

  get count(): number {
    return this.#count;
  }

  /** The `p`th percentile (0..100) in ms: the upper edge of its bucket, capped at the maximum seen. */
  percentile(p: number): number {
    if (this.#count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (const bucket of [...this.#buckets.keys()].sort((a, b) => a - b)) {
      seen += this.#buckets.get(bucket) ?? 0;
      if (seen >= rank) return Math.min(this.#max, 0.01 * Math.exp(bucket * LatencyHistogram.#GROWTH));
    }
    return this.#max;
  }

  get max(): number {
    return this.#count === 0 ? Number.NaN : this.#max;
  }
}

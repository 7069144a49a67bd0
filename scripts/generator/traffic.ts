import type { EventInput } from "../../lib/contract/event.ts";
import { DEFAULT_ALLOWED_LATENESS_MS } from "../../lib/stream/watermark.ts";

/**
 * Simulated e-commerce traffic, pure and deterministic for a given seed: every simulated user
 * browses in sessions (landing page view → product views → add to cart → checkout → purchase,
 * dropping off on the way), and a requested share of the events is sent late (event time older
 * than the allowed lateness) or resent as a duplicate (same `event_id`). No I/O and no clock:
 * the caller passes `now`, so tests can check the stream the runner sends.
 */
export const EVENT_TYPES = [
  "page_view",
  "product_view",
  "add_to_cart",
  "checkout",
  "purchase_completed",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export type EventKind = "on_time" | "late" | "duplicate";

export interface TrafficOptions {
  /** Seeds every choice and the event ids: the same seed yields the same events (given the same `now`s). */
  readonly seed: number;
  /** Simulated users (user ids `user-0` … `user-<users-1>`). */
  readonly users: number;
  /** Share of events whose event time is older than the allowed lateness (0..1). @default 0 */
  readonly lateRatio?: number;
  /** Share of sends that resend a recent event unchanged, same `event_id` (0..1). @default 0 */
  readonly duplicateRatio?: number;
  /** Prepended to every event type, e.g. `t1_` → `t1_page_view` (tells runs apart in GET /stats). @default "" */
  readonly eventTypePrefix?: string;
  /** Late events are older than this (the pipeline's default allowed lateness). */
  readonly allowedLatenessMs?: number;
}

export interface GeneratedEvent {
  readonly event: EventInput;
  readonly kind: EventKind;
}

/** mulberry32: a tiny seeded PRNG, plenty for traffic shapes (not for anything secret). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const SHOP = "https://shop.example";
const CATEGORIES = ["shoes", "shirts", "jackets", "bags", "watches", "books", "toys", "kitchen"] as const;
const PRODUCTS = 500;
const COUNTRIES = [
  { country: "US", currency: "USD", fx: 1, weight: 35 },
  { country: "GB", currency: "GBP", fx: 0.79, weight: 12 },
  { country: "DE", currency: "EUR", fx: 0.92, weight: 12 },
  { country: "FR", currency: "EUR", fx: 0.92, weight: 9 },
  { country: "ES", currency: "EUR", fx: 0.92, weight: 5 },
  { country: "CA", currency: "CAD", fx: 1.36, weight: 7 },
  { country: "JP", currency: "JPY", fx: 150, weight: 8 },
  { country: "BR", currency: "BRL", fx: 5, weight: 6 },
  { country: "IN", currency: "INR", fx: 83, weight: 6 },
] as const;
const PLATFORMS = [
  {
    platform: "web",
    weight: 55,
    userAgent:
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
  },
  {
    platform: "ios",
    weight: 25,
    userAgent:
      "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
  },
  {
    platform: "android",
    weight: 20,
    userAgent:
      "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36",
  },
] as const;

/** Unit prices in USD; product `p-<i>` costs the same in every run. */
const priceUsd = (product: number) => 5 + ((product * 7919) % 2000) / 10;
const categoryOf = (product: number) => CATEGORIES[product % CATEGORIES.length] as string;

interface User {
  readonly id: string;
  readonly country: (typeof COUNTRIES)[number];
  readonly platform: (typeof PLATFORMS)[number];
  readonly ip: string;
}

type Step = "browse" | "product" | "checkout";

interface Session {
  readonly id: string;
  step: Step;
  product: number;
  readonly cart: { product: number; quantity: number; price: number }[];
  /** Event time of the session's last on-time event: a session's events never go back in time. */
  last: number;
}

/** How many recent events a duplicate is drawn from. */
const RECENT = 1024;

export class TrafficModel {
  readonly #random: () => number;
  readonly #users = new Map<number, User>();
  readonly #sessions = new Map<number, Session>();
  readonly #recent: EventInput[] = [];
  readonly #options: Required<TrafficOptions>;
  readonly #idPrefix: string;
  #seq = 0;
  #sessionSeq = 0;
  #orderSeq = 0;

  constructor(options: TrafficOptions) {
    this.#options = {
      lateRatio: 0,
      duplicateRatio: 0,
      eventTypePrefix: "",
      allowedLatenessMs: DEFAULT_ALLOWED_LATENESS_MS,
      ...options,
    };
    const { users, lateRatio, duplicateRatio } = this.#options;
    if (!Number.isInteger(users) || users < 1) throw new RangeError("users must be a positive integer");
    if (lateRatio < 0 || duplicateRatio < 0 || lateRatio + duplicateRatio > 1)
      throw new RangeError("lateRatio and duplicateRatio must be ≥ 0 and add up to at most 1");
    this.#random = seededRandom(options.seed);
    this.#idPrefix = `g${(options.seed >>> 0).toString(36)}`;
  }

  /** The next event to send at wall-clock time `now` (epoch ms). */
  next(now: number): GeneratedEvent {
    const r = this.#random();
    const { duplicateRatio, lateRatio } = this.#options;
    if (r < duplicateRatio && this.#recent.length > 0) {
      const event = this.#recent[Math.floor(this.#random() * this.#recent.length)] as EventInput;
      return { event, kind: "duplicate" };
    }
    const late = r >= duplicateRatio && r < duplicateRatio + lateRatio;
    const event = this.#sessionEvent(now, late);
    if (this.#recent.length < RECENT) this.#recent.push(event);
    else this.#recent[this.#seq % RECENT] = event;
    return { event, kind: late ? "late" : "on_time" };
  }

  batch(size: number, now: number): GeneratedEvent[] {
    return Array.from({ length: size }, () => this.next(now));
  }

  #pick<T extends { readonly weight: number }>(items: readonly T[]): T {
    const total = items.reduce((n, i) => n + i.weight, 0);
    let r = this.#random() * total;
    for (const item of items) {
      r -= item.weight;
      if (r < 0) return item;
    }
    return items[items.length - 1] as T;
  }

  #int(n: number): number {
    return Math.floor(this.#random() * n);
  }

  /** Product popularity is skewed: low ids are viewed far more often (a long tail). */
  #product(): number {
    return Math.floor(PRODUCTS * this.#random() ** 2);
  }

  #user(index: number): User {
    let user = this.#users.get(index);
    if (!user) {
      user = {
        id: `user-${index}`,
        country: this.#pick(COUNTRIES),
        platform: this.#pick(PLATFORMS),
        // TEST-NET-3 (RFC 5737): documentation addresses, never a real client.
        ip: `203.0.113.${1 + (index % 254)}`,
      };
      this.#users.set(index, user);
    }
    return user;
  }

  #sessionEvent(now: number, late: boolean): EventInput {
    const index = this.#int(this.#options.users);
    const user = this.#user(index);
    let session = this.#sessions.get(index);
    const type = session ? this.#nextStep(session) : "page_view";
    if (!session || type === undefined) {
      session = {
        id: `${this.#idPrefix}-s${(this.#sessionSeq++).toString(36)}`,
        step: "browse",
        product: 0,
        cart: [],
        last: 0,
      };
      this.#sessions.set(index, session);
      return this.#emit(user, session, "page_view", now, late, { page: `${SHOP}/`, page_type: "home" });
    }
    return this.#emitStep(user, session, type, now, late, index);
  }

  /** The session's next event type, or undefined when the user leaves (a new session starts). */
  #nextStep(session: Session): EventType | undefined {
    const r = this.#random();
    const hasCart = session.cart.length > 0;
    switch (session.step) {
      case "browse":
        if (r < 0.6) return "product_view";
        if (r < 0.88) return "page_view";
        if (hasCart && r < 0.95) return "checkout";
        return undefined;
      case "product":
        if (r < 0.3) return "add_to_cart";
        if (r < 0.6) return "product_view";
        if (r < 0.8) return "page_view";
        if (hasCart && r < 0.9) return "checkout";
        return undefined;
      case "checkout":
        return r < 0.7 ? "purchase_completed" : undefined;
    }
  }

  #emitStep(
    user: User,
    session: Session,
    type: EventType,
    now: number,
    late: boolean,
    index: number,
  ): EventInput {
    const { currency, fx, country } = user.country;
    const price = (product: number) =>
      currency === "JPY"
        ? Math.round(priceUsd(product) * fx)
        : Math.round(priceUsd(product) * fx * 100) / 100;
    const total = () =>
      Math.round(session.cart.reduce((n, item) => n + item.price * item.quantity, 0) * 100) / 100;
    switch (type) {
      case "page_view": {
        session.step = "browse";
        const category = CATEGORIES[this.#int(CATEGORIES.length)] as string;
        return this.#emit(user, session, type, now, late, {
          page: `${SHOP}/c/${category}`,
          page_type: "category",
          category,
        });
      }
      case "product_view": {
        session.step = "product";
        session.product = this.#product();
        const product = session.product;
        return this.#emit(user, session, type, now, late, {
          page: `${SHOP}/p/p-${product}`,
          product_id: `p-${product}`,
          category: categoryOf(product),
          price: price(product),
          currency,
        });
      }
      case "add_to_cart": {
        const product = session.product;
        const quantity = 1 + (this.#random() < 0.2 ? this.#int(3) : 0);
        session.cart.push({ product, quantity, price: price(product) });
        return this.#emit(user, session, type, now, late, {
          page: `${SHOP}/p/p-${product}`,
          product_id: `p-${product}`,
          quantity,
          price: price(product),
          currency,
        });
      }
      case "checkout":
        session.step = "checkout";
        return this.#emit(user, session, type, now, late, {
          page: `${SHOP}/checkout`,
          amount: total(),
          currency,
          items: session.cart.reduce((n, item) => n + item.quantity, 0),
          country,
        });
      case "purchase_completed": {
        // The session ends with the purchase: the user's next event starts a new one.
        this.#sessions.delete(index);
        return this.#emit(user, session, type, now, late, {
          page: `${SHOP}/checkout/complete`,
          order_id: `${this.#idPrefix}-o${(this.#orderSeq++).toString(36)}`,
          amount: total(),
          currency,
          items: session.cart.reduce((n, item) => n + item.quantity, 0),
          country,
        });
      }
    }
  }

  #emit(
    user: User,
    session: Session,
    type: EventType,
    now: number,
    late: boolean,
    { page, ...properties }: { page: string } & Record<string, unknown>,
  ): EventInput {
    // Client clocks and queues: on-time events are up to 1 s old, never older than the session's
    // last one; late ones were held back (an offline phone) for 1 to 8 minutes past the lateness.
    const lateness = this.#options.allowedLatenessMs;
    const timestamp = late
      ? now - lateness - 60_000 - this.#int(7 * 60_000)
      : Math.max(session.last, now - this.#int(1000));
    if (!late) session.last = timestamp;
    return {
      event_id: `${this.#idPrefix}-${(this.#seq++).toString(36)}`,
      user_id: user.id,
      session_id: session.id,
      event_type: `${this.#options.eventTypePrefix}${type}`,
      timestamp: new Date(timestamp).toISOString(),
      page_url: page,
      properties,
      metadata: {
        platform: user.platform.platform,
        user_agent: user.platform.userAgent,
        country: user.country.country,
        ip_address: user.ip,
      },
    };
  }
}

import { TrafficModel } from "../scripts/generator/traffic.ts";

/**
 * Artillery hooks shared by the scenarios in this folder (Artillery bundles this TypeScript file
 * with its own esbuild). Request bodies come from the same traffic model as `npm run generate`,
 * so load tests send realistic e-commerce sessions, not one repeated event.
 */

/** Artillery's request parameters, as far as these hooks touch them. */
interface RequestParams {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  json?: unknown;
}
interface Context {
  vars: Record<string, unknown>;
}
interface Events {
  emit(kind: "counter", name: string, value: number): void;
}
type Next = (error?: Error) => void;

// One model per Artillery worker process; a random seed, so workers never share event ids.
const model = new TrafficModel({
  seed: Math.floor(Math.random() * 2 ** 32),
  users: Number(process.env.TIDEMARK_USERS ?? 5000),
});

/** Sends `x-api-key` from TIDEMARK_API_KEY when set (a deployed stage's usage plan needs it). */
export function withApiKey(req: RequestParams, _context: Context, _events: Events, next: Next): void {
  const key = process.env.TIDEMARK_API_KEY;
  if (key) req.headers = { ...req.headers, "x-api-key": key };
  next();
}

/** The body of a batched POST /events: `{events: [...]}` with `batchSize` (a variable; 100) events. */
export function withEvents(req: RequestParams, context: Context, _events: Events, next: Next): void {
  const size = Math.max(1, Number(context.vars.batchSize ?? 100));
  req.json = { events: model.batch(size, Date.now()).map((g) => g.event) };
  next();
}

/** The body of a POST /events with one event, the bare event object. */
export function withOneEvent(req: RequestParams, _context: Context, _events: Events, next: Next): void {
  req.json = model.next(Date.now()).event;
  next();
}

/**
 * Fails the virtual user on any status but the expected one (202 for POST /events, 200 for reads),
 * so `maxErrorRate` in `ensure` is the share of failed requests (each flow is one request). Also
 * counts accepted events (`tidemark.events_accepted`), as Artillery only counts requests.
 */
export function checkStatus(
  req: RequestParams,
  res: { statusCode: number; body?: unknown },
  _context: Context,
  events: Events,
  next: Next,
): void {
  const expected = req.method?.toUpperCase() === "POST" ? 202 : 200;
  if (res.statusCode !== expected) {
    events.emit("counter", `tidemark.unexpected_status.${res.statusCode}`, 1);
    next(new Error(`HTTP ${res.statusCode} (expected ${expected})`));
    return;
  }
  if (expected === 202 && typeof res.body === "string") {
    const accepted = (JSON.parse(res.body) as { accepted?: number }).accepted ?? 0;
    events.emit("counter", "tidemark.events_accepted", accepted);
  }
  next();
}

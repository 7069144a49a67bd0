import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalStack } from "../../local/stack.ts";
import { postJson, startPipeline, waitFor } from "./support.ts";

/** Debian's chromium (scripts/install-chromium.sh), driven by playwright-core. */
const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOT = join(process.cwd(), "docs/img/dashboard.png");
/** The API key both APIs want: the page gets it once in `#key=`, as the docs tell users. */
const API_KEY = "dashboard-test-key-0123456789";

async function launch(): Promise<{ context: BrowserContext; dataDir: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), "tidemark-chromium-"));
  const context = await chromium.launchPersistentContext(dataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 1000 },
  });
  return { context, dataDir };
}

// biome-ignore lint/performance/useDomNodeTextContent: Playwright locator: the rendered text is what a user reads.
const text = (page: Page, selector: string) => page.locator(selector).innerText();

describe("dashboard in a real browser", () => {
  let stack: LocalStack;
  let context: BrowserContext;
  let dataDir: string;
  beforeAll(async () => {
    stack = await startPipeline({ apiKey: API_KEY });
    ({ context, dataDir } = await launch());
  });
  afterAll(async () => {
    await context?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    await stack?.stop();
  });

  it("shows posted events as their aggregates arrive over the WebSocket", async () => {
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(e.message));
    // When the page's WebSocket received each frame, to time what the page itself adds.
    const frames: { at: number; payload: string }[] = [];
    page.on("websocket", (ws) =>
      ws.on("framereceived", (f) => frames.push({ at: performance.now(), payload: String(f.payload) })),
    );
    await page.goto(`${stack.url}/dashboard#key=${API_KEY}`);
    // Live only if the page opened the WebSocket with its key (the gateway refuses it without).
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: 15_000 });
    // The static modules came from the same API (uPlot vendored from its npm package).
    await page.locator("#rules li").first().waitFor();
    expect(await text(page, "#rules")).toContain("revenue_by_currency");

    const run = Date.now().toString(36);
    const now = Date.now();
    const url = `https://shop.example/products/live-${run}`;
    const events = [
      ...Array.from({ length: 7 }, (_, i) => ({
        user_id: `shopper-${run}-${i}`,
        session_id: `s-${run}-${i}`,
        event_type: "page_view",
        timestamp: now - i * 1000,
        page_url: url,
      })),
      ...Array.from({ length: 3 }, (_, i) => ({
        user_id: `shopper-${run}-${i}`,
        session_id: `s-${run}-${i}`,
        event_type: "page_view",
        timestamp: now,
        page_url: `https://shop.example/cart-${run}`,
      })),
      ...Array.from({ length: 4 }, (_, i) => ({
        user_id: `shopper-${run}-${i}`,
        session_id: `s-${run}-${i}`,
        event_type: "add_to_cart",
        timestamp: now,
        properties: { product_id: `p-${i}` },
      })),
      // GET /stats lists a rule's 20 largest groups by count, and earlier test files in the same
      // hour (the OpenAPI fuzzing) leave dozens of one-event currencies: USD must outnumber them.
      ...["EUR", "EUR", "USD", "USD", "USD", "USD", "USD"].map((currency, i) => ({
        user_id: `shopper-${run}-${i}`,
        session_id: `s-${run}-${i}`,
        event_type: "purchase_completed",
        timestamp: now,
        properties: { amount: 19.5 + i, currency },
      })),
      // Sums past a double's range: GET /stats and the live messages leave `sum` out and say
      // `sum_out_of_range`; the page showed them as 0.00, as if nothing was sold.
      ...Array.from({ length: 6 }, (_, i) => ({
        user_id: `shopper-${run}-${i}`,
        session_id: `s-${run}-${i}`,
        event_type: "purchase_completed",
        timestamp: now,
        properties: { amount: 1.7e308, currency: "XOV" },
      })),
    ];
    const posted = performance.now();
    expect((await postJson(`${stack.url}/events`, events, { "x-api-key": API_KEY })).status).toBe(202);

    // Posted events reach the page: the new URL tops the pages, the types are charted, revenue shows.
    await waitFor(async () => ((await text(page, "#top-pages")).includes(url) ? true : undefined), {
      timeoutMs: 15_000,
    });
    const shownAt = performance.now();
    // The page re-reads the top pages when a page_views_by_url update arrives: the first frame carrying it.
    const frame = frames.find((f) => f.payload.includes("page_views_by_url") && f.payload.includes(url));
    expect(frame, "the update came over the WebSocket").toBeDefined();
    const pageMs = shownAt - (frame?.at ?? shownAt);
    await waitFor(async () => ((await text(page, "#revenue")).includes("USD") ? true : undefined));
    // The row's cells: currency, this minute's revenue, the last hour's per minute. "This minute"
    // is the page's current minute: once the purchases' minute is over it reads 0.00, rightly.
    const beyond = "beyond ±1.8e308";
    const purchaseMinute = Math.floor(now / 60_000);
    const cells = await waitFor(
      async () => {
        const row = (await text(page, "#revenue")).split("\n").find((r) => r.includes("XOV"));
        const c = row?.split("\t");
        if (c?.[2] !== beyond) return undefined;
        return c[1] === beyond || Math.floor(Date.now() / 60_000) !== purchaseMinute ? c : undefined;
      },
      { timeoutMs: 15_000 },
    );
    expect(cells[2]).toBe(beyond);
    if (cells[1] !== beyond) expect(Math.floor(Date.now() / 60_000)).not.toBe(purchaseMinute);
    await waitFor(async () =>
      (await text(page, "#events-chart")).includes("add_to_cart") ? true : undefined,
    );
    expect((await text(page, "#top-pages")).split("\n")[0]).toContain(url);
    expect(Number((await text(page, "#active-users")).replace(/\D/g, ""))).toBeGreaterThanOrEqual(7);
    process.stderr.write(
      `dashboard: accepted → shown ${(shownAt - posted).toFixed(0)} ms, of which WebSocket frame → page ${pageMs.toFixed(0)} ms\n`,
    );

    await mkdir(join(process.cwd(), "docs/img"), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });

  it("fits a phone screen and falls back to polling when the WebSocket is unreachable", async () => {
    const page = await context.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    // A WebSocket that cannot connect: the page must say it polls, and still show data.
    await page.routeWebSocket(/.*/, (ws) => ws.close());
    await page.goto(`${stack.url}/dashboard#key=${API_KEY}`);
    await page.locator('#connection[data-state="polling"]').waitFor({ timeout: 15_000 });
    await page.locator("#rules li").first().waitFor();
    // Evaluated in the page (a string: this file is compiled without the DOM library).
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
    await page.close();
  });

  // Opened with a wrong key (or none) where the API wants one, the page showed "–" in every panel
  // under a fresh "updated" time (GET /health needs no key) and said nothing about the key.
  it("says when its API key is missing or refused, and shows data once a valid one is entered", async () => {
    const page = await context.newPage();
    const problem = page.locator("#key-problem");
    await page.goto(`${stack.url}/dashboard#key=not-the-key`);
    await expect.poll(() => problem.isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await problem.textContent()).toContain("API key refused");
    expect(await text(page, "#events-total")).toBe("–");

    await page.fill("#api-key", "");
    await page.press("#api-key", "Enter");
    await expect.poll(() => problem.textContent(), { timeout: 15_000 }).toContain("API key needed");

    await page.fill("#api-key", API_KEY);
    await page.press("#api-key", "Enter");
    await expect.poll(() => problem.isVisible(), { timeout: 15_000 }).toBe(false);
    await page.locator("#rules li").first().waitFor();
    expect(await text(page, "#events-total")).not.toBe("–");
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: 15_000 });
    await page.close();
  });
});

// The Tidemark dashboard: plain DOM counters and lists, a uPlot chart, data from GET /stats and
// GET /rules, refreshed within a second of each live-stats WebSocket update and every 30 s.
import { countAxisSize, countLabels } from "./chart-axis.js";
import { perMinute, revenueOf, revenueText } from "./revenue.js";
import uPlot from "./uPlot.esm.js";

const MINUTE = 60_000;
const POLL_MS = 30_000;
const CHART_TYPES = 8;
const COLORS = ["#0f766e", "#2563eb", "#d97706", "#dc2626", "#7c3aed", "#059669", "#db2777", "#4b5563"];

const $ = (id) => document.getElementById(id);
const liveUrl = document.querySelector('meta[name="tidemark-live-url"]')?.content ?? "";
const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });

// The API key (required by /stats and /rules in AWS): from `#key=…` once, then remembered.
const keyInput = $("api-key");
const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
if (fromHash) localStorage.setItem("tidemark-api-key", fromHash);
keyInput.value = localStorage.getItem("tidemark-api-key") ?? "";
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem("tidemark-api-key", keyInput.value.trim());
  void refresh();
  // The WebSocket was opened with the old key (or none): open it again with this one.
  reconnect();
});

/** A read the API refused for its key (401/403): the page says so instead of showing dashes. */
class KeyRefused extends Error {}

async function api(path) {
  const key = localStorage.getItem("tidemark-api-key");
  const res = await fetch(path, { headers: key ? { "x-api-key": key } : {} });
  if (res.status === 401 || res.status === 403) {
    showKeyProblem(key ? "API key refused: enter a valid one" : "API key needed: enter it here");
    throw new KeyRefused(`${path}: ${res.status}`);
  }
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  showKeyProblem(undefined);
  return res.json();
}

// Without this, a missing or wrong key left every panel at "–" under a fresh "updated" time
// (GET /health needs no key), and nothing said why.
function showKeyProblem(text) {
  const problem = $("key-problem");
  problem.hidden = text === undefined;
  problem.textContent = text ?? "";
  keyInput.setAttribute("aria-invalid", String(text !== undefined));
}

function setText(id, value) {
  const el = $(id);
  if (el.textContent !== value) el.textContent = value;
}

function fillList(id, rows) {
  const list = $(id);
  list.replaceChildren(
    ...rows.map(([label, value, className]) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = label;
      name.title = label;
      const v = document.createElement("span");
      v.textContent = value;
      li.append(name, v);
      if (className) li.className = className;
      return li;
    }),
  );
}

// Events per minute by type: minute → count per type, fed by polling and by live updates.
const perType = new Map();
let chart;
let chartTypes = [];

function minuteStarts(now) {
  const last = Math.floor(now / MINUTE) * MINUTE;
  return Array.from({ length: 60 }, (_, i) => last - (59 - i) * MINUTE);
}

function drawChart() {
  const starts = minuteStarts(Date.now());
  const types = [...perType.keys()]
    .map((t) => [t, [...perType.get(t).values()].reduce((a, b) => a + b, 0)])
    .sort((a, b) => b[1] - a[1])
    .slice(0, CHART_TYPES)
    .map(([t]) => t)
    .sort();
  const data = [
    starts.map((s) => s / 1000),
    ...types.map((t) => starts.map((s) => perType.get(t)?.get(s) ?? 0)),
  ];
  const el = $("events-chart");
  if (!chart || types.join("\u0000") !== chartTypes.join("\u0000")) {
    chart?.destroy();
    chartTypes = types;
    chart = new uPlot(
      {
        width: el.clientWidth || 300,
        height: 260,
        series: [{}, ...types.map((t, i) => ({ label: t, stroke: COLORS[i % COLORS.length], width: 2 }))],
        axes: [{}, { size: countAxisSize, values: countLabels }],
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      },
      data,
      el,
    );
  } else chart.setData(data);
}
new ResizeObserver(() => chart?.setSize({ width: $("events-chart").clientWidth, height: 260 })).observe(
  $("events-chart"),
);

// Revenue per currency: the current minute's sum, updated live too.
const revenueNow = new Map();
let revenueAvg = new Map();

function drawRevenue() {
  const currencies = [...new Set([...revenueNow.keys(), ...revenueAvg.keys()])].sort();
  $("revenue")
    .querySelector("tbody")
    .replaceChildren(
      ...currencies.map((c) => {
        const tr = document.createElement("tr");
        for (const text of [
          c || "(none)",
          revenueText(revenueNow.get(c) ?? 0, money),
          revenueText(revenueAvg.get(c) ?? 0, money),
        ]) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.append(td);
        }
        return tr;
      }),
    );
}

// Events in the last 60 minutes: re-read by the panel, moved by live updates in between.
let eventsTotal = 0;

const uniqueOf = (stats) => stats.groups?.[0]?.unique ?? 0;
const range = (ms, now = Date.now()) => `from=${now - ms}&to=${now}`;

async function loadEventTypes(types) {
  const series = await Promise.allSettled(
    types.map((t) => api(`stats?event_type=${encodeURIComponent(t)}&interval=1h`)),
  );
  series.forEach((r, i) => {
    if (r.status === "fulfilled")
      perType.set(types[i], new Map(r.value.series.map((p) => [Date.parse(p.minute), p.count])));
  });
}

/**
 * Each panel loads and renders on its own, so a fast answer is shown without waiting for a slow
 * one; `rules` are the rule ids whose live updates make it reload.
 */
const panels = [
  {
    rules: ["unique_users"],
    async load() {
      setText(
        "active-users",
        number.format(uniqueOf(await api(`stats?rule_id=active_users&${range(5 * MINUTE)}`))),
      );
    },
  },
  {
    rules: ["events_by_type"],
    async load(live) {
      // Live updates already moved the charted types' points: then only the total is re-read
      // (and types never seen). The 30-s poll re-reads the charted types' series too.
      const known = [...perType.keys()].slice(0, CHART_TYPES);
      const [total] = await Promise.all([
        api(`stats?rule_id=events_by_type&${range(60 * MINUTE)}`),
        live ? undefined : loadEventTypes(known),
      ]);
      eventsTotal = total.count;
      setText("events-total", number.format(eventsTotal));
      const types = total.groups.map((g) => g.group.event_type).filter(Boolean);
      await loadEventTypes(types.slice(0, CHART_TYPES).filter((t) => !known.includes(t)));
      drawChart();
    },
  },
  {
    rules: ["page_views_by_url"],
    async load() {
      const pages = await api(`stats?rule_id=page_views_by_url&${range(15 * MINUTE)}`);
      fillList(
        "top-pages",
        pages.groups
          .filter((g) => !g.group.other)
          .slice(0, 5)
          .map((g) => [g.group.page_url || "(no URL)", number.format(g.count)]),
      );
    },
  },
  {
    rules: ["active_sessions_per_user", "unique_users"],
    async load() {
      const [sessions, users] = await Promise.all([
        api(`stats?rule_id=user_sessions&${range(60 * MINUTE)}`),
        api(`stats?rule_id=unique_users&${range(60 * MINUTE)}`),
      ]);
      const people = uniqueOf(users);
      setText("sessions-per-user", people > 0 ? number.format(sessions.sessions / people) : "–");
      fillList(
        "sessions",
        sessions.groups
          .slice(0, 5)
          .map((g) => [g.group.user_id, `${g.count} session${g.count === 1 ? "" : "s"}`]),
      );
    },
  },
  {
    rules: ["late_events"],
    async load() {
      setText(
        "late-events",
        number.format((await api(`stats?rule_id=late_events&${range(60 * MINUTE)}`)).count),
      );
    },
  },
  {
    rules: ["revenue_by_currency"],
    async load() {
      const now = Date.now();
      const minute = Math.floor(now / MINUTE) * MINUTE;
      const [hour, current] = await Promise.all([
        api(`stats?rule_id=revenue_by_currency&${range(60 * MINUTE, now)}`),
        api(`stats?rule_id=revenue_by_currency&from=${minute}&to=${now}`),
      ]);
      revenueAvg = new Map(
        hour.groups.map((g) => [g.group["properties.currency"], perMinute(revenueOf(g), 60)]),
      );
      revenueNow.clear();
      for (const g of current.groups) revenueNow.set(g.group["properties.currency"], revenueOf(g));
      drawRevenue();
    },
  },
  {
    rules: [],
    async load() {
      const { rules } = await api("rules");
      fillList(
        "rules",
        rules.map((r) => [
          `${r.rule_id} — ${r.metric}${r.field ? `(${r.field})` : ""} of ${r.event_type}`,
          r.window?.size ?? r.window?.gap ?? r.window?.type ?? "",
          r.active ? "" : "inactive",
        ]),
      );
    },
  },
  {
    rules: [],
    async load() {
      // /health answers 503 when a service is down, with the same body.
      const key = localStorage.getItem("tidemark-api-key");
      const res = await fetch("health", { headers: key ? { "x-api-key": key } : {} });
      const dead = (await res.json()).dead_letter_records;
      setText("dead-letters", typeof dead === "number" ? number.format(dead) : "–");
    },
  },
];

// Per panel: at most one load in flight; updates meanwhile schedule exactly one more.
for (const panel of panels) Object.assign(panel, { running: false, again: false });
async function reload(panel, live = false) {
  if (panel.running) {
    panel.again = true;
    return;
  }
  panel.running = true;
  try {
    await panel.load(live);
    setText("updated", `updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    // A refused key is shown in the header; one warning per panel and poll would only repeat it.
    if (!(error instanceof KeyRefused)) console.warn("dashboard panel failed", error);
  } finally {
    panel.running = false;
    if (panel.again) {
      panel.again = false;
      void reload(panel, live);
    }
  }
}
const refresh = () => Promise.all(panels.map(reload));

function applyLive(messages) {
  let chartChanged = false;
  let revenueChanged = false;
  for (const m of messages) {
    if (m.granularity !== "m") continue;
    const start = Date.parse(m.window_start);
    if (m.rule_id === "events_by_type") {
      if (!perType.has(m.group)) perType.set(m.group, new Map());
      const minutes = perType.get(m.group);
      // A window's count only grows; what it adds since the last known value is new events.
      eventsTotal += Math.max(0, m.count - (minutes.get(start) ?? 0));
      minutes.set(start, m.count);
      chartChanged = true;
    }
    if (m.rule_id === "revenue_by_currency" && start === Math.floor(Date.now() / MINUTE) * MINUTE) {
      revenueNow.set(m.group, revenueOf(m));
      revenueChanged = true;
    }
  }
  if (chartChanged) {
    drawChart();
    setText("events-total", number.format(eventsTotal));
  }
  if (revenueChanged) drawRevenue();
}

function setConnection(state, text) {
  const badge = $("connection");
  badge.dataset.state = state;
  badge.textContent = text;
}

// The live-stats WebSocket takes the same API key, in `?key=` (a browser cannot set headers on
// a WebSocket); without a key it is refused where keys are required, and the page polls.
let socket;
let retry;

function liveUrlWithKey() {
  const key = localStorage.getItem("tidemark-api-key");
  if (!key) return liveUrl;
  const url = new URL(liveUrl);
  url.searchParams.set("key", key);
  return url.href;
}

function reconnect() {
  clearTimeout(retry);
  const old = socket;
  socket = undefined;
  old?.close();
  connect();
}

function connect() {
  if (!liveUrl) {
    setConnection("polling", "polling every 30 s");
    return;
  }
  const current = new WebSocket(liveUrlWithKey());
  socket = current;
  current.addEventListener("open", () => current.send(JSON.stringify({ action: "subscribe" })));
  current.addEventListener("message", (e) => {
    const frame = JSON.parse(e.data);
    if (frame.type === "subscribed") setConnection("live", "live");
    if (frame.type === "stats") {
      applyLive(frame.messages);
      const changed = new Set(frame.messages.map((m) => m.rule_id));
      for (const panel of panels) if (panel.rules.some((r) => changed.has(r))) void reload(panel, true);
    }
  });
  current.addEventListener("close", () => {
    // A socket replaced by reconnect() leaves the retrying to its successor.
    if (socket !== current) return;
    setConnection("polling", "polling every 30 s (reconnecting)");
    retry = setTimeout(connect, 5_000);
  });
}

connect();
void refresh();
setInterval(() => void refresh(), POLL_MS);

// The Tidemark dashboard: plain DOM counters and lists, a uPlot chart, data from GET /stats and
// GET /rules, refreshed within a second of each live-stats WebSocket update and every 30 s.
import uPlot from "./uPlot.esm.js";

const MINUTE = 60_000;
const POLL_MS = 30_000;
const MIN_REFRESH_GAP_MS = 500;
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
});

async function api(path) {
  const key = localStorage.getItem("tidemark-api-key");
  const res = await fetch(path, { headers: key ? { "x-api-key": key } : {} });
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
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
        axes: [{}, { size: 50 }],
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
          money.format(revenueNow.get(c) ?? 0),
          money.format(revenueAvg.get(c) ?? 0),
        ]) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.append(td);
        }
        return tr;
      }),
    );
}

const uniqueOf = (stats) => stats.groups?.[0]?.unique ?? 0;

async function refresh() {
  const now = Date.now();
  const range = (ms) => `from=${now - ms}&to=${now}`;
  const minute = Math.floor(now / MINUTE) * MINUTE;
  const [active, byType, pages, sessions, users, late, revenue, revenueMinute, rules, health] =
    await Promise.allSettled([
      api(`stats?rule_id=active_users&${range(5 * MINUTE)}`),
      api(`stats?rule_id=events_by_type&${range(60 * MINUTE)}`),
      api(`stats?rule_id=page_views_by_url&${range(15 * MINUTE)}`),
      api(`stats?rule_id=user_sessions&${range(60 * MINUTE)}`),
      api(`stats?rule_id=unique_users&${range(60 * MINUTE)}`),
      api(`stats?rule_id=late_events&${range(60 * MINUTE)}`),
      api(`stats?rule_id=revenue_by_currency&${range(60 * MINUTE)}`),
      api(`stats?rule_id=revenue_by_currency&from=${minute}&to=${now}`),
      api("rules"),
      api("health"),
    ]);
  const ok = (r) => (r.status === "fulfilled" ? r.value : undefined);

  if (ok(active)) setText("active-users", number.format(uniqueOf(ok(active))));
  if (ok(byType)) {
    setText("events-total", number.format(ok(byType).count));
    const types = ok(byType)
      .groups.map((g) => g.group.event_type)
      .filter(Boolean);
    const series = await Promise.allSettled(
      types.slice(0, CHART_TYPES).map((t) => api(`stats?event_type=${encodeURIComponent(t)}&interval=1h`)),
    );
    series.forEach((r, i) => {
      if (r.status !== "fulfilled") return;
      perType.set(types[i], new Map(r.value.series.map((p) => [Date.parse(p.minute), p.count])));
    });
    drawChart();
  }
  if (ok(pages))
    fillList(
      "top-pages",
      ok(pages)
        .groups.filter((g) => !g.group.other)
        .slice(0, 5)
        .map((g) => [g.group.page_url || "(no URL)", number.format(g.count)]),
    );
  if (ok(sessions)) {
    const s = ok(sessions);
    const people = ok(users) ? uniqueOf(ok(users)) : 0;
    setText("sessions-per-user", people > 0 ? number.format(s.sessions / people) : "–");
    fillList(
      "sessions",
      s.groups.slice(0, 5).map((g) => [g.group.user_id, `${g.count} session${g.count === 1 ? "" : "s"}`]),
    );
  }
  if (ok(late)) setText("late-events", number.format(ok(late).count));
  if (ok(revenue))
    revenueAvg = new Map(ok(revenue).groups.map((g) => [g.group["properties.currency"], (g.sum ?? 0) / 60]));
  if (ok(revenueMinute)) {
    revenueNow.clear();
    for (const g of ok(revenueMinute).groups) revenueNow.set(g.group["properties.currency"], g.sum ?? 0);
  }
  drawRevenue();
  if (ok(rules))
    fillList(
      "rules",
      ok(rules).rules.map((r) => [
        `${r.rule_id} — ${r.metric}${r.field ? `(${r.field})` : ""} of ${r.event_type}`,
        r.window?.size ?? r.window?.gap ?? r.window?.type ?? "",
        r.active ? "" : "inactive",
      ]),
    );
  const dead = ok(health)?.dead_letter_records;
  setText("dead-letters", typeof dead === "number" ? number.format(dead) : "–");
  setText("updated", `updated ${new Date().toLocaleTimeString()}`);
}

// At most one refresh in flight; a live update during one schedules exactly one more.
let refreshing = false;
let again = false;
let lastRefresh = 0;
async function scheduleRefresh() {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  const wait = lastRefresh + MIN_REFRESH_GAP_MS - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  try {
    await refresh();
  } catch (error) {
    console.warn("refresh failed", error);
  } finally {
    lastRefresh = Date.now();
    refreshing = false;
    if (again) {
      again = false;
      void scheduleRefresh();
    }
  }
}

function applyLive(messages) {
  let chartChanged = false;
  let revenueChanged = false;
  for (const m of messages) {
    if (m.granularity !== "m") continue;
    const start = Date.parse(m.window_start);
    if (m.rule_id === "events_by_type") {
      if (!perType.has(m.group)) perType.set(m.group, new Map());
      perType.get(m.group).set(start, m.count);
      chartChanged = true;
    }
    if (m.rule_id === "revenue_by_currency" && start === Math.floor(Date.now() / MINUTE) * MINUTE) {
      revenueNow.set(m.group, m.sum ?? 0);
      revenueChanged = true;
    }
  }
  if (chartChanged) drawChart();
  if (revenueChanged) drawRevenue();
}

function setConnection(state, text) {
  const badge = $("connection");
  badge.dataset.state = state;
  badge.textContent = text;
}

function connect() {
  if (!liveUrl) {
    setConnection("polling", "polling every 30 s");
    return;
  }
  const socket = new WebSocket(liveUrl);
  socket.addEventListener("open", () => socket.send(JSON.stringify({ action: "subscribe" })));
  socket.addEventListener("message", (e) => {
    const frame = JSON.parse(e.data);
    if (frame.type === "subscribed") setConnection("live", "live");
    if (frame.type === "stats") {
      applyLive(frame.messages);
      void scheduleRefresh();
    }
  });
  socket.addEventListener("close", () => {
    setConnection("polling", "polling every 30 s (reconnecting)");
    setTimeout(connect, 5_000);
  });
}

connect();
void scheduleRefresh();
setInterval(() => void scheduleRefresh(), POLL_MS);

// The ebbsocks dashboard: polls the JSON API and draws what it reads.
// No dependencies and no build step; everything the server sends is put on
// the page with textContent, never as HTML, because destination names and
// event messages can come from clients.
"use strict";

const POLL_MS = 1000;
const EVENTS_EVERY = 3; // polls between two event fetches
const WINDOW_MS = 5 * 60 * 1000;
const TOKEN_KEY = "ebbsocks.api-token";
const SVG_NS = "http://www.w3.org/2000/svg";

const COLOURS = {
  rss: "#1f4e9c",
  resident: "#3c8d4f",
  active: "#e08a1e",
  open: "#1f4e9c",
  sessions: "#e08a1e",
  rate: "#3c8d4f",
  up: "#1f4e9c",
  down: "#c2410c",
};

const CHARTS = {
  memory: {
    svg: "chart-memory", legend: "legend-memory", unit: (max) => byteUnit(max, ""),
    series: [
      { key: "rss", label: "RSS", colour: COLOURS.rss },
      { key: "allocResident", label: "allocator resident", colour: COLOURS.resident },
      { key: "allocActive", label: "allocator active", colour: COLOURS.active },
    ],
  },
  connections: {
    svg: "chart-connections", legend: "legend-connections",
    unit: () => ({ divisor: 1, suffix: "", integer: true }),
    series: [
      { key: "open", label: "open connections", colour: COLOURS.open },
      { key: "sessionsActive", label: "active sessions", colour: COLOURS.sessions },
      { key: "sessionsRate", label: "sessions started / s", colour: COLOURS.rate, dashed: true },
    ],
  },
  bytes: {
    svg: "chart-bytes", legend: "legend-bytes", unit: (max) => byteUnit(max, "/s"),
    series: [
      { key: "upRate", label: "client \u2192 upstream", colour: COLOURS.up },
      { key: "downRate", label: "upstream \u2192 client", colour: COLOURS.down },
    ],
  },
};

// Bounded by WINDOW_MS: older samples are dropped on every poll.
const history = [];
let previous = null; // the last /api/stats reading with its time, for rates
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let polls = 0;
let timer = null;

function $(id) { return document.getElementById(id); }

function formatCount(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "\u2013";
  if (v >= 100 || Number.isInteger(v)) return Math.round(v).toLocaleString("en-US");
  return v.toFixed(1);
}

function formatBytes(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "\u2013";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  const digits = i === 0 || v >= 100 ? 0 : 1;
  return v.toFixed(digits) + " " + units[i];
}

function formatPercent(ratio) {
  return ratio === null ? "\u2013" : (ratio * 100).toFixed(1) + " %";
}

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = "status " + kind;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function getJson(path) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const reason = body && body.error ? body.error : response.statusText;
    throw new ApiError(response.status, reason);
  }
  return body;
}

// Counter difference per second, or null when there is no earlier reading
// or the counter went backwards (a restarted server).
function rate(now, before, dtSeconds) {
  if (before === undefined || before === null || dtSeconds <= 0 || now < before) return null;
  return (now - before) / dtSeconds;
}

function record(stats, memory) {
  const t = Date.now();
  let sessionsRate = null, upRate = null, downRate = null;
  if (previous) {
    const dt = (t - previous.t) / 1000;
    sessionsRate = rate(stats.sessions_total, previous.stats.sessions_total, dt);
    upRate = rate(stats.bytes_client_to_upstream, previous.stats.bytes_client_to_upstream, dt);
    downRate = rate(stats.bytes_upstream_to_client, previous.stats.bytes_upstream_to_client, dt);
  }
  previous = { t, stats };
  const allocator = memory.allocator || {};
  history.push({
    t,
    open: stats.connections_open,
    sessionsActive: stats.sessions_active,
    sessionsRate, upRate, downRate,
    rss: memory.rss_bytes,
    allocResident: allocator.resident,
    allocActive: allocator.active,
  });
  while (history.length && history[0].t < t - WINDOW_MS) history.shift();
  return { sessionsRate, upRate, downRate };
}

function showTiles(stats, memory, pool, rates) {
  $("open-connections").textContent = formatCount(stats.connections_open);
  $("sessions-active").textContent = formatCount(stats.sessions_active);
  $("sessions-rate").textContent = formatCount(rates.sessionsRate);
  $("bytes-up-rate").textContent = rates.upRate === null ? "\u2013" : formatBytes(rates.upRate) + "/s";
  $("bytes-down-rate").textContent = rates.downRate === null ? "\u2013" : formatBytes(rates.downRate) + "/s";
  $("rss").textContent = formatBytes(memory.rss_bytes);
  const checkouts = pool.pool_hits + pool.pool_misses;
  $("pool-hit-ratio").textContent = pool.enabled
    ? formatPercent(checkouts ? pool.pool_hits / checkouts : null)
    : "off";
  $("pool-idle").textContent = formatCount(pool.total_idle);
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function fillTable(id, rows, columns, emptyText) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell(tr, emptyText, "empty");
    td.colSpan = columns;
    body.appendChild(tr);
    return;
  }
  for (const row of rows) body.appendChild(row);
}

function showPool(pool) {
  const busiest = [...pool.per_destination]
    .sort((a, b) => (b.in_use - a.in_use) || ((b.hits + b.misses) - (a.hits + a.misses)))
    .slice(0, 8);
  const rows = busiest.map((d) => {
    const tr = document.createElement("tr");
    const checkouts = d.hits + d.misses;
    cell(tr, d.destination);
    cell(tr, formatCount(d.in_use));
    cell(tr, formatCount(d.idle));
    cell(tr, formatCount(d.hits));
    cell(tr, formatCount(d.misses));
    cell(tr, formatPercent(checkouts ? d.hits / checkouts : null));
    return tr;
  });
  fillTable("destinations", rows, 6, pool.enabled ? "no destinations yet" : "the pool is disabled");
  $("pool-summary").textContent =
    formatCount(pool.destinations) + " destinations, " + formatCount(pool.connections_in_use) + " in use, " +
    formatCount(pool.total_created) + " created";
}

function showEvents(reply) {
  const events = [...reply.events].sort((a, b) => b.timestamp_ms - a.timestamp_ms).slice(0, 12);
  const rows = events.map((e) => {
    const tr = document.createElement("tr");
    cell(tr, new Date(e.timestamp_ms).toLocaleTimeString("en-GB"));
    cell(tr, e.severity, "sev-" + e.severity);
    cell(tr, e.category);
    cell(tr, e.message, "msg");
    return tr;
  });
  fillTable("events", rows, 4, "no events");
}

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

// A round axis top above `max` and its step, for about four grid lines;
// `integer` keeps steps whole (connection counts).
function niceAxis(max, integer) {
  if (!(max > 0)) return { top: integer ? 4 : 1, step: integer ? 1 : 0.25 };
  const raw = (max * 1.1) / 4;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  let step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  if (integer) step = Math.max(1, Math.round(step));
  return { top: Math.ceil((max * 1.1) / step) * step, step };
}

// Byte axes are labelled in one binary unit chosen from the largest value,
// so the grid lines fall on round numbers of that unit.
function byteUnit(max, suffix) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (max >= 1024 * 1.5 && i < units.length - 1) { max /= 1024; i += 1; }
  return { divisor: Math.pow(1024, i), suffix: " " + units[i] + suffix, integer: i === 0 };
}

function tickLabel(v, step) {
  const digits = step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// "-30 s", "-2 min", "-1:30" for a time `ms` before now.
function agoLabel(ms) {
  const seconds = Math.round(ms / 1000);
  if (seconds === 0) return "now";
  if (seconds < 60) return "\u2212" + seconds + " s";
  if (seconds % 60 === 0) return "\u2212" + seconds / 60 + " min";
  return "\u2212" + Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
}

const TIME_STEPS_S = [10, 15, 30, 60, 120];
const MIN_SPAN_MS = 60 * 1000;

function drawChart(chart, now) {
  const svg = $(chart.svg);
  const width = Math.max(svg.clientWidth, 300);
  const height = Math.max(svg.clientHeight, 120);
  const left = 74, right = 12, top = 8, bottom = 22;
  const plotW = width - left - right, plotH = height - top - bottom;
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  svg.replaceChildren();

  let max = 0;
  for (const s of history) {
    for (const series of chart.series) {
      const v = s[series.key];
      if (typeof v === "number" && v > max) max = v;
    }
  }
  const unit = chart.unit(max);
  const axis = niceAxis(max / unit.divisor, unit.integer);
  svg.dataset.samples = String(history.length);
  svg.dataset.max = String(max);
  // The time axis grows with the history up to the window, so the first
  // minutes are not squeezed into the right edge.
  const first = history.length ? history[0].t : now;
  const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, now - first));
  const x = (t) => left + ((t - (now - span)) / span) * plotW;
  const y = (v) => top + plotH - (v / unit.divisor / axis.top) * plotH;

  for (let v = 0; v <= axis.top + axis.step / 2; v += axis.step) {
    const yv = top + plotH - (v / axis.top) * plotH;
    svg.appendChild(svgEl("line", { class: "grid", x1: left, x2: left + plotW, y1: yv, y2: yv }));
    const label = svgEl("text", { x: left - 6, y: yv + 4, "text-anchor": "end" });
    label.textContent = tickLabel(v, axis.step) + unit.suffix;
    svg.appendChild(label);
  }
  const stepS = TIME_STEPS_S.find((s) => span / 1000 / s <= 6) || 120;
  for (let ago = 0; ago <= span / 1000 + 0.001; ago += stepS) {
    const label = svgEl("text", {
      x: x(now - ago * 1000), y: height - 6,
      "text-anchor": ago === 0 ? "end" : "middle",
    });
    label.textContent = agoLabel(ago * 1000);
    svg.appendChild(label);
  }

  for (const series of chart.series) {
    const points = history
      .filter((s) => typeof s[series.key] === "number" && s.t >= now - span)
      .map((s) => x(s.t).toFixed(1) + "," + y(s[series.key]).toFixed(1))
      .join(" ");
    const attrs = { points, stroke: series.colour, "data-series": series.key };
    if (series.dashed) attrs["stroke-dasharray"] = "5 4";
    svg.appendChild(svgEl("polyline", attrs));
  }
}

function drawLegends() {
  for (const chart of Object.values(CHARTS)) {
    const legend = $(chart.legend);
    legend.replaceChildren();
    for (const series of chart.series) {
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = series.colour;
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(series.label));
      legend.appendChild(item);
    }
  }
}

function drawCharts() {
  const now = Date.now();
  for (const chart of Object.values(CHARTS)) drawChart(chart, now);
}

async function poll() {
  try {
    const [stats, memory, pool] = await Promise.all([
      getJson("/api/stats"), getJson("/api/memory"), getJson("/api/pool/stats"),
    ]);
    const rates = record(stats, memory);
    showTiles(stats, memory, pool, rates);
    showPool(pool);
    drawCharts();
    if (polls % EVENTS_EVERY === 0) showEvents(await getJson("/api/telemetry/events?limit=50"));
    polls += 1;
    setStatus("live \u00b7 " + new Date().toLocaleTimeString("en-GB"), "live");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      setStatus(token ? "token refused (401)" : "this server needs a token", "error");
    } else {
      setStatus("API unreachable: " + err.message, "error");
    }
  }
  timer = setTimeout(poll, POLL_MS);
}

function restart() {
  if (timer !== null) clearTimeout(timer);
  previous = null;
  polls = 0;
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  $("window-minutes").textContent = String(WINDOW_MS / 60000);
  drawLegends();
  $("token-form").addEventListener("submit", (event) => {
    // Never submitted as a form: the token must not land in a URL.
    event.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    restart();
  });
  $("forget").addEventListener("click", () => {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    restart();
  });
  window.addEventListener("resize", drawCharts);
  restart();
});

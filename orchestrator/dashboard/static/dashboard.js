// The Spillway dashboard page: asks for an admin key (kept in sessionStorage), then fetches
// every panel from /v1/stats/... with it. All text from the server goes in via textContent.
"use strict";

const KEY = "spillway.dashboard.key";
const $ = (id) => document.getElementById(id);
const C = window.SpillwayCharts;
const COLORS = { cost: "#1f6feb", baseline: "#8a99ab", savings: "#2da44e", escalated: "#c0392b", accent: "#6f42c1" };
const state = { whatifRoute: null, whatifTimer: null, confidence: [] };

const usd = (v) => (v === null || v === undefined ? "–" : Math.abs(v) >= 1
  ? "$" + v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })
  : "$" + v.toFixed(4));
const pct = (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%");
const ms = (v) => (v === null || v === undefined ? "–" : v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString("en-US"));
const int = (v) => (v === null || v === undefined ? "–" : v.toLocaleString("en-US"));
const pad = (n) => String(n).padStart(2, "0");
const dayLabel = (t) => { const d = new Date(t); return `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`; };
const when = (t) => (t ? t.replace("T", " ").replace(/:00Z$/, "").replace("Z", "") : "–");
const hourLabel = (t) => `${dayLabel(t)} ${pad(new Date(t).getUTCHours())}h`;

class AuthError extends Error {}

async function api(path, params) {
  const query = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v !== null && v !== ""));
  const response = await fetch(`${path}?${query}`, {
    headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}` },
  });
  const body = await response.json().catch(() => ({}));
  const message = (body.error && body.error.message) || `HTTP ${response.status}`;
  if (response.status === 401 || response.status === 403) throw new AuthError(message);
  if (!response.ok) throw new Error(message);
  return body;
}

function filters() {
  const range = $("f-range").value;
  const hours = { "24h": 24, "7d": 168, "30d": 720, "90d": 2160 }[range];
  let since = null, until = null;
  if (hours) since = new Date(Date.now() - hours * 3600e3).toISOString();
  if (range === "custom") {
    if ($("f-since").value) since = new Date($("f-since").value).toISOString();
    if ($("f-until").value) until = new Date($("f-until").value).toISOString();
  }
  return { since, until, tenant: $("f-tenant").value, route: $("f-route").value };
}

function cell(content, numeric) {
  const td = document.createElement("td");
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  if (numeric) td.className = "num";
  return td;
}

// columns: [[title, numeric]], rows: arrays of strings or nodes
function table(el, columns, rows, empty) {
  el.replaceChildren();
  const head = el.createTHead().insertRow();
  for (const [title, numeric] of columns) {
    const th = document.createElement("th");
    th.textContent = title;
    if (numeric) th.className = "num";
    head.appendChild(th);
  }
  const body = el.createTBody();
  if (!rows.length) {
    const td = cell(empty || "Nothing in this range.");
    td.colSpan = columns.length;
    td.className = "empty";
    body.insertRow().appendChild(td);
  }
  for (const row of rows) {
    const tr = body.insertRow();
    row.forEach((value, i) => tr.appendChild(cell(value, columns[i][1])));
  }
}

function queryLink(id) {
  const a = document.createElement("a");
  a.href = `/v1/queries/${encodeURIComponent(id)}`;
  a.textContent = id;
  a.dataset.query = id;
  return a;
}

function renderSummary(s) {
  $("s-queries").textContent = int(s.queries);
  $("s-errors").textContent = `${int(s.errors)} error${s.errors === 1 ? "" : "s"}`;
  $("s-cost").textContent = usd(s.cost_usd);
  $("s-split").textContent = `small ${usd(s.cost_small_usd)} · large ${usd(s.cost_large_usd)}`;
  $("s-baseline").textContent = usd(s.baseline_cost_usd);
  $("s-savings").textContent = usd(s.savings_usd);
  $("s-savings-rate").textContent = s.savings_rate === null ? "" : `${pct(s.savings_rate)} of baseline`;
  $("s-escalation").textContent = pct(s.escalation_rate);
  $("s-escalated").textContent = `${int(s.escalated)} escalated`;
  const r = s.range;
  $("range-note").textContent = `Data from ${r.since || "the start"} to ${r.until || "now"} (UTC, whole hours; histograms and lists: whole days).`;
}

function renderSeries(cost, escalations) {
  const label = cost.step === "hour" ? hourLabel : dayLabel;
  const xs = cost.points.map((p) => Date.parse(p.t));
  C.lineChart($("cost-chart"), xs, [
    { name: "Spillway cost", values: cost.points.map((p) => p.cost_usd), color: COLORS.cost },
    { name: "Always-large baseline", values: cost.points.map((p) => p.baseline_cost_usd), color: COLORS.baseline, dash: true },
    { name: "Savings", values: cost.points.map((p) => p.savings_usd), color: COLORS.savings },
  ], { yFormat: usd, xFormat: label });
  C.lineChart($("escalation-chart"), escalations.points.map((p) => Date.parse(p.t)), [
    { name: "Escalation rate", values: escalations.points.map((p) => p.escalation_rate), color: COLORS.escalated },
  ], { yFormat: pct, xFormat: label, yMax: 1 });
  table($("escalation-table"),
    [["Route"], ["Adapter"], ["Queries", 1], ["Escalated", 1], ["Rate", 1], ["Reasons"]],
    escalations.by_route.map((g) => [g.route, g.adapter || "— (base model)", int(g.queries), int(g.escalated),
      pct(g.escalation_rate), Object.entries(g.reasons).map(([k, v]) => `${k}: ${v}`).join(", ") || "–"]));
}

function renderConfidence(data) {
  state.confidence = data.routes;
  const box = $("confidence");
  if (!data.routes.length) return C.emptyNote(box, "No small-model answers in this range.");
  box.replaceChildren();
  for (const route of data.routes) {
    const item = document.createElement("div");
    const title = document.createElement("h4");
    title.textContent = route.route;
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent = `${int(route.queries)} answers, ${int(route.escalated)} escalated; threshold ${route.threshold ?? "unknown"}`;
    const chart = document.createElement("div");
    item.append(title, note, chart);
    box.appendChild(item);
    C.histogram(chart, route.bins, route.escalated_bins, route.threshold);
  }
  const select = $("w-route");
  const keep = state.whatifRoute;
  select.replaceChildren(...data.routes.map((r) => new Option(r.route, r.route)));
  state.whatifRoute = data.routes.some((r) => r.route === keep) ? keep : data.routes[0].route;
  select.value = state.whatifRoute;
  const current = data.routes.find((r) => r.route === state.whatifRoute);
  if (keep !== state.whatifRoute && current && current.threshold !== null) setSlider(current.threshold);
}

function setSlider(value) {
  $("w-threshold").value = value;
  $("w-value").textContent = Number(value).toFixed(2);
}

async function loadWhatIf() {
  if (!state.whatifRoute) {
    table($("whatif-table"), [["No small-model answers in this range."]], []);
    return;
  }
  const params = { ...filters(), route: state.whatifRoute, threshold: $("w-threshold").value };
  const w = await api("/v1/stats/whatif", params);
  const p = w.projected, a = w.actual;
  $("w-current").textContent = `current threshold: ${w.current_threshold ?? "unknown"}`;
  const cells = (id, text) => { const span = document.createElement("span"); span.id = id; span.textContent = text; return span; };
  table($("whatif-table"), [[""], [`Logged (threshold ${w.current_threshold ?? "?"})`, 1], [`Projected at ${p.threshold.toFixed(2)}`, 1]], [
    ["Escalation rate", cells("w-actual-rate", pct(a.escalation_rate)), cells("w-projected-rate", pct(p.escalation_rate))],
    ["Escalated queries", int(a.escalated), cells("w-projected-escalated", int(p.escalated))],
    ["Cost", cells("w-actual-cost", usd(a.cost_usd)), cells("w-projected-cost", usd(p.cost_usd))],
    ["Quality (feedback)", "", cells("w-projected-quality", p.quality === null ? "no feedback"
      : `${p.quality.toFixed(3)} (${pct(p.quality_coverage)} of answers in bins with feedback)`)],
  ]);
  const xs = w.curve.map((c) => c.threshold);
  const markers = [{ x: p.threshold, label: "selected", color: COLORS.accent }];
  if (w.current_threshold !== null) markers.push({ x: w.current_threshold, label: "current", color: COLORS.escalated });
  C.lineChart($("whatif-rate"), xs, [{ name: "Projected escalation rate", values: w.curve.map((c) => c.escalation_rate), color: COLORS.escalated }],
    { yFormat: pct, xFormat: (v) => v.toFixed(2), yMax: 1, markers, height: 180 });
  C.lineChart($("whatif-cost"), xs, [{ name: "Projected cost", values: w.curve.map((c) => c.cost_usd), color: COLORS.cost }],
    { yFormat: usd, xFormat: (v) => v.toFixed(2), markers, height: 180 });
  $("w-note").textContent = `${int(w.with_confidence)} of ${int(a.queries)} queries on this route have a small-model confidence; ` +
    `feedback on ${int(w.feedback.small)} small and ${int(w.feedback.large)} large answers. Projection at 0.01 resolution.`;
}

function renderRouter(r) {
  C.shareBars($("router-bars"), r.labels.map((l) => ({ label: l.label, value: l.share,
    note: `${pct(l.share)} · ${int(l.abstained)} abstained` })));
  $("router-note").textContent = `${int(r.routed)} routed, ${int(r.abstained)} abstentions (${pct(r.abstention_rate)}: base model), ` +
    `${int(r.unrouted)} sent to a model directly.`;
  table($("router-versions"), [["Router version"], ["Queries", 1], ["First seen (UTC)"], ["Last seen (UTC)"]],
    r.versions.map((v) => [v.router_version || "unknown", int(v.queries), when(v.first_seen), when(v.last_seen)]));
}

function renderLatency(l) {
  table($("latency-table"), [["Stage"], ["Count", 1], ["Mean", 1], ["p50", 1], ["p90", 1], ["p95", 1], ["p99", 1]],
    l.stages.map((s) => [s.stage, int(s.count), ms(s.mean_ms), ms(s.p50), ms(s.p90), ms(s.p95), ms(s.p99)]));
}

// Per adapter version (name@N): is a new version earning its place?
function renderVersions(data) {
  const num = (v, digits) => (v === null ? "–" : v.toFixed(digits));
  table($("versions-table"), [["Adapter version"], ["Queries", 1], ["Mean confidence", 1], ["Escalation rate", 1],
    ["Errors", 1], ["Feedback", 1], ["Mean feedback", 1]],
  data.versions.map((v) => [v.version, int(v.queries), num(v.mean_confidence, 2), pct(v.escalation_rate),
    int(v.errors), int(v.feedback_count), num(v.mean_feedback, 2)]),
  "No query used a versioned adapter in this range.");
}

function renderQueries(el, data) {
  table(el, [["Query"], ["Time (UTC)"], ["Tenant"], ["Route"], ["Answered by"], ["Confidence", 1], ["Reason"], ["Cost", 1], ["Baseline", 1]],
    data.queries.map((q) => [queryLink(q.query_id), when(q.created_at), q.tenant,
      q.adapter || q.route || "base", answeredBy(q), q.confidence === null ? "–" : q.confidence.toFixed(2),
      reason(q), usd(q.cost_usd), usd(q.baseline_cost_usd)]));
}

// "small-model (degraded)" when the large model failed after a low-confidence small answer.
function answeredBy(q) {
  return (q.answered_by || "–") + (q.degraded ? " (degraded)" : "");
}

// The escalation reason or error status, then the deployments that failed, if any.
function reason(q) {
  const base = q.escalation_reason || (q.status === "ok" ? "–" : q.status);
  return q.faults ? `${base}; failed: ${q.faults}` : base;
}

// Limits and this month's spend per tenant; hidden when the server has no tenants endpoint.
async function loadTenants(f) {
  let data;
  try {
    data = await api("/v1/stats/tenants", { tenant: f.tenant });
  } catch (error) {
    if (error instanceof AuthError) throw error;
    $("tenants-panel").hidden = true;
    return;
  }
  $("tenants-panel").hidden = false;
  $("tenants-note").textContent = `This calendar month: ${when(data.month.since)} to ${when(data.month.until)} (UTC).`;
  const limit = (v, none, format) => (v === null ? none : format(v));
  table($("tenants-table"), [["Tenant"], ["Requests/min", 1], ["Monthly budget", 1], ["Spent", 1], ["Used", 1],
    ["Queries", 1], ["Refused: rate", 1], ["Refused: budget", 1]],
  data.tenants.map((t) => [t.admin ? `${t.tenant} (admin)` : t.tenant,
    limit(t.requests_per_minute, "no limit", int), limit(t.monthly_budget_usd, "no budget", usd),
    usd(t.spent_usd), pct(t.budget_used), int(t.queries), int(t.rejected.rate_limit), int(t.rejected.budget)]),
  "No configured tenant matches.");
}

async function load() {
  const f = filters();
  $("status").className = "status";
  $("status").textContent = "Loading…";
  try {
    const [summary, cost, escalations, confidence, router, latency, expensive, latest, versions] = await Promise.all(
      ["summary", "cost", "escalations", "confidence", "router", "latency", "expensive", "latest-escalations",
        "adapter-versions"].map((name) => api(`/v1/stats/${name}`, f)));
    renderSummary(summary);
    renderSeries(cost, escalations);
    renderConfidence(confidence);
    renderRouter(router);
    renderLatency(latency);
    renderVersions(versions);
    renderQueries($("expensive-table"), expensive);
    renderQueries($("latest-table"), latest);
    await loadWhatIf();
    await loadTenants(f);
    $("status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    handleError(error);
  }
}

function handleError(error) {
  if (error instanceof AuthError) return askForKey(error.message);
  $("status").className = "status error";
  $("status").textContent = error.message;
}

async function fillFilterOptions() {
  const options = await api("/v1/stats/filters");
  $("f-tenant").replaceChildren(new Option("All tenants", ""), ...options.tenants.map((t) => new Option(t, t)));
  $("f-route").replaceChildren(new Option("All routes", ""), ...options.routes.map((r) => new Option(r, r)));
}

function askForKey(message) {
  sessionStorage.removeItem(KEY);
  $("dashboard").hidden = true;
  $("forget-key").hidden = true;
  $("key-form").hidden = false;
  $("key-error").textContent = message || "";
  $("key-input").focus();
}

async function open() {
  $("key-form").hidden = true;
  $("key-error").textContent = "";
  $("dashboard").hidden = false;
  $("forget-key").hidden = false;
  try {
    await fillFilterOptions();
  } catch (error) {
    return handleError(error);
  }
  await load();
}

async function showRow(id) {
  try {
    const row = await api(`/v1/queries/${encodeURIComponent(id)}`);
    $("row-json").textContent = JSON.stringify(row, null, 2);
  } catch (error) {
    $("row-json").textContent = error.message;
  }
  $("row-dialog").showModal();
}

function wire() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key-input").value.trim());
    $("key-input").value = "";
    open();
  });
  $("forget-key").addEventListener("click", () => askForKey(""));
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  $("f-range").addEventListener("change", () => {
    document.querySelectorAll(".custom").forEach((el) => { el.hidden = $("f-range").value !== "custom"; });
  });
  document.querySelectorAll(".custom").forEach((el) => { el.hidden = true; });
  $("w-route").addEventListener("change", () => {
    state.whatifRoute = $("w-route").value;
    const route = state.confidence.find((r) => r.route === state.whatifRoute);
    if (route && route.threshold !== null) setSlider(route.threshold);
    loadWhatIf().catch(handleError);
  });
  $("w-threshold").addEventListener("input", () => {
    $("w-value").textContent = Number($("w-threshold").value).toFixed(2);
    clearTimeout(state.whatifTimer);
    state.whatifTimer = setTimeout(() => loadWhatIf().catch(handleError), 150);
  });
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-query]");
    if (!link) return;
    event.preventDefault();
    showRow(link.dataset.query);
  });
  if (sessionStorage.getItem(KEY)) open(); else askForKey("");
}

wire();

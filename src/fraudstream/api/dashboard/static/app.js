"use strict";
// The analysts' single-page dashboard. Data only ever enters the page as text nodes
// (never innerHTML), every unsafe request carries the session's CSRF token, and each view
// refreshes itself by polling the JSON API.

const state = { me: null, timer: null };
const $view = () => document.getElementById("view");

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, opts = {}) {
  const headers = { Accept: "application/json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.method && opts.method !== "GET" && state.me && state.me.csrf_token) {
    headers["X-CSRF-Token"] = state.me.csrf_token;
  }
  const r = await fetch(path, {
    method: opts.method || "GET", credentials: "same-origin", headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  if (r.status === 401) { window.location.assign("/login"); throw new ApiError(401, "signed out"); }
  const data = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
  if (!r.ok) {
    const detail = data && data.detail;
    throw new ApiError(r.status, typeof detail === "string" ? detail : JSON.stringify(detail || r.statusText));
  }
  return data;
}

const fmt = {
  time: (s) => (s ? new Date(s).toLocaleString() : "–"),
  pct: (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(2) + " %"),
  num: (v) => window.fsCharts.fmtNum(v),
  money: (v, c) => `${Number(v).toFixed(2)} ${c || ""}`,
  score: (v) => Number(v).toFixed(3),
};

function setStatus(text, isError) {
  const el = document.getElementById("footer-status");
  el.textContent = text;
  el.className = isError ? "error" : "muted";
}

function poll(fn, ms) {
  clearInterval(state.timer);
  const run = () => fn().then(() => setStatus(`updated ${new Date().toLocaleTimeString()}`))
    .catch((e) => setStatus(`update failed: ${e.message}`, true));
  run();
  state.timer = setInterval(run, ms);
}

// ---------------------------------------------------------------- overview
function tile(label, value, id) {
  return h("div", { class: "tile" }, h("div", { class: "tile-label" }, label),
    h("div", { class: "tile-value", id }, value));
}

function chartCard(title, series, legend) {
  return h("div", { class: "card chart-card" }, h("h3", {}, title),
    window.fsCharts.lineChart(series, { title }),
    h("div", { class: "legend" }, legend.map(([cls, name]) => h("span", { class: `key ${cls}` }, name))));
}

async function overview() {
  const s = await api("/api/v1/stats?minutes=30");
  const m = s.last_minute || {};
  const lat = m.latency_ms || {};
  const open = s.open_alerts || {};
  const pts = (k) => s.series.map((p) => [p.t, p[k]]);
  const view = h("section", { id: "overview" },
    h("div", { class: "tiles" },
      tile("Throughput (1 min)", `${fmt.num(m.throughput_tps)} tx/s`, "tile-throughput"),
      tile("Alert rate", fmt.pct(m.alert_rate), "tile-alert-rate"),
      tile("Fraud rate (labels)", fmt.pct(m.fraud_rate), "tile-fraud-rate"),
      tile("Latency p50 / p99", `${fmt.num(lat.p50)} / ${fmt.num(lat.p99)} ms`, "tile-latency"),
      tile("Consumer lag", m.lag === null || m.lag === undefined ? "–" : fmt.num(m.lag), "tile-lag"),
      tile("Open alerts", `${(open.review || 0) + (open.decline || 0)}`, "tile-open")),
    s.collecting ? null : h("p", { class: "warn" }, "Not reading the topics yet (Kafka unreachable or topics missing)."),
    h("div", { class: "charts" },
      chartCard("Throughput (tx/s)", [{ cls: "s1", points: pts("throughput_tps") }], [["s1", "decided"]]),
      chartCard("Alerts per minute", [{ cls: "s2", points: pts("alerts_per_min") }], [["s2", "review + decline"]]),
      chartCard("Latency (ms)", [{ cls: "s1", points: pts("latency_p50_ms") }, { cls: "s3", points: pts("latency_p99_ms") }],
        [["s1", "p50"], ["s3", "p99"]]),
      chartCard("Consumer lag (messages)", [{ cls: "s4", points: pts("lag") }], [["s4", "detector group"]]),
      chartCard("Alert and fraud rate", [{ cls: "s2", points: pts("alert_rate") }, { cls: "s3", points: pts("fraud_rate") }],
        [["s2", "alert rate"], ["s3", "fraud rate"]])),
    h("p", { class: "muted" }, `Decision mix (1 min): approve ${m.decision_mix?.approve ?? 0}, review ${m.decision_mix?.review ?? 0}, decline ${m.decision_mix?.decline ?? 0}`));
  $view().replaceChildren(view);
}

// ---------------------------------------------------------------- queue
const queueFilters = { status: "open", decision: "", score_min: "", customer_id: "", terminal_id: "", offset: 0, limit: 50 };

function queueQuery() {
  const p = new URLSearchParams({ sort: "score", order: "desc", limit: queueFilters.limit, offset: queueFilters.offset });
  for (const k of ["status", "decision", "score_min", "customer_id", "terminal_id"]) {
    if (queueFilters[k] !== "") p.set(k, queueFilters[k]);
  }
  return p.toString();
}

function filterBar() {
  const sel = (key, options) => h("select", { id: `filter-${key}`, onchange: (e) => { queueFilters[key] = e.target.value; queueFilters.offset = 0; showQueue(); } },
    options.map(([v, label]) => h("option", { value: v, selected: queueFilters[key] === v }, label)));
  const txt = (key, ph, type) => h("input", { id: `filter-${key}`, placeholder: ph, type: type || "text", value: queueFilters[key], step: type ? "0.05" : null,
    min: type ? "0" : null, max: type ? "1" : null,
    onchange: (e) => { queueFilters[key] = e.target.value.trim(); queueFilters.offset = 0; showQueue(); } });
  return h("div", { class: "filters" },
    h("label", {}, "Status ", sel("status", [["open", "open"], ["confirmed_fraud", "confirmed fraud"], ["legitimate", "legitimate"], ["", "any"]])),
    h("label", {}, "Decision ", sel("decision", [["", "any"], ["review", "review"], ["decline", "decline"]])),
    h("label", {}, "Min score ", txt("score_min", "0–1", "number")),
    h("label", {}, "Customer ", txt("customer_id", "id")),
    h("label", {}, "Terminal ", txt("terminal_id", "id")));
}

async function queueTable() {
  const page = await api(`/api/v1/transactions?${queueQuery()}`);
  const rows = page.items.map((t) => h("tr", { class: "clickable", "data-id": t.transaction_id, onclick: () => { location.hash = `#/alert/${encodeURIComponent(t.transaction_id)}`; } },
    h("td", {}, h("a", { href: `#/alert/${encodeURIComponent(t.transaction_id)}`, class: "alert-link" }, t.transaction_id)),
    h("td", { class: "num" }, h("span", { class: `score ${t.score >= 0.8 ? "hi" : t.score >= 0.5 ? "mid" : ""}` }, fmt.score(t.score))),
    h("td", {}, h("span", { class: `badge ${t.decision}` }, t.decision)),
    h("td", { class: "num" }, fmt.money(t.tx_amount, t.currency)),
    h("td", {}, t.customer_id), h("td", {}, t.terminal_id), h("td", {}, fmt.time(t.tx_datetime)),
    h("td", { class: "reasons" }, t.reasons.slice(0, 3).join(", ")),
    h("td", {}, h("span", { class: `badge ${t.review_status}` }, t.review_status.replace("_", " ")))));
  const first = page.total ? page.offset + 1 : 0;
  const last = page.offset + page.items.length;
  const pager = h("div", { class: "pager" },
    h("button", { disabled: page.offset === 0, onclick: () => { queueFilters.offset = Math.max(0, page.offset - page.limit); showQueue(); } }, "← Previous"),
    h("span", {}, `${first}–${last} of ${page.total}${page.total_capped ? "+" : ""}`),
    h("button", { disabled: last >= page.total, onclick: () => { queueFilters.offset = page.offset + page.limit; showQueue(); } }, "Next →"));
  const table = h("table", { id: "queue-table" },
    h("thead", {}, h("tr", {}, ["Transaction", "Score", "Decision", "Amount", "Customer", "Terminal", "Time", "Reasons", "Status"].map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No alerts match."))));
  document.getElementById("queue-body").replaceChildren(table, pager);
}

function showQueue() {
  $view().replaceChildren(h("section", { id: "queue" }, h("h2", {}, "Alert queue"), filterBar(), h("div", { id: "queue-body" })));
  poll(queueTable, 5000);
}

// ---------------------------------------------------------------- one alert
function ratio(v, usual) {
  if (usual === undefined || usual === null) return null;
  if (usual === 0) return v === 0 ? 1 : null;
  return v / usual;
}

async function alertPage(id) {
  clearInterval(state.timer);
  const t = await api(`/api/v1/transactions/${encodeURIComponent(id)}`);
  const base = t.customer_baseline;
  const featureRows = Object.entries(t.features).map(([name, v]) => {
    const usual = base.median[name];
    const r = ratio(v, usual);
    const unusual = r !== null && (r >= 3 || r <= 1 / 3) && Math.abs(v - usual) > 1e-9;
    return h("tr", { class: unusual ? "unusual" : "" }, h("td", {}, name), h("td", { class: "num" }, fmt.num(v)),
      h("td", { class: "num" }, usual === undefined ? "–" : fmt.num(usual)),
      h("td", { class: "num" }, r === null ? "–" : `×${fmt.num(r)}`));
  });
  const field = (k, v) => h("tr", {}, h("th", {}, k), h("td", {}, v ?? "–"));
  const comment = h("textarea", { id: "comment", rows: 3, maxlength: 2000, placeholder: "Comment (optional)" });
  const result = h("p", { id: "review-result", role: "status" });
  const act = (kind) => async () => {
    for (const b of document.querySelectorAll(".actions button")) b.disabled = true;
    result.textContent = "Publishing…";
    try {
      const r = await api(`/api/v1/transactions/${encodeURIComponent(id)}/${kind}`, { method: "POST", body: { comment: comment.value || null } });
      await alertPage(id);  // show the updated row (status, reviewer, time, comment)
      const done = document.getElementById("review-result");
      done.textContent = `${r.review_status === "confirmed_fraud" ? "Confirmed fraud" : "Marked legitimate"} by ${r.reviewed_by} at ${fmt.time(r.reviewed_at)}; label published to training.`;
      done.className = "ok";
      return;
    } catch (e) {
      result.textContent = `Failed: ${e.message}`;
      result.className = "error";
    } finally {
      for (const b of document.querySelectorAll(".actions button")) b.disabled = false;
    }
  };
  const view = h("section", { id: "alert" },
    h("p", {}, h("a", { href: "#/queue" }, "← Alert queue")),
    h("h2", {}, `Alert ${t.transaction_id} `, h("span", { class: `badge ${t.decision}` }, t.decision), " ",
      h("span", { class: "score hi" }, `score ${fmt.score(t.score)}`)),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h3", {}, "Transaction"), h("table", { class: "kv" },
        field("Amount", fmt.money(t.tx_amount, t.currency)), field("Time", fmt.time(t.tx_datetime)),
        field("Customer", t.customer_id), field("Terminal", t.terminal_id), field("Channel", t.channel),
        field("Merchant category", t.merchant_category), field("Country", t.country),
        field("Detected", fmt.time(t.detected_at)), field("Model / rules", `${t.model_version ?? "–"} / ${t.rules_version ?? "–"}`),
        h("tr", {}, h("th", {}, "Review status"), h("td", { id: "review-status" }, t.review_status.replace("_", " "))),
        field("Reviewed by", t.reviewed_by ? `${t.reviewed_by} at ${fmt.time(t.reviewed_at)}` : null),
        field("Comment", t.review_comment))),
      h("div", { class: "card" }, h("h3", {}, "Why it was flagged"),
        h("ul", { id: "reasons" }, t.reasons.length ? t.reasons.map((r) => h("li", {}, r)) : h("li", { class: "muted" }, "no reasons recorded")),
        h("h3", {}, "Verdict"), comment,
        h("div", { class: "actions" },
          h("button", { id: "confirm-fraud", class: "danger", onclick: act("confirm-fraud") }, "Confirm fraud"),
          h("button", { id: "mark-legitimate", class: "primary", onclick: act("mark-legitimate") }, "Mark legitimate")),
        result)),
    h("div", { class: "card" }, h("h3", {}, "Features against the customer's usual values"),
      h("p", { class: "muted" }, base.source === "none" ? "No other transactions of this customer in the previous 30 days."
        : `Median over the customer's ${base.transactions} previous transactions in 30 days` +
          (base.source === "suspicious_only" ? " (suspicious ones only: the feature store is empty)." : ".")),
      h("table", { id: "features" }, h("thead", {}, h("tr", {}, ["Feature", "This transaction", "Customer's usual", "Ratio"].map((c) => h("th", {}, c)))),
        h("tbody", {}, featureRows))));
  $view().replaceChildren(view);
  setStatus(`loaded ${new Date().toLocaleTimeString()}`);
}

// ---------------------------------------------------------------- rules and models
const isAdmin = () => state.me && state.me.role === "admin";

async function rulesPage() {
  const list = await api("/api/v1/rules");
  const detail = h("pre", { id: "rule-body", class: "code" });
  const rows = list.map((r) => h("tr", { class: r.active ? "active-row" : "" },
    h("td", {}, r.version), h("td", {}, r.active ? "active" : ""), h("td", {}, r.name), h("td", { class: "num" }, r.n_rules),
    h("td", {}, fmt.time(r.created_at)), h("td", {}, r.created_by ?? ""),
    h("td", {}, h("button", { class: "link", onclick: async () => { detail.textContent = JSON.stringify((await api(`/api/v1/rules/${r.version}`)).body, null, 2); } }, "view"),
      isAdmin() && !r.active ? h("button", { class: "small", onclick: async () => { await api(`/api/v1/rules/${r.version}/activate`, { method: "POST" }); rulesPage(); } }, "Activate") : null)));
  const text = h("textarea", { id: "rules-text", rows: 10, placeholder: "name: my rules\nrules:\n  - id: BIG\n    condition: TX_AMOUNT > 500\n    action: {score: 0.6}" });
  const activate = h("input", { type: "checkbox", id: "rules-activate" });
  const msg = h("p", { id: "rules-msg" });
  const upload = isAdmin() ? h("div", { class: "card" }, h("h3", {}, "Upload a rule set (YAML or JSON)"), text,
    h("label", {}, activate, " activate at once"), " ",
    h("button", { class: "primary", onclick: async () => {
      try {
        const r = await api("/api/v1/rules", { method: "POST", body: { text: text.value, activate: activate.checked } });
        msg.textContent = `Stored as version ${r.version}${r.active ? " (active)" : ""}.`; msg.className = "ok"; rulesPage();
      } catch (e) { msg.textContent = e.message; msg.className = "error"; }
    } }, "Upload"), msg) : h("p", { class: "muted" }, "Uploading and activating rule sets needs the admin role.");
  $view().replaceChildren(h("section", { id: "rules" }, h("h2", {}, "Rule sets"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Version", "", "Name", "Rules", "Created", "By", ""].map((c) => h("th", {}, c)))), h("tbody", {}, rows)),
    detail, upload));
}

async function modelsPage() {
  const list = await api("/api/v1/models");
  const metric = (m, k) => (m[k] === undefined || m[k] === null ? "–" : fmt.num(m[k]));
  const rows = list.map((m) => h("tr", { class: m.active ? "active-row" : "" },
    h("td", {}, m.version), h("td", {}, m.active ? "active" : ""), h("td", {}, m.kind),
    h("td", { class: "num" }, metric(m.metrics, "auc_roc")), h("td", { class: "num" }, metric(m.metrics, "average_precision")),
    h("td", { class: "num" }, metric(m.metrics, "card_precision@100")),
    h("td", {}, `${fmt.time(m.trained_from)} → ${fmt.time(m.trained_to)}`), h("td", {}, fmt.time(m.promoted_at)),
    h("td", {}, isAdmin() && !m.active ? h("button", { class: "small", onclick: async () => { await api(`/api/v1/models/${m.version}/promote`, { method: "POST" }); modelsPage(); } }, "Promote") : null)));
  $view().replaceChildren(h("section", { id: "models" }, h("h2", {}, "Models"),
    list.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Version", "", "Kind", "AUC ROC", "Avg precision", "Card P@100", "Trained on", "Promoted", ""].map((c) => h("th", {}, c)))), h("tbody", {}, rows))
      : h("p", { class: "muted" }, "No model registered yet (fraudstream train)."),
    isAdmin() ? null : h("p", { class: "muted" }, "Promoting models needs the admin role.")));
}

// ---------------------------------------------------------------- routing
async function route() {
  clearInterval(state.timer);
  const hash = location.hash || "#/overview";
  const [, page, arg] = hash.split("/");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.dataset.nav === (page === "alert" ? "queue" : page));
  try {
    if (page === "queue") showQueue();
    else if (page === "alert" && arg) await alertPage(decodeURIComponent(arg));
    else if (page === "rules") await rulesPage();
    else if (page === "models") await modelsPage();
    else poll(overview, 2000);
  } catch (e) {
    $view().replaceChildren(h("p", { class: "error" }, `Could not load: ${e.message}`));
  }
}

async function start() {
  state.me = await api("/api/v1/auth/me");
  document.getElementById("who").textContent = `${state.me.name} (${state.me.role})`;
  document.getElementById("logout").addEventListener("click", async () => {
    await api("/api/v1/auth/logout", { method: "POST" }).catch(() => {});
    window.location.assign("/login");
  });
  window.addEventListener("hashchange", route);
  await route();
}

start();

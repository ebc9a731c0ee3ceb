// The Jobs page of jobslot: one file, no build step, no dependencies.
// Every string from the API reaches the page through textContent or
// attribute setters, never through innerHTML.
"use strict";

const TOKEN_KEY = "jobslot.token";
const STATUSES = ["pending", "running", "waiting", "completed", "failed", "canceled"];
const LIVE = new Set(["pending", "running", "waiting"]);
const SVG_NS = "http://www.w3.org/2000/svg";
const PAGE_SIZE = 50;

/* ------------------------------------------------------------------ DOM */

// h("div", {class: "x", dataset: {task: id}, onclick: fn}, child, "text", …)
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "text") el.textContent = String(v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" && "value" in el && !(el instanceof SVGElement)) el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function appendAll(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

const $ = (sel, root = document) => root.querySelector(sel);

/* Replaces `tbody`'s rows with `rows` (each with data-key), keeping the
   elements of unchanged rows and cells so that nothing flickers and a row
   found a moment ago stays in the page. */
function syncRows(tbody, rows) {
  const old = new Map();
  for (const tr of tbody.children) if (tr.dataset.key) old.set(tr.dataset.key, tr);
  const out = rows.map((tr) => {
    const prev = old.get(tr.dataset.key);
    if (!prev) return tr;
    if (prev.outerHTML === tr.outerHTML) return prev;
    if (prev.cells.length === tr.cells.length && sameAttrs(prev, tr)) {
      [...tr.cells].forEach((cell, i) => {
        if (prev.cells[i].outerHTML !== cell.outerHTML) prev.cells[i].replaceWith(cell);
      });
      return prev;
    }
    return tr;
  });
  const same = out.length === tbody.children.length && out.every((tr, i) => tbody.children[i] === tr);
  if (!same) tbody.replaceChildren(...out);
}

function sameAttrs(a, b) {
  if (a.attributes.length !== b.attributes.length) return false;
  for (const attr of a.attributes) if (b.getAttribute(attr.name) !== attr.value) return false;
  return true;
}

function table(id, headers, extraClass) {
  const tbody = h("tbody");
  const t = h("table", { id, class: "grid " + (extraClass || "") },
    h("thead", null, h("tr", null, headers.map((x) => h("th", { text: x })))),
    tbody);
  return { wrap: h("div", { class: "table-wrap" }, t), table: t, tbody };
}

function emptyRow(cols, text) {
  return h("tr", { dataset: { key: "__empty" }, class: "empty" }, h("td", { colspan: cols, text }));
}

function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", { text: title }), ...children);
}

/* ------------------------------------------------------------ formatting */

function parseTime(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  return isNaN(d) ? null : d;
}

function fmtTime(iso) {
  const d = parseTime(iso);
  if (!d) return "—";
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit" };
  if (!sameDay) Object.assign(opts, { year: "numeric", month: "short", day: "numeric" });
  return d.toLocaleString(undefined, opts);
}

function fmtRelative(iso) {
  const d = parseTime(iso);
  if (!d) return "";
  const sec = Math.round((d.getTime() - Date.now()) / 1000);
  const abs = Math.abs(sec);
  if (abs < 5) return "just now";
  let n, unit;
  if (abs < 60) [n, unit] = [abs, "s"];
  else if (abs < 3600) [n, unit] = [Math.floor(abs / 60), "min"];
  else if (abs < 86400) [n, unit] = [Math.floor(abs / 3600), "h"];
  else [n, unit] = [Math.floor(abs / 86400), "d"];
  return sec < 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

// A <time> with the local time and, beside it, how long ago.
function timeEl(iso) {
  if (!parseTime(iso)) return h("span", { class: "muted", text: "—" });
  return h("time", { datetime: iso, title: new Date(iso).toString() },
    fmtTime(iso), h("span", { class: "rel", text: " · " + fmtRelative(iso) }));
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "—";
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${sec < 10 ? sec.toFixed(1) : Math.round(sec)} s`;
  const total = Math.round(sec);
  const d = Math.floor(total / 86400), hh = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60), ss = total % 60;
  if (d) return `${d} d ${hh} h`;
  if (hh) return `${hh} h ${String(m).padStart(2, "0")} min`;
  return `${m} min ${String(ss).padStart(2, "0")} s`;
}

function taskDuration(t) {
  const a = parseTime(t.started_at);
  if (!a) return null;
  const b = parseTime(t.ended_at) || new Date();
  return b - a;
}

const shortId = (id) => (id ? String(id).slice(-8) : "—");

function badge(status, field) {
  return h("span", {
    class: `badge badge-${STATUSES.includes(status) ? status : "other"}`,
    dataset: field ? { field } : undefined,
    text: status,
  });
}

function stateBadge(state) {
  return h("span", { class: `badge state-${state}`, text: state });
}

function taskLink(id, text) {
  return h("a", { href: `#/tasks/${encodeURIComponent(id)}`, class: "mono", title: id, text: text || shortId(id) });
}

function pretty(value) {
  if (value === undefined) return "—";
  return JSON.stringify(value, null, 2);
}

function fmtRecurrence(r) {
  if (r === null || r === undefined) return "—";
  if (typeof r === "string") return r;
  if (typeof r !== "object") return String(r);
  const parts = [];
  if (r.every) parts.push(`every ${r.every}`);
  if (r.cron) parts.push(`cron ${r.cron}`);
  if (r.timezone || r.tz) parts.push(`(${r.timezone || r.tz})`);
  if (r.after) parts.push(`after ${r.after}`);
  if (r.start_at) parts.push(`from ${fmtTime(r.start_at)}`);
  if (r.catch_up) parts.push(`catch-up ${r.catch_up}`);
  return parts.length ? parts.join(" ") : JSON.stringify(r);
}

function pct(x) {
  return x === null || x === undefined || !isFinite(x) ? "—" : `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)}%`;
}

/* ------------------------------------------------------------------- API */

class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra);
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

// Turns a failed response into an ApiError carrying the API's message.
async function errorFrom(res) {
  let code = `http_${res.status}`, message = `${res.status} ${res.statusText || "error"}`;
  try {
    const text = await res.text();
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      }
    } catch (_) {
      if (text.trim()) message = `${message}: ${text.trim().slice(0, 300)}`;
    }
  } catch (_) { /* the body could not be read: keep the status line */ }
  if (res.status === 401) {
    auth.blocked = true;
    auth.ok = false;
    needToken();
  }
  return new ApiError(message, res.status, code);
}

/* Until one request has passed the token check, requests go one at a time,
   and after a 401 none goes until a token is saved: a page without its token
   makes one refused request, not one per table per refresh. */
const auth = { ok: false, blocked: false, gate: null };

function tokenRequired() {
  return new ApiError("This API needs a token: enter it in the Token field above and Save.", 401, "unauthorized");
}

async function authGate() {
  while (!auth.ok && auth.gate) await auth.gate.catch(() => {});
  if (auth.blocked) throw tokenRequired();
}

// api("/api/tasks", {method, body, signal}) → parsed JSON (or text for
// text/plain); throws an ApiError with the API's message otherwise.
async function api(path, opts = {}) {
  // Checked and claimed without an await in between, so that only one
  // request at a time can be the first.
  for (;;) {
    if (auth.blocked) throw tokenRequired();
    if (auth.ok) return apiRequest(path, opts);
    if (!auth.gate) break;
    await auth.gate.catch(() => {});
  }
  const first = apiRequest(path, opts);
  auth.gate = first;
  try {
    const v = await first;
    auth.ok = true;
    return v;
  } catch (e) {
    if (e.status && e.status !== 401) auth.ok = true;
    throw e;
  } finally {
    if (auth.gate === first) auth.gate = null;
  }
}

async function apiRequest(path, opts = {}) {
  const init = { method: opts.method || "GET", headers: authHeaders({ Accept: "application/json" }), cache: "no-store" };
  if (opts.signal) init.signal = opts.signal;
  if (opts.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  } else if (init.method === "POST") {
    // The API refuses a POST that is not JSON (a cross-site form's kind).
    init.headers["Content-Type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(`Cannot reach the API (${e.message})`, 0, "network");
  }
  if (!res.ok) throw await errorFrom(res);
  if (res.status === 204) return null;
  const type = res.headers.get("Content-Type") || "";
  return type.includes("json") ? res.json() : res.text();
}

// Like api(), but a 404 (a route this server does not have yet) gives null.
async function apiOptional(path, opts) {
  try {
    return await api(path, opts);
  } catch (e) {
    if (e.status === 404 || e.status === 405) return null;
    throw e;
  }
}

/* ------------------------------------------------------------ the token's role */

// The token's name and role (GET /api/whoami), so that buttons its role may
// not use are disabled and say why. Unknown until the API answers (the API
// decides either way).
const ROLES = ["read", "operate", "admin"];
const who = { name: null, role: null, token: null, loading: null };

function loadWho() {
  const token = localStorage.getItem(TOKEN_KEY) || "";
  if (who.loading && who.token === token) return who.loading;
  who.token = token;
  who.loading = (async () => {
    let me = null;
    try {
      me = await apiOptional("/api/whoami");
    } catch (_) { /* no token yet, or refused: nothing is known */ }
    if (who.token !== token) return;
    const changed = (me && me.role) !== who.role || (me && me.name) !== who.name;
    who.name = me ? me.name : null;
    who.role = me ? me.role : null;
    if (!me) who.loading = null;
    drawWho();
    if (changed && who.role) route();
  })();
  return who.loading;
}

function drawWho() {
  const el = $("#whoami");
  if (!el) return;
  el.textContent = who.role ? `${who.name} · ${who.role}` : "";
  el.title = who.role ? `The token "${who.name}" has the ${who.role} role` : "";
  el.hidden = !who.role;
}

// Why the token may not do what needs the role `need`; null if it may (or
// while its role is unknown).
function deniedReason(need) {
  if (!who.role || ROLES.indexOf(who.role) >= ROLES.indexOf(need)) return null;
  return `Needs a token with the ${need} role; this token (${who.name}) has the ${who.role} role.`;
}

// A button whose action needs the role `need`: disabled, saying why in its
// title, when the token's role is smaller.
function gated(btn, need) {
  const why = deniedReason(need);
  if (why) {
    btn.disabled = true;
    btn.title = why;
    btn.setAttribute("aria-disabled", "true");
    btn.dataset.denied = need;
  }
  return btn;
}

function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  const str = p.toString();
  return str ? `?${str}` : "";
}

/* Reads server-sent events from a fetch() body (EventSource cannot send the
   token): calls onEvent(name, data) for each event; resolves at the end. */
async function streamEvents(path, signal, onEvent) {
  await authGate();
  const res = await fetch(path, { headers: authHeaders({ Accept: "text/event-stream" }), signal, cache: "no-store" });
  if (!res.ok) throw await errorFrom(res);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    // Normalize line ends, keeping a trailing \r that may start a \r\n.
    const keepCr = buf.endsWith("\r");
    buf = (keepCr ? buf.slice(0, -1) : buf).replace(/\r\n?/g, "\n") + (keepCr ? "\r" : "");
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      dispatchEvent(buf.slice(0, i), onEvent);
      buf = buf.slice(i + 2);
    }
  }
  buf += decoder.decode();
  if (buf.trim()) dispatchEvent(buf.replace(/\r\n?/g, "\n"), onEvent);
}

function dispatchEvent(block, onEvent) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (data.length) onEvent(event, data.join("\n"));
}

/* ------------------------------------------------------- error and token */

const errors = new Map();

// setError("refresh", "message") shows it in #error; setError(key, null) clears it.
function setError(key, message) {
  if (message) errors.set(key, message);
  else errors.delete(key);
  const box = $("#error");
  if (!box) return;
  if (!errors.size) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  box.replaceChildren(
    h("div", { class: "error-lines" }, [...errors.values()].map((m) => h("div", { text: m }))),
    h("button", { type: "button", class: "link-button", text: "Dismiss", onclick: () => clearErrors() }));
  box.hidden = false;
}

function clearErrors() {
  errors.clear();
  setError("", null);
}

function reportError(key, e) {
  if (e && e.name === "AbortError") return;
  if (!(e instanceof ApiError)) console.error(e);
  setError(key, e && e.message ? e.message : String(e));
}

function needToken() {
  const form = $("#token-form");
  if (form && form.hidden) {
    form.hidden = false;
    $("#token").focus();
  }
}

function setupToken() {
  const form = $("#token-form"), input = $("#token");
  input.value = localStorage.getItem(TOKEN_KEY) || "";
  $("#token-toggle").addEventListener("click", () => {
    form.hidden = !form.hidden;
    if (!form.hidden) input.focus();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    if (v) localStorage.setItem(TOKEN_KEY, v);
    else localStorage.removeItem(TOKEN_KEY);
    form.hidden = true;
    Object.assign(auth, { ok: false, blocked: false });
    Object.assign(who, { name: null, role: null, token: null, loading: null });
    drawWho();
    clearErrors();
    route();
    loadWho();
  });
}

/* --------------------------------------------------------- page lifetime */

// Everything a page starts (timers, fetches, streams) stops when it is left.
let page = null;

function newPage(name) {
  if (page) page.stop();
  const ctrl = new AbortController();
  const timers = new Set();
  const cleanups = [];
  page = {
    name,
    signal: ctrl.signal,
    alive: () => !ctrl.signal.aborted,
    stop() {
      ctrl.abort();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const fn of cleanups.splice(0)) fn();
    },
    onStop(fn) {
      cleanups.push(fn);
    },
    // Runs fn now and then every ms after each run ends, while on the page.
    every(ms, fn, enabled = () => true) {
      const tick = async () => {
        if (!this.alive()) return;
        if (enabled()) await fn();
        if (!this.alive()) return;
        const t = setTimeout(() => { timers.delete(t); tick(); }, ms);
        timers.add(t);
      };
      return tick();
    },
    ready() {
      if (this.alive()) document.body.dataset.ready = name;
    },
  };
  delete document.body.dataset.ready;
  return page;
}

/* ---------------------------------------------------------------- router */

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [pathPart, query = ""] = raw.split("?");
  const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

function route() {
  const { parts, params } = parseHash();
  const view = $("#view");
  errors.clear();
  setError("", null);
  let name, render;
  if (parts.length === 0 || parts[0] === "overview") [name, render] = ["overview", renderOverview];
  else if (parts[0] === "tasks" && parts[1]) [name, render] = ["task", (p, v) => renderTask(p, v, parts[1])];
  else if (parts[0] === "tasks") [name, render] = ["tasks", (p, v) => renderTasks(p, v, params)];
  else if (parts[0] === "schedules") [name, render] = ["schedules", renderSchedules];
  else [name, render] = ["notfound", renderNotFound];
  const nav = name === "task" ? "tasks" : name;
  for (const a of document.querySelectorAll("a[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === nav);
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const p = newPage(name);
  view.replaceChildren();
  document.title = `jobslot · ${name === "task" ? "task " + shortId(parts[1]) : name}`;
  render(p, view);
}

function renderNotFound(p, view) {
  view.append(section("Not found", h("p", null, "No page here. ", h("a", { href: "#/", text: "Back to the overview" }))));
}

/* -------------------------------------------------------------- overview */

function renderOverview(p, view) {
  const warnings = h("div", { class: "warnings" });
  const inst = table("instances", ["Instance", "State", "Slots", "Host", "Queues", "Heartbeat", "Started"]);
  const queues = table("queues", ["Queue", "State", "Pending", "Due", "Running", "Waiting", "Failure rate (1 h)", ""]);
  const workers = table("workers", ["Worker", "Job", "State", "Running", "Restarts", "Instances", "Last end", ""]);
  const workersBox = section("Workers", workers.wrap);
  workersBox.hidden = true;
  const running = table("running", ["Task", "Job", "Queue", "Instance", "Started", "Running for"]);
  const failed = table("recent-failed", ["Task", "Job", "Queue", "Reason", "Ended"]);
  const thr = s("svg", { id: "chart-throughput", class: "chart", role: "img", "aria-label": "Completed and failed tasks per minute, last hour" });
  const dep = s("svg", { id: "chart-depth", class: "chart", role: "img", "aria-label": "Tasks due and waiting to start, last hour" });
  const thrNote = h("p", { class: "muted chart-note" });
  const depNote = h("p", { class: "muted chart-note" });

  view.append(
    h("h1", { text: "Overview" }),
    warnings,
    section("Instances", inst.wrap),
    section("Queues", queues.wrap),
    workersBox,
    h("div", { class: "cols" },
      section("Completed and failed per minute · last hour", thr, thrNote,
        h("div", { class: "legend" },
          h("span", { class: "key key-completed" }), "completed",
          h("span", { class: "key key-failed" }), "failed")),
      section("Queue depth (due, not started) · last hour", dep, depNote)),
    section("Running now", running.wrap),
    section("Recent failures", failed.wrap));

  queues.table.addEventListener("click", (ev) => {
    const btn = ev.target.closest("button[data-action]");
    if (btn) queueAction(p, btn, refresh);
  });
  workers.table.addEventListener("click", (ev) => {
    const btn = ev.target.closest("button[data-action]");
    if (btn) workerAction(p, btn, refresh);
  });

  // Charts are drawn at their real width: redraw when it changes.
  let lastTimeline, drawnWidth = 0;
  function drawCharts() {
    drawnWidth = Math.round(thr.getBoundingClientRect().width);
    drawThroughput(thr, thrNote, lastTimeline);
    drawDepth(dep, depNote, lastTimeline);
  }
  if (window.ResizeObserver) {
    const ro = new ResizeObserver(() => {
      if (lastTimeline !== undefined && Math.abs(Math.round(thr.getBoundingClientRect().width) - drawnWidth) > 1) drawCharts();
    });
    ro.observe(thr);
    p.onStop(() => ro.disconnect());
  }

  let first = true;
  // /api/stats reads every task and /api/timeline every task of the hour:
  // they are asked for every fifth refresh (15 s; the charts are per
  // minute), for capacity warnings, idle queues and the charts. Slots in use
  // come from the running tasks at every refresh.
  let lastStats = null, lastTl, round = 0;
  async function refresh() {
    const sig = { signal: p.signal };
    const slow = round++ % 5 === 0;
    const wantStats = slow || !lastStats;
    const wantTl = slow || lastTl === undefined;
    const [instances, stats, qs_, run, timeline, fails, wk] = await Promise.allSettled([
      api("/api/instances", sig),
      wantStats ? api("/api/stats", sig) : Promise.resolve(lastStats),
      api("/api/queues", sig),
      api("/api/tasks?status=running&limit=10000", sig),
      wantTl ? apiOptional("/api/timeline?minutes=60", sig) : Promise.resolve(lastTl),
      api("/api/tasks?status=failed&limit=8", sig),
      apiOptional("/api/workers", sig),
    ]);
    if (!p.alive()) return;
    const bad = [instances, stats, qs_, run, timeline, fails, wk].find((r) => r.status === "rejected");
    if (bad) reportError("refresh", bad.reason);
    else setError("refresh", null);

    const st = stats.status === "fulfilled" ? stats.value : null;
    if (st) lastStats = st;
    const tl = timeline.status === "fulfilled" ? timeline.value : undefined;
    if (tl !== undefined) lastTl = tl;
    if (st) drawWarnings(warnings, st.capacity_warnings || []);
    if (instances.status === "fulfilled") {
      drawInstances(inst.tbody, instances.value, run.status === "fulfilled" ? run.value : null);
    }
    if (qs_.status === "fulfilled") drawQueues(queues.tbody, qs_.value, st, tl);
    if (run.status === "fulfilled") drawRunning(running.tbody, run.value);
    if (wk.status === "fulfilled" && Array.isArray(wk.value)) {
      workersBox.hidden = wk.value.length === 0;
      drawWorkers(workers.tbody, wk.value);
    }
    if (fails.status === "fulfilled") drawFailed(failed.tbody, fails.value);
    if (tl !== undefined) {
      lastTimeline = tl;
      drawCharts();
    }
    if (first && !bad) {
      first = false;
      p.ready();
    }
  }
  p.every(3000, refresh);
}

/* A button's POST to the API, then a refresh; the button stays disabled
   until the refresh redraws it, or comes back on error. */
async function postAction(p, btn, path, refresh) {
  btn.disabled = true;
  try {
    await api(path, { method: "POST", signal: p.signal });
    setError("action", null);
    await refresh();
  } catch (e) {
    reportError("action", e);
    btn.disabled = false;
  }
}

function queueAction(p, btn, refresh) {
  const { action, queueName } = btn.dataset;
  return postAction(p, btn, `/api/queues/${encodeURIComponent(queueName)}/${action}`, refresh);
}

function workerAction(p, btn, refresh) {
  const { action, workerName } = btn.dataset;
  return postAction(p, btn, `/api/workers/${encodeURIComponent(workerName)}/${action}`, refresh);
}

const WORKER_STATES = { running: "alive", starting: "active", rolling: "active", "crash-looping": "gone", stopped: "paused" };

function drawWorkers(tbody, workers) {
  const rows = workers.map((w) => {
    const stopped = w.state === "stopped";
    const last = stopped && w.stopped_reason ? w.stopped_reason : (w.last_reasons || []).slice(-1)[0] || "—";
    const button = (action, text, primary) => gated(h("button", {
      type: "button", class: primary ? "btn-small primary" : "btn-small",
      dataset: { action, workerName: w.name }, text,
    }), "admin");
    return h("tr", { dataset: { key: w.name, worker: w.name }, class: stopped ? "paused" : "" },
      h("td", null, h("a", { href: `#/tasks${qs({ job: w.job })}`, text: w.name })),
      h("td", { text: w.job }),
      h("td", null, h("span", { class: `badge state-${WORKER_STATES[w.state] || "active"}`, dataset: { field: "state" }, title: (w.last_reasons || []).join("\n"), text: w.state })),
      h("td", null, slotBar(w.replicas_running, w.replicas_wanted)),
      h("td", { class: "num", text: w.restarts }),
      h("td", { class: "muted", text: (w.instances || []).join(", ") || "—" }),
      h("td", { class: "muted", text: last }),
      h("td", { class: "actions" },
        stopped ? button("start", "Start", true) : button("restart", "Restart"),
        stopped ? null : button("stop", "Stop")));
  });
  syncRows(tbody, rows);
}

function drawWarnings(box, warnings) {
  box.replaceChildren(...warnings.map((w) =>
    h("div", { class: "warning" }, h("strong", { text: `${w.job} on ${w.queue}: ` }), w.warning,
      w.pending ? ` (${w.pending} pending)` : "")));
}

function drawInstances(tbody, instances, running) {
  // Slots in use: the slots of each instance's running tasks.
  const used = new Map();
  for (const t of running || []) {
    if (t.instance_id) used.set(t.instance_id, (used.get(t.instance_id) || 0) + (t.slots || 0));
  }
  const order = { alive: 0, stopped: 1, gone: 2 };
  const list = [...instances].sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) || a.name.localeCompare(b.name));
  const rows = list.map((i) => {
    const n = i.state === "alive" ? used.get(i.id) || 0 : 0;
    return h("tr", { dataset: { key: i.id, instance: i.id }, class: i.state === "alive" ? "" : "dim" },
      h("td", null, h("a", { href: `#/tasks${qs({ instance: i.name })}`, text: i.name })),
      h("td", null, stateBadge(i.state)),
      h("td", null, slotBar(n, i.slots)),
      h("td", { class: "muted", text: `${i.host} · pid ${i.pid}` }),
      h("td", { class: "muted", text: i.queues && i.queues.length ? i.queues.join(", ") : "all" }),
      h("td", null, timeEl(i.heartbeat_at)),
      h("td", null, timeEl(i.started_at)));
  });
  syncRows(tbody, rows.length ? rows : [emptyRow(7, "No instance has run yet.")]);
}

function slotBar(used, slots) {
  const frac = slots > 0 ? Math.min(1, used / slots) : 0;
  const bar = s("svg", { class: "slotbar", viewBox: "0 0 100 8", preserveAspectRatio: "none", "aria-hidden": "true" },
    s("rect", { class: "slot-bg", x: 0, y: 0, width: 100, height: 8, rx: 2 }),
    s("rect", { class: frac >= 1 ? "slot-used full" : "slot-used", x: 0, y: 0, width: (frac * 100).toFixed(1), height: 8, rx: 2 }));
  return h("span", { class: "slots", title: `${used} of ${slots} slots in use` }, bar, h("span", { class: "num", text: `${used}/${slots}` }));
}

function drawQueues(tbody, queues, stats, timeline) {
  const byName = new Map();
  for (const q of queues) byName.set(q.queue, { queue: q.queue, paused: q.state === "paused" || q.paused, depth: q.depth ?? q.pending, due: q.due, running: q.running, waiting: q.waiting });
  for (const q of (stats && stats.queues) || []) {
    if (byName.has(q.queue)) continue;
    const t = q.tasks || {};
    byName.set(q.queue, { queue: q.queue, paused: !!q.paused, depth: t.pending || 0, due: null, running: t.running || 0, waiting: t.waiting || 0 });
  }
  const rates = new Map();
  const tlQueues = timeline && Array.isArray(timeline.queues) ? timeline.queues : null;
  for (const q of tlQueues || []) {
    const c = sum(q.completed), f = sum(q.failed);
    rates.set(q.queue, { rate: c + f ? f / (c + f) : null, c, f });
  }
  const list = [...byName.values()].sort((a, b) => a.queue.localeCompare(b.queue));
  const rows = list.map((q) => {
    const r = rates.get(q.queue);
    const state = q.paused ? "paused" : "active";
    const action = q.paused ? "resume" : "pause";
    let rate;
    if (!tlQueues) rate = h("span", { class: "muted", text: "not available" });
    else if (!r || r.rate === null) rate = h("span", { class: "muted", text: "—" });
    else rate = h("span", { class: r.rate > 0 ? "bad" : "", title: `${r.f} failed, ${r.c} completed`, text: pct(r.rate) });
    return h("tr", { dataset: { key: q.queue, queue: q.queue }, class: q.paused ? "paused" : "" },
      h("td", null, h("a", { href: `#/tasks${qs({ queue: q.queue })}`, text: q.queue })),
      h("td", null, h("span", { class: `badge state-${state}`, dataset: { field: "state" }, text: state })),
      h("td", { class: "num", dataset: { field: "depth" }, text: q.depth ?? "—" }),
      h("td", { class: "num", text: q.due ?? "—" }),
      h("td", { class: "num", text: q.running ?? "—" }),
      h("td", { class: "num", text: q.waiting ?? "—" }),
      h("td", { class: "num" }, rate),
      h("td", { class: "actions" }, gated(h("button", {
        type: "button", class: action === "pause" ? "btn-small" : "btn-small primary",
        dataset: { action, queueName: q.queue }, text: action === "pause" ? "Pause" : "Resume",
      }), "admin")));
  });
  syncRows(tbody, rows.length ? rows : [emptyRow(8, "No queue has live tasks.")]);
}

const sum = (v) => (Array.isArray(v) ? v.reduce((a, b) => a + (+b || 0), 0) : +v || 0);

function drawRunning(tbody, tasks) {
  const rows = tasks.map((t) => h("tr", { dataset: { key: t.id, task: t.id } },
    h("td", null, taskLink(t.id)),
    h("td", { text: t.job }),
    h("td", { text: t.queue }),
    h("td", { text: t.instance || "—" }),
    h("td", null, timeEl(t.started_at)),
    h("td", { class: "num", text: fmtDuration(taskDuration(t)) })));
  syncRows(tbody, rows.length ? rows : [emptyRow(6, "Nothing is running.")]);
}

function drawFailed(tbody, tasks) {
  const rows = tasks.map((t) => h("tr", { dataset: { key: t.id, task: t.id } },
    h("td", null, taskLink(t.id)),
    h("td", { text: t.job }),
    h("td", { text: t.queue }),
    h("td", { class: "reason", text: reasonText(t) }),
    h("td", null, timeEl(t.ended_at))));
  syncRows(tbody, rows.length ? rows : [emptyRow(5, "No failed task.")]);
}

function reasonText(t) {
  // A task that completed has no reason: exit 0 is what completed means.
  if (t.status === "completed" && !t.reason) return "—";
  const bits = [];
  const reason = t.reason || "";
  if (reason) bits.push(reason);
  if (t.exit_code !== null && t.exit_code !== undefined && !reason.includes(`exit ${t.exit_code}`)) bits.push(`exit ${t.exit_code}`);
  if (t.signal && !reason.includes(String(t.signal))) bits.push(`signal ${t.signal}`);
  return bits.join(" · ") || "—";
}

/* ---------------------------------------------------------------- charts */

const CH = { w: 640, h: 200, l: 36, r: 10, t: 10, b: 26 };

// Draws in the chart's real pixel width so that labels keep their size.
function chartWidth(svg) {
  const w = Math.round(svg.getBoundingClientRect().width);
  return w > 0 ? Math.max(280, w) : CH.w;
}

function niceMax(v) {
  if (v <= 4) return 4;
  const mag = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= v) return m * mag;
  return 10 * mag;
}

// Axes, grid and minute labels shared by both charts; returns the scales.
function chartFrame(svg, minutes, maxV) {
  const W = chartWidth(svg);
  svg.setAttribute("viewBox", `0 0 ${W} ${CH.h}`);
  svg.replaceChildren();
  const iw = W - CH.l - CH.r, ih = CH.h - CH.t - CH.b;
  const top = niceMax(maxV);
  const y = (v) => CH.t + ih - (v / top) * ih;
  const n = Math.max(1, minutes.length);
  const bw = iw / n;
  const x = (i) => CH.l + i * bw;
  const g = s("g", { class: "axis" });
  for (let k = 0; k <= 4; k++) {
    const v = (top / 4) * k;
    const yy = y(v);
    g.append(s("line", { class: "grid-line", x1: CH.l, x2: W - CH.r, y1: yy, y2: yy }));
    g.append(s("text", { x: CH.l - 5, y: yy + 4, "text-anchor": "end", text: Number.isInteger(v) ? v : v.toFixed(1) }));
  }
  const step = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(iw / 70))));
  for (let i = 0; i < n; i += step) {
    const d = parseTime(minutes[i]);
    if (!d) continue;
    const label = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    g.append(s("text", { x: x(i) + bw / 2, y: CH.h - 8, "text-anchor": "middle", text: label }));
  }
  g.append(s("line", { class: "base-line", x1: CH.l, x2: W - CH.r, y1: y(0), y2: y(0) }));
  svg.append(g);
  return { x, y, bw, n };
}

function chartUnavailable(svg, note) {
  const W = chartWidth(svg);
  svg.setAttribute("viewBox", `0 0 ${W} ${CH.h}`);
  svg.replaceChildren(s("text", { x: W / 2, y: CH.h / 2, "text-anchor": "middle", class: "chart-empty", text: "not available" }));
  note.textContent = "This server has no /api/timeline yet.";
}

function drawThroughput(svg, note, tl) {
  if (!tl || !Array.isArray(tl.minutes)) return chartUnavailable(svg, note);
  const c = tl.completed || [], f = tl.failed || [];
  const maxV = Math.max(0, ...tl.minutes.map((_, i) => (c[i] || 0) + (f[i] || 0)));
  const { x, y, bw } = chartFrame(svg, tl.minutes, maxV);
  const gap = Math.min(2, bw * 0.2);
  const bars = s("g", { class: "bars" });
  tl.minutes.forEach((m, i) => {
    const ci = c[i] || 0, fi = f[i] || 0;
    const label = parseTime(m) ? parseTime(m).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }) : m;
    if (ci > 0) bars.append(s("rect", { class: "bar-completed", x: x(i) + gap / 2, width: bw - gap, y: y(ci), height: y(0) - y(ci) },
      s("title", { text: `${label}: ${ci} completed` })));
    if (fi > 0) bars.append(s("rect", { class: "bar-failed", x: x(i) + gap / 2, width: bw - gap, y: y(ci + fi), height: y(ci) - y(ci + fi) },
      s("title", { text: `${label}: ${fi} failed` })));
  });
  svg.append(bars);
  note.textContent = `${sum(c)} completed, ${sum(f)} failed${tl.canceled ? `, ${sum(tl.canceled)} canceled` : ""} in the last hour`;
}

function drawDepth(svg, note, tl) {
  if (!tl || !Array.isArray(tl.minutes) || !Array.isArray(tl.depth)) return chartUnavailable(svg, note);
  const d = tl.depth;
  const maxV = Math.max(0, ...d);
  const { x, y, bw, n } = chartFrame(svg, tl.minutes, maxV);
  const px = (i) => x(i) + bw / 2;
  const pts = d.slice(0, n).map((v, i) => [px(i), y(v || 0)]);
  if (pts.length) {
    const line = pts.map(([a, b], i) => `${i ? "L" : "M"}${a.toFixed(1)},${b.toFixed(1)}`).join(" ");
    const area = `${line} L${pts[pts.length - 1][0].toFixed(1)},${y(0)} L${pts[0][0].toFixed(1)},${y(0)} Z`;
    svg.append(s("path", { class: "depth-area", d: area }));
    svg.append(s("path", { class: "depth-line", d: line }));
    const [lx, ly] = pts[pts.length - 1];
    svg.append(s("circle", { class: "depth-dot", cx: lx, cy: ly, r: 3 }, s("title", { text: `now: ${d[d.length - 1]} waiting` })));
  }
  note.textContent = `${d.length ? d[d.length - 1] : 0} due and waiting now, at most ${maxV} in the last hour`;
}

/* ----------------------------------------------------------------- tasks */

function renderTasks(p, view, params) {
  const filters = {};
  for (const k of ["status", "job", "queue", "instance", "schedule", "before"]) filters[k] = params.get(k) || "";
  let auto = true;

  const list = table("tasks", ["Task", "Job", "Queue", "Status", "Attempt", "Created", "Started", "Ended", "Duration", "Instance", "Reason"]);
  const filterForm = buildFilterForm(filters);
  const autoBox = h("input", { type: "checkbox", id: "auto-refresh", checked: true, onchange: (e) => { auto = e.target.checked; } });
  const pager = h("div", { class: "pager" });
  const summary = h("span", { class: "muted" });

  view.append(
    h("h1", { text: "Tasks" }),
    buildEnqueueForm(p),
    h("section", { class: "card" },
      h("div", { class: "card-head" }, h("h2", { text: "History" }),
        h("label", { class: "inline" }, autoBox, " Auto-refresh (3 s)")),
      filterForm,
      list.wrap,
      h("div", { class: "table-foot" }, summary, pager)));

  let first = true;
  async function refresh() {
    try {
      const tasks = await api(`/api/tasks${qs({ ...filters, limit: PAGE_SIZE })}`, { signal: p.signal });
      if (!p.alive()) return;
      setError("refresh", null);
      drawTasks(list.tbody, tasks);
      drawPager(pager, summary, filters, tasks);
      if (first) { first = false; p.ready(); }
    } catch (e) {
      reportError("refresh", e);
    }
  }
  p.every(3000, refresh, () => first || auto);
}

function buildFilterForm(filters) {
  const status = h("select", { name: "status" },
    h("option", { value: "", text: "any status" }),
    STATUSES.map((x) => h("option", { value: x, text: x, selected: filters.status === x })));
  const input = (name, label) => h("label", { class: "field" }, h("span", { text: label }),
    h("input", { name, type: "search", value: filters[name], placeholder: label.toLowerCase(), autocomplete: "off", spellcheck: "false" }));
  const form = h("form", { class: "filters", id: "filters" },
    h("label", { class: "field" }, h("span", { text: "Status" }), status),
    input("job", "Job"), input("queue", "Queue"), input("instance", "Instance"), input("schedule", "Schedule"),
    h("div", { class: "filter-buttons" },
      h("button", { type: "submit", class: "primary", text: "Filter" }),
      h("a", { class: "button", href: "#/tasks", text: "Clear" })));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const next = {};
    for (const k of ["status", "job", "queue", "instance", "schedule"]) next[k] = String(fd.get(k) || "").trim();
    go(`#/tasks${qs(next)}`);
  });
  status.addEventListener("change", () => form.requestSubmit());
  return form;
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function drawTasks(tbody, tasks) {
  const rows = tasks.map((t) => h("tr", { dataset: { key: t.id, task: t.id } },
    h("td", null, taskLink(t.id)),
    h("td", { text: t.job }),
    h("td", { text: t.queue }),
    h("td", null, badge(t.status, "status")),
    h("td", { class: "num", text: t.attempt }),
    h("td", null, timeEl(t.created_at)),
    h("td", null, timeEl(t.started_at)),
    h("td", null, timeEl(t.ended_at)),
    h("td", { class: "num", text: fmtDuration(taskDuration(t)) }),
    h("td", { text: t.instance || "—" }),
    h("td", { class: "reason", text: reasonText(t) })));
  syncRows(tbody, rows.length ? rows : [emptyRow(11, "No task matches.")]);
}

function drawPager(pager, summary, filters, tasks) {
  const { before, ...rest } = filters;
  summary.textContent = tasks.length
    ? `${tasks.length} task${tasks.length === 1 ? "" : "s"}${before ? " (older page)" : ""}`
    : "";
  const buttons = [];
  if (before) buttons.push(h("a", { class: "button", href: `#/tasks${qs(rest)}`, dataset: { action: "newest" }, text: "Newest" }));
  if (tasks.length >= PAGE_SIZE) {
    const last = tasks[tasks.length - 1].id;
    buttons.push(h("a", { class: "button", href: `#/tasks${qs({ ...rest, before: last })}`, dataset: { action: "older" }, text: "Older" }));
  }
  const sig = buttons.map((b) => b.outerHTML).join();
  if (pager.dataset.sig !== sig) {
    pager.dataset.sig = sig;
    pager.replaceChildren(...buttons);
  }
}

function buildEnqueueForm(p) {
  const jobSel = h("select", { name: "job", required: true }, h("option", { value: "", text: "loading…" }));
  const jobNote = h("span", { class: "muted small" });
  const args = h("textarea", { name: "args", rows: 3, spellcheck: "false", value: "{}" });
  const argsErr = h("div", { class: "field-error", id: "args-error", hidden: true });
  const formErr = h("div", { class: "field-error", hidden: true });
  const queue = h("input", { name: "queue", type: "text", placeholder: "job's default", autocomplete: "off" });
  const prio = h("input", { name: "priority", type: "number", step: 1, placeholder: "job's default" });
  const delay = h("input", { name: "delay", type: "number", min: 0, step: "any", placeholder: "0" });
  const submit = gated(h("button", { type: "submit", class: "primary", text: "Enqueue" }), "operate");
  const denied = deniedReason("operate");
  const jobs = new Map();

  const form = h("form", { id: "enqueue", class: "card enqueue", novalidate: true },
    h("h2", { text: "Enqueue a task" }),
    h("div", { class: "enqueue-grid" },
      h("label", { class: "field" }, h("span", null, "Job ", jobNote), jobSel),
      h("label", { class: "field field-args" }, h("span", { text: "Args (JSON)" }), args, argsErr),
      h("label", { class: "field" }, h("span", { text: "Queue" }), queue),
      h("label", { class: "field" }, h("span", { text: "Priority" }), prio),
      h("label", { class: "field" }, h("span", { text: "Delay (seconds)" }), delay),
      h("div", { class: "field field-submit" }, submit)),
    denied ? h("div", { class: "muted small denied-note", text: denied }) : null,
    formErr);

  const showErr = (el, msg) => { el.textContent = msg || ""; el.hidden = !msg; };
  args.addEventListener("input", () => { showErr(argsErr, null); args.classList.remove("invalid"); });
  jobSel.addEventListener("change", () => {
    const j = jobs.get(jobSel.value);
    queue.placeholder = j && j.queue ? j.queue : "job's default";
    prio.placeholder = j && j.priority !== undefined ? String(j.priority) : "job's default";
  });

  loadJobs(p, jobSel, jobNote, jobs);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showErr(formErr, null);
    const body = { job: jobSel.value };
    if (!body.job) return showErr(formErr, "Choose a job.");
    try {
      body.args = args.value.trim() ? JSON.parse(args.value) : {};
    } catch (e) {
      args.classList.add("invalid");
      return showErr(argsErr, `Args are not valid JSON: ${e.message}`);
    }
    if (queue.value.trim()) body.queue = queue.value.trim();
    if (prio.value.trim()) {
      const n = Number(prio.value);
      if (!Number.isInteger(n)) return showErr(formErr, "Priority must be a whole number.");
      body.priority = n;
    }
    if (delay.value.trim()) {
      const sec = Number(delay.value);
      if (!isFinite(sec) || sec < 0) return showErr(formErr, "Delay must be a number of seconds, 0 or more.");
      if (sec > 0) body.delay_ms = Math.round(sec * 1000);
    }
    submit.disabled = true;
    try {
      const task = await api("/api/tasks", { method: "POST", body, signal: p.signal });
      go(`#/tasks/${encodeURIComponent(task.id)}`);
    } catch (e) {
      if (e.name !== "AbortError") showErr(formErr, e.message);
    } finally {
      submit.disabled = !!denied;
    }
  });
  return form;
}

async function loadJobs(p, sel, note, jobs) {
  const opts = [];
  try {
    const list = await apiOptional("/api/jobs", { signal: p.signal });
    if (list) {
      for (const j of list) jobs.set(j.name, j);
      for (const j of [...list].sort((a, b) => a.name.localeCompare(b.name))) {
        const bits = [j.queue && `queue ${j.queue}`, j.slots > 1 && `${j.slots} slots`, j.runnable === false && "not runnable"].filter(Boolean);
        opts.push(h("option", { value: j.name, disabled: j.runnable === false, text: bits.length ? `${j.name} (${bits.join(", ")})` : j.name }));
      }
      if (!list.length) note.textContent = "· no job in jobs/";
    } else {
      // No /api/jobs on this server: offer the jobs its statistics know.
      note.textContent = "· job list not available";
      const stats = await api("/api/stats", { signal: p.signal });
      for (const j of [...(stats.jobs || [])].sort((a, b) => a.job.localeCompare(b.job))) opts.push(h("option", { value: j.job, text: j.job }));
    }
  } catch (e) {
    if (e.name === "AbortError") return;
    note.textContent = "· could not load the jobs";
    reportError("jobs", e);
  }
  sel.replaceChildren(h("option", { value: "", text: opts.length ? "choose a job…" : "no job available" }), ...opts);
  const firstOk = opts.find((o) => !o.disabled);
  if (opts.length === 1 && firstOk) sel.value = firstOk.value;
  sel.dispatchEvent(new Event("change"));
}

/* ------------------------------------------------------------- task page */

function renderTask(p, view, id) {
  const root = h("section", { id: "task", class: "task", dataset: { task: id } });
  const head = h("div", { class: "task-head" });
  const actions = h("div", { class: "task-actions" });
  const warn = h("div", { class: "warning", hidden: true });
  const facts = h("dl", { class: "facts" });
  const jsonBox = h("div", { class: "json-cols" });
  const attempts = table("attempts", ["Attempt", "Status", "Reason", "Instance", "Started", "Ended", "Duration", ""]);
  const attemptLog = h("pre", { class: "log attempt-log", hidden: true });
  const children = table("children", ["Task", "Job", "Status", "Created", "Ended"]);
  const logState = h("span", { class: "muted small" });
  const logBox = h("pre", { id: "task-log", class: "log", tabindex: 0 });
  const attemptsCard = section("Earlier attempts", attempts.wrap, attemptLog);
  const childrenCard = section("Children", children.wrap);

  root.append(
    h("div", { class: "crumbs" }, h("a", { href: "#/tasks", text: "Tasks" }), " / ", h("span", { class: "mono", text: id })),
    h("div", { class: "card task-card" }, h("div", { class: "task-top" }, head, actions), warn, facts),
    h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", { text: "Log" }), logState), logBox),
    jsonBox, attemptsCard, childrenCard);
  view.append(root);

  // logMode: null (not started), "live" (following), "done", "static".
  let task = null, first = true, stickBottom = true, logMode = null, fresh = false;
  logBox.addEventListener("scroll", () => {
    stickBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
  });

  attempts.table.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button[data-attempt]");
    if (!btn) return;
    try {
      const text = await api(`/api/tasks/${encodeURIComponent(id)}/log${qs({ attempt: btn.dataset.attempt })}`, { signal: p.signal });
      attemptLog.textContent = `— log of attempt ${btn.dataset.attempt} —\n${text || "(empty)"}`;
    } catch (e) {
      if (e.status === 404) attemptLog.textContent = `— attempt ${btn.dataset.attempt} left no log —`;
      else reportError("action", e);
    }
    attemptLog.hidden = false;
  });

  actions.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button[data-action]");
    if (!btn) return;
    btn.disabled = true;
    try {
      if (btn.dataset.action === "cancel") {
        const r = await api(`/api/tasks/${encodeURIComponent(id)}/cancel`, { method: "POST", signal: p.signal });
        setError("action", null);
        logState.textContent = r && r.outcome === "stop-requested" ? "stop requested…" : logState.textContent;
        await load();
      } else if (btn.dataset.action === "retry") {
        const t = await api(`/api/tasks/${encodeURIComponent(id)}/retry`, { method: "POST", signal: p.signal });
        go(`#/tasks/${encodeURIComponent(t.id)}`);
      }
    } catch (e) {
      reportError("action", e);
      btn.disabled = false;
    }
  });

  function appendLog(text) {
    if (!text) return;
    const atBottom = stickBottom;
    if (fresh || logBox.classList.contains("placeholder")) {
      // A new stream starts from the log's beginning: replace what was shown.
      logBox.classList.remove("placeholder");
      logBox.textContent = "";
      fresh = false;
    }
    logBox.append(text);
    logBox.normalize();
    if (atBottom) logBox.scrollTop = logBox.scrollHeight;
  }

  function placeholder(text) {
    logBox.classList.add("placeholder");
    logBox.textContent = text;
  }

  async function followLog() {
    logMode = "live";
    logState.textContent = "following live…";
    if (!logBox.textContent || logBox.classList.contains("placeholder")) {
      placeholder(task && task.status === "pending" ? "Waiting for the task to start…" : "");
    }
    fresh = true;
    let ended = false;
    try {
      await streamEvents(`/api/tasks/${encodeURIComponent(id)}/log/stream`, p.signal, (event, data) => {
        let d;
        try { d = JSON.parse(data); } catch (_) { d = { text: data }; }
        if (event === "log") {
          appendLog(d.text || "");
        } else if (event === "end") {
          ended = true;
          logState.textContent = `ended: ${d.status || ""}${d.exit_code !== null && d.exit_code !== undefined ? ` (exit ${d.exit_code})` : ""}`;
        } else if (event === "error") {
          ended = true;
          setError("log", `Log stream: ${d.message || data}`);
        }
      });
    } catch (e) {
      if (e.name === "AbortError") return;
      reportError("log", e);
    }
    if (!p.alive()) return;
    if (logBox.classList.contains("placeholder")) placeholder("(the log is empty)");
    logMode = "done";
    if (!ended) {
      // Cut off (server restarted, network): follow again while it is live.
      logState.textContent = "stream closed; reconnecting…";
      await new Promise((r) => setTimeout(r, 2000));
      if (!p.alive()) return;
      logMode = null;
    }
    await load();
  }

  async function loadFullLog() {
    logMode = "static";
    logState.textContent = "";
    try {
      const text = await api(`/api/tasks/${encodeURIComponent(id)}/log`, { signal: p.signal });
      if (!p.alive()) return;
      if (text) {
        logBox.classList.remove("placeholder");
        logBox.textContent = text;
        logBox.scrollTop = logBox.scrollHeight;
      } else placeholder("(the log is empty)");
    } catch (e) {
      if (e.name === "AbortError") return;
      if (e.status === 404) placeholder("(no log yet)");
      else reportError("log", e);
    }
  }

  async function load() {
    try {
      const [t, kids] = await Promise.all([
        api(`/api/tasks/${encodeURIComponent(id)}`, { signal: p.signal }),
        api(`/api/tasks${qs({ parent: id, limit: 100 })}`, { signal: p.signal }),
      ]);
      if (!p.alive()) return;
      task = t;
      setError("refresh", null);
      drawTaskHead(head, actions, t);
      drawFacts(facts, t);
      warn.hidden = !t.capacity_warning;
      warn.textContent = t.capacity_warning ? `Capacity: ${t.capacity_warning}` : "";
      drawJson(jsonBox, t);
      drawAttempts(attempts.tbody, attemptsCard, t);
      drawChildren(children.tbody, childrenCard, kids);
      if (logMode === null) {
        if (LIVE.has(t.status)) followLog();
        else if (t.log === null) {
          logMode = "static";
          placeholder("(no log: the task never ran)");
        } else loadFullLog();
      }
      if (first) { first = false; p.ready(); }
    } catch (e) {
      if (e.name === "AbortError") return;
      reportError("refresh", e);
      if (first && e.status === 404) {
        gone = true;
        head.replaceChildren(h("h1", { text: "No such task" }));
      }
    }
  }

  let gone = false;
  p.every(2000, load, () => !gone && (!task || LIVE.has(task.status)));
}

function drawTaskHead(head, actions, t) {
  const status = $('[data-field="status"]', head);
  if (!status || status.textContent !== t.status || head.dataset.job !== t.job) {
    head.dataset.job = t.job;
    head.replaceChildren(
      h("h1", null, h("span", { text: t.job }), " ", badge(t.status, "status")),
      h("div", { class: "muted mono small", text: t.id }));
  }
  const want = [];
  if (LIVE.has(t.status)) want.push(["cancel", t.status === "running" ? "Stop" : "Cancel", "danger"]);
  if (t.status === "failed" || t.status === "canceled") want.push(["retry", "Retry", "primary"]);
  const sig = `${want.map((w) => w[0]).join()}|${who.role || ""}`;
  if (actions.dataset.sig !== sig) {
    actions.dataset.sig = sig;
    actions.replaceChildren(...want.map(([action, label, cls]) =>
      gated(h("button", { type: "button", class: cls, dataset: { action }, text: label }), "operate")));
  }
}

function drawFacts(dl, t) {
  const rows = [
    ["Status", badge(t.status)],
    ["Reason", reasonText(t)],
    ["Exit code", t.exit_code ?? "—"],
    ["Signal", t.signal ?? "—"],
    ["Job", h("a", { href: `#/tasks${qs({ job: t.job })}`, text: t.job })],
    ["Queue", h("a", { href: `#/tasks${qs({ queue: t.queue })}`, text: t.queue })],
    ["Priority", t.priority],
    ["Slots", t.slots],
    ["Attempt", t.attempt],
    ["Instance", t.instance ? h("a", { href: `#/tasks${qs({ instance: t.instance })}`, text: t.instance }) : "—"],
    ["Created", timeEl(t.created_at)],
    ["Due", timeEl(t.start_at)],
    ["Started", timeEl(t.started_at)],
    ["Ended", timeEl(t.ended_at)],
    ["Duration", fmtDuration(taskDuration(t))],
    ["Deadline", timeEl(t.deadline_at)],
    ["Max time", t.max_execution_time_ms ? fmtDuration(t.max_execution_time_ms) : "none"],
  ];
  if (t.schedule) rows.push(["Schedule", h("a", { href: `#/tasks${qs({ schedule: t.schedule })}`, text: t.schedule })]);
  if (t.recurrence) rows.push(["Recurrence", fmtRecurrence(t.recurrence)]);
  if (t.parent) rows.push(["Parent", taskLink(t.parent, t.parent)]);
  if (t.after) rows.push(["After", taskLink(t.after, t.after)]);
  if (t.unique_key) rows.push(["Unique key", t.unique_key]);
  if (t.needs_review) rows.push(["Needs review", "yes"]);
  const next = rows.map(([k, v]) => h("div", { class: "fact" }, h("dt", { text: k }), h("dd", null, v)));
  const holder = h("dl", null, ...next);
  if (holder.innerHTML !== dl.innerHTML) dl.replaceChildren(...next);
}

function drawJson(box, t) {
  const blocks = [["Args", t.args], ["Metadata", t.metadata], ["Result", t.result]];
  const next = blocks.map(([k, v]) => h("section", { class: "card" }, h("h2", { text: k }),
    h("pre", { class: "json", dataset: { field: k.toLowerCase() }, text: v === null || v === undefined ? "null" : pretty(v) })));
  const holder = h("div", null, ...next);
  if (holder.innerHTML !== box.innerHTML) box.replaceChildren(...next);
}

function drawAttempts(tbody, card, t) {
  const list = Array.isArray(t.attempts) ? t.attempts : [];
  card.hidden = list.length === 0;
  const rows = list.map((a) => h("tr", { dataset: { key: String(a.attempt), attempt: String(a.attempt) } },
    h("td", { class: "num", text: a.attempt }),
    h("td", null, badge(a.status)),
    h("td", { class: "reason", text: reasonText(a) }),
    h("td", { text: a.instance || "—" }),
    h("td", null, timeEl(a.started_at)),
    h("td", null, timeEl(a.ended_at)),
    h("td", { class: "num", text: fmtDuration(taskDuration(a)) }),
    h("td", null, a.log === null
      ? h("span", { class: "muted small", text: "no log" })
      : h("button", { type: "button", class: "btn-small", dataset: { attempt: String(a.attempt) }, text: "Log" }))));
  syncRows(tbody, rows);
}

function drawChildren(tbody, card, kids) {
  card.hidden = !kids || kids.length === 0;
  const rows = (kids || []).map((t) => h("tr", { dataset: { key: t.id, task: t.id } },
    h("td", null, taskLink(t.id)),
    h("td", { text: t.job }),
    h("td", null, badge(t.status)),
    h("td", null, timeEl(t.created_at)),
    h("td", null, timeEl(t.ended_at))));
  syncRows(tbody, rows);
}

/* ------------------------------------------------------------- schedules */

function renderSchedules(p, view) {
  const list = table("schedules", ["Schedule", "Job", "Recurrence", "Next run", "Last outcome", "Last ended", "Last completed"]);
  const note = h("p", { class: "muted", hidden: true });
  view.append(h("h1", { text: "Schedules" }), section("Schedules", note, list.wrap));
  let first = true;
  async function refresh() {
    try {
      const scheds = await apiOptional("/api/schedules", { signal: p.signal });
      if (!p.alive()) return;
      setError("refresh", null);
      if (scheds === null) {
        note.hidden = false;
        note.textContent = "Schedules are not available from this server (no /api/schedules yet).";
        syncRows(list.tbody, [emptyRow(7, "not available")]);
      } else {
        note.hidden = true;
        drawSchedules(list.tbody, scheds);
      }
      if (first) { first = false; p.ready(); }
    } catch (e) {
      reportError("refresh", e);
    }
  }
  p.every(5000, refresh);
}

function drawSchedules(tbody, scheds) {
  const rows = [...scheds].sort((a, b) => a.name.localeCompare(b.name)).map((sc) => {
    const last = sc.last;
    const outcome = last
      ? h("div", { class: "outcome" }, badge(last.status, "last-status"), " ", taskLink(last.id),
        h("div", { class: "reason small", text: reasonText(last) === "—" ? "" : reasonText(last) }))
      : h("span", { class: "muted", text: "never ran" });
    const next = h("div", null, timeEl(sc.next_run_at),
      sc.next_task ? h("div", { class: "small" }, "task ", taskLink(typeof sc.next_task === "object" ? sc.next_task.id : sc.next_task)) : null);
    return h("tr", { dataset: { key: sc.name, schedule: sc.name } },
      h("td", null, h("a", { href: `#/tasks${qs({ schedule: sc.name })}`, text: sc.name })),
      h("td", null, h("a", { href: `#/tasks${qs({ job: sc.job })}`, text: sc.job })),
      h("td", { class: "mono small", text: fmtRecurrence(sc.recurrence) }),
      h("td", null, next),
      h("td", null, outcome),
      h("td", null, last ? timeEl(last.ended_at) : "—"),
      h("td", null, timeEl(sc.last_completed_at)));
  });
  syncRows(tbody, rows.length ? rows : [emptyRow(7, "No schedule in schema/.")]);
}

/* ------------------------------------------------------------------ boot */

function boot() {
  setupToken();
  window.addEventListener("hashchange", route);
  window.addEventListener("unhandledrejection", (ev) => reportError("unexpected", ev.reason));
  route();
  loadWho();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();

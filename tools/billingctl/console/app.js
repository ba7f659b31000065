// The operators' console: five pages over the admin API, reached through the console
// server's /api/ proxy (signed with the operator's AWS credentials there).
//
// The page keeps everything in memory: no customer id, bill id or contact data ever goes
// into the address, the history or any browser storage. The hash names the page only.

import { t, tOr, setLanguage, language, preferredLanguage, translateStatic, count, won, time, duration } from "./i18n.js";
import { drawFunnel, fillSlotTable, STATES, slotLabel } from "./chart.js";

const PAGES = ["month", "funnel", "customer", "failures", "settings"];
const ROLE_RANK = { viewer: 1, operator: 2, administrator: 3 };
/// The role each action needs (the admin API's access table decides; this only greys out).
const NEEDS = {
  resend: "operator",
  "convert-to-sms": "operator",
  hold: "operator",
  schedule: "operator",
  confirm: "operator",
  "force-send": "administrator",
  redrive: "administrator",
};
const DELIVERY_ACTIONS = ["resend", "convert-to-sms", "force-send", "hold", "schedule"];
const DEAD_LETTER_QUEUES = ["delivery-dlq", "dispatch-dlq"];
/// Failure codes the platform itself records; provider codes join as they are seen.
const KNOWN_CODES = [
  "contact-unreadable", "corrupt-entry", "customer-missing", "dead-lettered", "delivery-unreadable",
  "invoice-missing", "malformed-message", "no-allowed-slot", "provider-rejected", "send-unconfirmed",
  "suppressed", "unknown-delivery", "wrong-channel",
];
const FUNNEL_REFRESH_MS = 3000;
const FAILURES_PAGE = 100;

const state = {
  session: null,
  role: null,
  rolesReady: null,
  cycles: [],
  cycle: null,
  page: null,
  loadSeq: 0,
  month: null,
  funnel: null,
  deadLetters: null,
  customer: null, // {query, delivery, invoice, invoiceError}
  customerQueued: null, // a search asked for from another page
  failures: { data: null, tokens: [null], index: 0, codes: new Set(KNOWN_CODES) },
  settings: null,
  templateVersion: null,
  templateSample: "family",
  funnelTimer: null,
  funnelSeq: 0,
  pending: new Map(), // action key → {id, reason, at, unanswered}
  dialog: null,
  lastError: null,
  lastResult: null,
};

const $ = (id) => document.getElementById(id);

/// An element: `h("td", {class: "num", text: "3", "data-x": "y"}, child, …)`.
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k === "hidden") node.hidden = true;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/// A `<dl>`'s rows from [label, value] pairs (a value may be a node); empty values skipped.
function fillDl(dl, rows) {
  const out = [];
  for (const [label, value, attrs] of rows) {
    if (value === undefined || value === null || value === "") continue;
    out.push(h("div", attrs || {}, h("dt", { text: label }), h("dd", {}, value)));
  }
  dl.replaceChildren(...out);
}

function timeNode(value, opts) {
  return value ? h("time", { datetime: value, text: time(value, opts) }) : "—";
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = "GET", body } = {}) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? { accept: "application/json" } : { accept: "application/json", "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "network", e && e.message ? e.message : String(e));
  }
  const text = await res.text().catch(() => "");
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(res.status, e.code || `http-${res.status}`, e.message || res.statusText || "");
  }
  return data;
}

/// A mistake the page itself finds (no request made), worded by `key`.
function localError(code, key) {
  const e = new ApiError(400, code, "");
  e.localKey = key;
  return e;
}

/// Whether a failed call may not have reached the admin API (the same command id retries it).
function noAnswer(err) {
  return err.status === 0 || err.status === 502 || err.status === 504;
}

function roleName(role) {
  return role ? tOr(`role.${role}`, role) : t("role.unknown");
}

/// An error in words: what happened, what to do, and the server's own message.
function errorNode(err, { needed } = {}) {
  if (err.localKey) return [h("p", { class: "what", text: t(err.localKey) })];
  const s = err.status;
  let what;
  if (s === 0) what = t("error.network");
  else if (s === 401) what = t("error.401");
  else if (s === 403) {
    what = t("error.403", { you: roleName(state.role), needed: needed ? t("error.403needed", { role: roleName(needed) }) : "" });
  } else if ([400, 404, 409, 500, 502, 504].includes(s)) what = t(`error.${s}`);
  else if (s > 500) what = t("error.500");
  else what = t("error.other", { status: s });
  const parts = [h("p", { class: "what", text: what })];
  if (err.message) {
    parts.push(h("p", { class: "server" }, `${t("error.server")}: `, h("span", { text: err.message }), err.code ? h("code", { text: ` ${err.code}` }) : null));
  }
  return parts;
}

function showError(err, opts) {
  state.lastError = { err, opts };
  const box = $("error");
  const dismiss = h("button", { type: "button", class: "dismiss", text: t("error.dismiss") });
  dismiss.addEventListener("click", clearError);
  box.replaceChildren(h("div", { class: "error-body" }, ...errorNode(err, opts)), dismiss);
  box.dataset.status = String(err.status);
  box.dataset.code = err.code || "";
}

function clearError() {
  state.lastError = null;
  const box = $("error");
  box.replaceChildren();
  delete box.dataset.status;
  delete box.dataset.code;
}

// ---------------------------------------------------------------------------------------
// Roles and action buttons

function allowed(verb) {
  return (ROLE_RANK[state.role] || 0) >= ROLE_RANK[NEEDS[verb]];
}

function applyRole(button) {
  const verb = button.dataset.action;
  const need = NEEDS[verb];
  button.querySelector(".needs-role")?.remove();
  if (allowed(verb)) {
    button.disabled = false;
    button.removeAttribute("title");
  } else {
    button.disabled = true;
    button.title = t("action.needsRoleTitle", { role: roleName(need), you: roleName(state.role) });
    button.append(h("span", { class: "needs-role", text: t("action.needsRole", { role: roleName(need) }) }));
  }
}

/// A button for `verb` on a delivery (`ctx.customer`, `ctx.cycle`) or a queue (`ctx.queue`).
function actionButton(verb, ctx) {
  const label = verb === "redrive" ? t("action.redriveQueue", { queue: ctx.queue }) : t(`action.${verb}`);
  const b = h("button", { type: "button", class: `action action-${verb}`, "data-action": verb, "data-queue": ctx.queue },
    h("span", { class: "label", text: label }));
  applyRole(b);
  b.addEventListener("click", () => openAction(verb, ctx, b));
  return b;
}

function renderRole() {
  const el = $("role");
  el.textContent = roleName(state.role);
  el.dataset.role = state.role || "";
  for (const b of document.querySelectorAll("button[data-action]")) applyRole(b);
}

// ---------------------------------------------------------------------------------------
// The action dialog

function newCommandId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/// `YYYY-MM-DDTHH:MM` (a datetime-local in Korea time) as RFC 3339 with +09:00.
function kstInput(value) {
  const v = value.length === 16 ? `${value}:00` : value;
  return `${v}+09:00`;
}

/// The next whole hour in Korea time, for the schedule input.
function nextHourKst() {
  const d = new Date(Date.now() + 9 * 3600 * 1000 + 3600 * 1000);
  d.setUTCMinutes(0, 0, 0);
  return d.toISOString().slice(0, 16);
}

function actionKey(verb, ctx) {
  return verb === "redrive" ? `redrive|${ctx.queue}` : `${verb}|${ctx.cycle}|${ctx.customer}`;
}

function openAction(verb, ctx, opener) {
  if (!allowed(verb) || $("action-dialog").open) return;
  const key = actionKey(verb, ctx);
  if (!state.pending.has(key)) state.pending.set(key, { id: newCommandId(), reason: "", at: "", unanswered: false });
  const p = state.pending.get(key);
  state.dialog = { verb, ctx, opener, key };
  const target = verb === "redrive" ? ctx.queue : ctx.customer;
  $("action-title").textContent = t("action.dialogTitle", { action: t(`action.${verb}`), target });
  $("action-command-id").textContent = p.id;
  const reason = $("action-reason");
  reason.value = p.reason;
  reason.removeAttribute("aria-invalid");
  reason.readOnly = p.unanswered;
  const at = $("action-at");
  $("action-at-box").hidden = verb !== "schedule";
  at.required = verb === "schedule";
  at.value = p.at || nextHourKst();
  at.readOnly = p.unanswered;
  $("action-error").replaceChildren();
  if (p.unanswered) $("action-error").append(h("p", { text: t("action.noAnswer") }));
  $("action-submit").disabled = false;
  $("action-submit").textContent = t("action.submit");
  const dialog = $("action-dialog");
  dialog.dataset.action = verb;
  dialog.showModal();
  reason.focus();
}

function actionError(nodes) {
  $("action-error").replaceChildren(...(Array.isArray(nodes) ? nodes : [nodes]));
}

async function submitAction(ev) {
  ev.preventDefault();
  const d = state.dialog;
  if (!d) return;
  const p = state.pending.get(d.key);
  const reasonEl = $("action-reason");
  const reason = reasonEl.value.trim();
  if (!reason) {
    reasonEl.setAttribute("aria-invalid", "true");
    actionError(h("p", { text: t("action.reasonRequired") }));
    reasonEl.focus();
    return;
  }
  reasonEl.removeAttribute("aria-invalid");
  const body = { command_id: p.id, reason };
  if (d.verb === "schedule") {
    const at = $("action-at").value;
    if (!at) {
      actionError(h("p", { text: t("action.atRequired") }));
      $("action-at").focus();
      return;
    }
    p.at = at;
    body.available_at = kstInput(at);
  }
  p.reason = reasonEl.value;
  const path = d.verb === "redrive"
    ? `/api/queues/${enc(d.ctx.queue)}/redrive`
    : `/api/cycles/${enc(d.ctx.cycle)}/deliveries/${enc(d.ctx.customer)}/${d.verb}`;
  const submit = $("action-submit");
  submit.disabled = true;
  submit.textContent = t("action.sending");
  actionError(h("p", { class: "busy", text: t("action.sending") }));
  let answer;
  try {
    answer = await api(path, { method: "POST", body });
  } catch (err) {
    submit.disabled = false;
    submit.textContent = t("action.submit");
    if (noAnswer(err)) {
      // It may have applied: keep the id (and the request as given) so the retry replays.
      p.unanswered = true;
      reasonEl.readOnly = true;
      $("action-at").readOnly = true;
      actionError([h("p", { class: "what", text: t("action.noAnswer") }), ...errorNode(err).slice(1)]);
      return;
    }
    // A definitive refusal: nothing was applied; the next try is a new command.
    const next = { id: newCommandId(), reason: p.reason, at: p.at, unanswered: false };
    state.pending.set(d.key, next);
    $("action-command-id").textContent = next.id;
    reasonEl.readOnly = false;
    $("action-at").readOnly = false;
    actionError(errorNode(err, { needed: NEEDS[d.verb] }));
    $("action-error").dataset.status = String(err.status);
    return;
  }
  state.pending.delete(d.key);
  state.dialog = null;
  $("action-dialog").close();
  await showAudit(answer, d);
  $("action-result").focus();
  refreshCurrent();
}

/// The audit record of a command the page gave (GET /commands/{id}), or its answer.
async function showAudit(answer, d) {
  const id = answer && answer.command_id;
  let record = null;
  if (id) {
    try {
      record = await api(`/api/commands/${enc(id)}`);
    } catch {
      record = null;
    }
  }
  state.lastResult = { answer, record, verb: d.verb };
  renderAudit();
}

function outcomeText(result) {
  if (!result) return "";
  const parts = [];
  if (result.previous && result.previous.state && result.state) parts.push(`${result.previous.state} → ${result.state}`);
  else if (result.state) parts.push(result.state);
  if (result.status) parts.push(result.status);
  if (result.channel) parts.push(result.channel);
  if (result.available_at) parts.push(time(result.available_at));
  if (result.new_round) parts.push(`round ${result.send_round}`);
  return parts.join(" · ");
}

function renderAudit() {
  const box = $("action-result");
  const r = state.lastResult;
  if (!r) {
    box.replaceChildren();
    delete box.dataset.commandId;
    return;
  }
  const rec = r.record || {};
  const answer = r.answer || {};
  const id = rec.command_id || answer.command_id;
  box.dataset.commandId = id || "";
  const dl = h("dl", { class: "facts" });
  fillDl(dl, [
    [t("action.commandId"), h("code", { text: id })],
    [t("action.resultCommand"), rec.command || answer.command],
    [t("action.resultTarget"), rec.target || answer.delivery_id || answer.queue],
    [t("action.resultWho"), rec.who],
    [t("action.resultWhen"), rec.at ? timeNode(rec.at) : null],
    [t("action.resultWhy"), rec.why],
    [t("action.resultOutcome"), outcomeText(rec.result || answer)],
  ]);
  const dismiss = h("button", { type: "button", class: "dismiss", text: t("action.dismiss") });
  dismiss.addEventListener("click", () => {
    state.lastResult = null;
    renderAudit();
  });
  box.replaceChildren(...[
    h("h2", { text: t("action.result") }),
    answer.replayed ? h("p", { class: "note", text: t("action.replayed") }) : null,
    dl,
    dismiss,
  ].filter(Boolean));
}

// ---------------------------------------------------------------------------------------
// Pages and the router

function pageFromHash() {
  const name = location.hash.replace(/^#/, "");
  return PAGES.includes(name) ? name : null;
}

function markReady(page, seq) {
  if (seq === undefined || seq === state.loadSeq) document.body.dataset.ready = page;
}

async function show(page) {
  stopFunnel();
  state.page = page;
  delete document.body.dataset.ready;
  const seq = ++state.loadSeq;
  for (const p of PAGES) $(`page-${p}`).hidden = p !== page;
  for (const a of document.querySelectorAll("nav a[href^='#']")) {
    if (a.getAttribute("href") === `#${page}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  clearError();
  try {
    await LOADERS[page](seq);
  } catch (err) {
    if (seq === state.loadSeq) showError(err);
  }
}

/// After a command: the shown page's data again (no change of page).
function refreshCurrent() {
  if (state.page === "funnel") return refreshFunnel(true);
  if (state.page === "customer" && state.customer) return searchCustomer(state.customer.query, { quiet: true });
  if (state.page) return show(state.page);
}

function noCycle(section) {
  $(section).replaceChildren(h("p", { class: "note", text: t("cycle.none") }));
}

// ---------------------------------------------------------------------------------------
// Month

async function loadMonth(seq) {
  if (!state.cycle) {
    state.month = null;
    renderMonth();
    return markReady("month", seq);
  }
  const data = await api(`/api/cycles/${enc(state.cycle)}`);
  await state.rolesReady;
  if (seq !== state.loadSeq) return;
  state.month = data;
  renderMonth();
  markReady("month", seq);
}

function renderMonth() {
  const m = state.month;
  const stateEl = $("month-state");
  if (!m) {
    stateEl.textContent = "—";
    stateEl.dataset.status = "";
    $("month-state-label").textContent = t("cycle.none");
    $("shard-grid").replaceChildren();
    $("money").replaceChildren();
    $("month-figures").replaceChildren();
    $("execution-link").hidden = true;
    return;
  }
  stateEl.textContent = m.status || "—";
  stateEl.dataset.status = m.status || "";
  $("month-state-label").textContent = tOr(`month.status.${m.status}`, "");

  const link = $("execution-link");
  if (m.execution_url) {
    link.href = m.execution_url;
    link.hidden = false;
    link.textContent = t("month.execution");
    $("execution-none").textContent = "";
  } else {
    link.hidden = true;
    link.removeAttribute("href");
    $("execution-none").textContent = m.execution ? `${t("month.noExecution")}: ${m.execution}` : t("month.noExecution");
  }

  const money = m.money || {};
  fillDl($("money"), [
    [t("month.billed"), won(money.billed_total ?? m.checksum), { "data-field": "billed" }],
    [t("month.corrections", { count: count(money.adjustments ?? 0) }), won(money.adjustments_total ?? 0), { "data-field": "corrections" }],
    [t("month.net"), h("strong", { text: won(money.net_total ?? m.checksum) }), { "data-field": "net" }],
  ]);
  fillDl($("month-figures"), [
    [t("month.customers"), count(m.customers)],
    [t("month.bills"), count(m.bills)],
    [t("month.notBillable"), m.not_billable === undefined ? null : count(m.not_billable)],
    [t("month.deliveries"), count(m.deliveries)],
    [t("month.checksum"), m.checksum === undefined ? null : won(m.checksum)],
    [t("month.catalog"), m.catalog_version],
    [t("month.template"), m.template_version],
    [t("month.started"), timeNode(m.started_at)],
    [t("month.finished"), m.finished_at ? timeNode(m.finished_at) : null],
    [t("month.runs"), m.runs === undefined ? null : count(m.runs)],
  ]);

  const shards = m.shards || {};
  $("shard-summary").textContent = t("month.shardsSummary", {
    total: count(shards.total), done: count(shards.done), in_progress: count(shards.in_progress),
    failed: count(shards.failed), not_started: count(shards.not_started), rendered: count(shards.rendered),
  });
  const grid = $("shard-grid");
  if (Array.isArray(m.shard_list)) {
    const cells = m.shard_list.map((s) => {
      const status = s.status || "NOT_STARTED";
      const label = t("month.shardCell", {
        shard: s.shard,
        status: tOr(`shard.${status}`, status),
        rendered: s.rendered ? t("month.shardRendered") : "",
      });
      const extra = [
        s.bills !== null && s.bills !== undefined ? `${t("month.bills")} ${count(s.bills)}` : null,
        s.deliveries !== null && s.deliveries !== undefined ? `${t("month.deliveries")} ${count(s.deliveries)}` : null,
        s.error ? s.error : null,
      ].filter(Boolean).join(" · ");
      return h("li", {
        class: `shard st-${status}${s.rendered ? " rendered" : ""}`,
        "data-shard": s.shard,
        "data-status": status,
        "data-rendered": s.rendered ? "true" : "false",
        title: extra ? `${label} — ${extra}` : label,
      }, h("span", { class: "sr-only", text: extra ? `${label}; ${extra}` : label }),
      h("span", { class: "num", "aria-hidden": "true", text: s.shard }));
    });
    grid.replaceChildren(...cells);
    grid.hidden = false;
    $("shard-grid-note").textContent = "";
  } else {
    grid.replaceChildren();
    $("shard-grid-note").textContent = t("month.noShardList");
  }

  const failed = Array.isArray(m.shard_list) ? m.shard_list.filter((s) => s.status === "FAILED") : [];
  const detailed = Array.isArray(m.failed_shards) ? m.failed_shards : [];
  const rows = detailed.length
    ? detailed.map((f) => [f.shard, f.attempts, (f.errors || []).join(" / "), f.updated_at])
    : failed.map((f) => [f.shard, f.attempts, f.error || "", f.updated_at]);
  $("failed-shards-box").hidden = rows.length === 0;
  const table = $("failed-shards");
  const head = h("thead", {}, h("tr", {}, ...["#", t("failures.attempts"), t("failures.reason"), t("failures.last")].map((x) => h("th", { scope: "col", text: x }))));
  table.replaceChildren(head, h("tbody", {}, ...rows.map(([shard, attempts, why, at]) =>
    h("tr", { "data-shard": shard }, h("th", { scope: "row", text: shard }), h("td", { class: "num", text: count(attempts) }), h("td", { text: why }), h("td", {}, timeNode(at))))));

  const reasons = Array.isArray(m.reasons) ? m.reasons : [];
  $("month-reasons-box").hidden = reasons.length === 0;
  $("month-reasons").replaceChildren(...reasons.map((r) => h("li", { text: typeof r === "string" ? r : JSON.stringify(r) })));
}

// ---------------------------------------------------------------------------------------
// Funnel

function stopFunnel() {
  if (state.funnelTimer) clearTimeout(state.funnelTimer);
  state.funnelTimer = null;
  state.funnelSeq++;
}

function scheduleFunnel() {
  if (state.funnelTimer) clearTimeout(state.funnelTimer);
  state.funnelTimer = null;
  if (state.page !== "funnel" || document.hidden) return;
  state.funnelTimer = setTimeout(() => refreshFunnel(false), FUNNEL_REFRESH_MS);
}

async function fetchFunnel() {
  const funnelP = api(`/api/cycles/${enc(state.cycle)}/funnel`);
  // The dead-letter counts ride on the funnel; an older API gives them only in /queues.
  const funnel = await funnelP;
  let deadLetters = funnel.dead_letters || null;
  if (!deadLetters) {
    try {
      const q = await api("/api/queues");
      deadLetters = Object.fromEntries((q.queues || []).map((x) => [x.queue, x.waiting]));
    } catch {
      deadLetters = null;
    }
  }
  return { funnel, deadLetters };
}

async function loadFunnel(seq) {
  if (!state.cycle) {
    noCycle("funnel-states");
    return markReady("funnel", seq);
  }
  const { funnel, deadLetters } = await fetchFunnel();
  await state.rolesReady;
  if (seq !== state.loadSeq) return;
  state.funnel = funnel;
  state.deadLetters = deadLetters;
  state.funnelUpdated = new Date();
  renderFunnel();
  markReady("funnel", seq);
  scheduleFunnel();
}

async function refreshFunnel(immediate) {
  if (state.page !== "funnel" || !state.cycle) return;
  const mine = ++state.funnelSeq;
  const cycle = state.cycle;
  try {
    const { funnel, deadLetters } = await fetchFunnel();
    if (mine !== state.funnelSeq || state.page !== "funnel" || cycle !== state.cycle) return;
    state.funnel = funnel;
    state.deadLetters = deadLetters;
    state.funnelUpdated = new Date();
    renderFunnel();
    if (state.lastError && !immediate) clearError();
  } catch (err) {
    if (mine !== state.funnelSeq) return;
    showError(err);
    if (err.status === 401) return;
  }
  if (mine === state.funnelSeq) scheduleFunnel();
}

function renderFunnel() {
  const f = state.funnel;
  if (!f) return;
  const updated = $("funnel-updated");
  const at = f.generated_at || (state.funnelUpdated && state.funnelUpdated.toISOString());
  updated.dateTime = at || "";
  updated.textContent = time(at);

  drawFunnel($("funnel-chart"), f.by_slot, f.by_state);
  fillSlotTable($("funnel-table"), f.by_slot);

  // Deliveries by state: the same elements every refresh, only their counts change.
  const list = $("funnel-states");
  const byState = f.by_state || {};
  const total = STATES.reduce((n, s) => n + (byState[s] || 0), 0);
  if (!list.querySelector("li[data-state]")) list.replaceChildren();
  for (const s of STATES) {
    let li = list.querySelector(`li[data-state="${s}"]`);
    if (!li) {
      li = h("li", { "data-state": s, class: `state-item s-${s}` },
        h("span", { class: "swatch", "aria-hidden": "true" }),
        h("span", { class: "state-name" }),
        h("span", { class: "state-code" }),
        h("span", { class: "state-count num" }));
      list.append(li);
    }
    const n = byState[s] || 0;
    li.dataset.count = String(n);
    li.querySelector(".state-name").textContent = tOr(`state.${s}`, s);
    li.querySelector(".state-code").textContent = s;
    li.querySelector(".state-count").textContent = count(n);
    li.classList.toggle("zero", n === 0);
  }
  $("funnel-total").textContent = t("funnel.deliveries", { n: count(f.deliveries ?? total) });
  const needs = f.needs_operator ?? byState.UNCONFIRMED ?? 0;
  const needsEl = $("funnel-needs");
  needsEl.textContent = needs ? t("funnel.needsOperator", { n: count(needs) }) : "";
  needsEl.classList.toggle("warn", needs > 0);

  // Send queues.
  const queues = f.queues;
  const qt = $("queues");
  if (queues) {
    const rows = ["email", "sms"].filter((c) => queues[c]).map((c) => h("tr", { "data-queue": c },
      h("th", { scope: "row", text: t(`funnel.${c}`) }),
      h("td", { class: "num", text: count(queues[c].visible) }),
      h("td", { class: "num", text: count(queues[c].in_flight) }),
      h("td", { class: "num", text: count(queues[c].delayed) })));
    qt.replaceChildren(
      h("thead", {}, h("tr", {}, ...[t("funnel.queue"), t("funnel.visible"), t("funnel.inFlight"), t("funnel.delayed")].map((x) => h("th", { scope: "col", text: x })))),
      h("tbody", {}, ...rows));
    const age = queues.oldest_queued_age_seconds;
    $("queue-age").textContent = queues.oldest_queued_at
      ? `${t("funnel.oldest")}: ${time(queues.oldest_queued_at)} (${t("funnel.age", { age: duration(age) })})`
      : `${t("funnel.oldest")}: ${t("none")}`;
  } else {
    qt.replaceChildren();
    $("queue-age").textContent = t("funnel.noQueues");
  }

  renderDeadLetters($("dead-letters"), state.deadLetters);
}

/// The dead-letter queues into `dl` (a `<ul>`), each with its count and its redrive: stable
/// rows, so the redrive buttons keep their focus across refreshes. On the Funnel and the
/// Failures pages.
function renderDeadLetters(dl, deadLetters) {
  const counts = deadLetters || {};
  for (const name of DEAD_LETTER_QUEUES) {
    let li = dl.querySelector(`li[data-queue="${name}"]`);
    if (!li) {
      li = h("li", { "data-queue": name, class: "dlq" },
        h("span", { class: "dlq-name", text: name }),
        h("span", { class: "dlq-count num" }),
        actionButton("redrive", { queue: name }));
      dl.append(li);
    }
    const n = counts[name];
    li.dataset.count = n === undefined || n === null ? "" : String(n);
    li.querySelector(".dlq-count").textContent = `${t("funnel.waiting")}: ${count(n)}`;
    li.classList.toggle("has-waiting", n > 0);
    const b = li.querySelector("button[data-action]");
    b.querySelector(".label").textContent = t("action.redriveQueue", { queue: name });
    applyRole(b);
  }
}

// ---------------------------------------------------------------------------------------
// Customer

/// A customer id (`C0000123`) or a bill id (`2026-11#00001#C0000123`) → {cycle?, customer}.
function parseQuery(q) {
  const v = q.trim();
  const bill = /^(\d{4}-(?:0[1-9]|1[0-2]))#(\d{1,10})#([A-Za-z][A-Za-z0-9_-]{0,63})$/.exec(v);
  if (bill) return { cycle: bill[1], customer: bill[3] };
  if (/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(v)) return { cycle: null, customer: v };
  return null;
}

async function loadCustomer(seq) {
  if (state.customerQueued) {
    const q = state.customerQueued;
    state.customerQueued = null;
    $("customer-search").value = q;
    return searchCustomer(q, { seq });
  }
  if (state.customer && state.customer.cycle === state.cycle) renderCustomer();
  else {
    state.customer = null;
    renderCustomer();
  }
  markReady("customer", seq);
}

async function searchCustomer(query, { quiet = false, seq } = {}) {
  const parsed = parseQuery(query);
  if (!parsed) {
    showError(localError("invalid-query", "customer.badQuery"));
    $("customer-search").setAttribute("aria-invalid", "true");
    $("customer-search").focus();
    return;
  }
  $("customer-search").removeAttribute("aria-invalid");
  if (parsed.cycle && parsed.cycle !== state.cycle) selectCycle(parsed.cycle);
  if (!state.cycle) {
    showError(localError("no-cycle", "customer.noCycle"));
    return;
  }
  const mySeq = seq ?? ++state.loadSeq;
  delete document.body.dataset.ready;
  if (!quiet) clearError();
  const cycle = state.cycle;
  const customer = parsed.customer;
  $("customer-result").setAttribute("aria-busy", "true");
  try {
    const [delivery, invoice] = await Promise.all([
      api(`/api/cycles/${enc(cycle)}/deliveries/${enc(customer)}`),
      api("/console/invoice", { method: "POST", body: { cycle, customer } }).then((v) => ({ ok: v }), (e) => ({ err: e })),
    ]);
    await state.rolesReady;
    if (mySeq !== state.loadSeq) return;
    state.customer = { query, cycle, customer, delivery, invoice: invoice.ok || null, invoiceError: invoice.err || null };
    renderCustomer();
    markReady("customer", mySeq);
  } catch (err) {
    if (mySeq !== state.loadSeq) return;
    state.customer = null;
    renderCustomer();
    showError(err);
  } finally {
    $("customer-result").removeAttribute("aria-busy");
  }
}

/// The timeline the API gives, or one made from the delivery's own times (older API).
function timelineOf(d) {
  if (Array.isArray(d.timeline)) return d.timeline;
  const steps = [];
  const add = (at, step, channel, detail) => at && steps.push({ at, step, channel: channel || null, detail: detail || null });
  add(d.created_at, "rendered");
  add(d.queued_at, "queued", d.channel);
  add(d.sent_at, "sent", d.channel);
  add(d.confirmed_at, "confirmed", d.channel);
  for (const f of d.failures || []) add(f.last_at, "failure", f.channel, [f.stage, f.code, f.reason].filter(Boolean).join(" · "));
  for (const c of d.commands || []) add(c.at, "command", null, [c.command, c.why].filter(Boolean).join(": "));
  return steps.sort((a, b) => String(a.at).localeCompare(String(b.at)));
}

function renderCustomer() {
  const c = state.customer;
  const result = $("customer-result");
  $("customer-prompt").hidden = Boolean(c);
  if (!c) {
    result.hidden = true;
    return;
  }
  result.hidden = false;
  const d = c.delivery;
  const st = $("delivery-state");
  st.textContent = d.state || "—";
  st.dataset.state = d.state || "";
  $("delivery-state-label").textContent = d.state ? tOr(`state.${d.state}`, "") : "";
  $("delivery-id").textContent = d.delivery_id || "";

  fillDl($("delivery-facts"), [
    [t("customer.channel"), d.channel],
    [t("customer.preferred"), d.preferred_channel],
    [t("customer.sendDate"), d.send_date],
    [t("customer.availableAt"), d.available_at ? timeNode(d.available_at) : null],
    [t("customer.dnd"), (d.dnd_slots || []).join(", ") || null],
    [t("customer.attempts"), d.attempts ? `${count(d.attempts.email)} / ${count(d.attempts.sms)}` : null],
    [t("customer.round"), d.send_round === undefined ? null : count(d.send_round)],
    [t("customer.total"), d.total === undefined ? null : won(d.total)],
    [t("customer.lastError"), d.last_error],
    [t("customer.heldReason"), d.held_reason],
    [t("customer.parkedReason"), d.parked_reason],
    [t("customer.template"), d.template_version],
    [t("customer.operatorAction"), d.operator_action ? h("strong", { text: d.operator_action }) : null],
  ]);

  const actions = $("customer-actions");
  const verbs = d.state === "UNCONFIRMED" ? [...DELIVERY_ACTIONS, "confirm"] : DELIVERY_ACTIONS;
  actions.replaceChildren(...verbs.map((v) => actionButton(v, { cycle: c.cycle, customer: c.customer })));

  const steps = timelineOf(d);
  $("timeline").replaceChildren(...steps.map((s) => h("li", { "data-step": s.step, class: `step step-${s.step}` },
    timeNode(s.at),
    h("span", { class: "step-name", text: tOr(`step.${s.step}`, s.step) }),
    s.channel ? h("span", { class: "chip", text: s.channel }) : null,
    s.detail ? h("span", { class: "detail", text: s.detail }) : null)));

  const contact = d.contact || {};
  if (contact.error) fillDl($("contact"), [[t("customer.contact"), contact.error]]);
  else {
    fillDl($("contact"), [
      [t("customer.name"), contact.name],
      [t("customer.email"), contact.email],
      [t("customer.phone"), contact.phone],
    ]);
  }

  // The invoice: a fresh frame each time, so the history gets no entry per customer.
  const frame = h("iframe", { id: "invoice-preview", title: t("customer.invoiceTitle"), sandbox: "", loading: "eager", referrerpolicy: "no-referrer" });
  const note = $("invoice-note");
  if (c.invoice && c.invoice.url) {
    frame.src = c.invoice.url;
    note.textContent = "";
  } else {
    const err = c.invoiceError;
    note.textContent = t("customer.noInvoice", { why: err ? `${err.message || err.code} (${err.status})` : t("none") });
  }
  $("invoice-preview").replaceWith(frame);

  const cmds = Array.isArray(d.commands) ? d.commands : [];
  const table = $("commands");
  if (cmds.length === 0) {
    table.replaceChildren(h("caption", { text: t("customer.noCommands") }));
  } else {
    table.replaceChildren(
      h("caption", { class: "sr-only", text: t("customer.commands") }),
      h("thead", {}, h("tr", {}, ...[t("action.resultWhen"), t("action.resultCommand"), t("action.resultWho"), t("action.resultWhy"), t("action.resultOutcome"), t("action.commandId")].map((x) => h("th", { scope: "col", text: x })))),
      h("tbody", {}, ...cmds.map((r) => h("tr", { "data-command-id": r.command_id },
        h("td", {}, timeNode(r.at)), h("td", { text: r.command }), h("td", { class: "who", text: r.who }),
        h("td", { text: r.why }), h("td", { text: outcomeText(r.result) }), h("td", {}, h("code", { text: r.command_id }))))));
  }
}

// ---------------------------------------------------------------------------------------
// Failures

function subjectCustomer(r) {
  if (r.customer_id) return r.customer_id;
  const m = /^\d{4}-\d{2}#\d+#([A-Za-z][A-Za-z0-9_-]*)/.exec(r.subject || "");
  return m ? m[1] : null;
}

function resetFailures() {
  state.failures.data = null;
  state.failures.tokens = [null];
  state.failures.index = 0;
}

async function loadFailures(seq) {
  if (!state.cycle) {
    noCycle("failures-note");
    return markReady("failures", seq);
  }
  const f = state.failures;
  const params = new URLSearchParams({ limit: String(FAILURES_PAGE) });
  const code = $("failure-code").value;
  const channel = $("failure-channel").value;
  if (code) params.set("code", code);
  if (channel) params.set("channel", channel);
  const token = f.tokens[f.index];
  if (token) params.set("next", token);
  const [data, queues] = await Promise.all([
    api(`/api/cycles/${enc(state.cycle)}/failures?${params}`),
    api("/api/queues").catch(() => null),
  ]);
  await state.rolesReady;
  if (seq !== state.loadSeq) return;
  f.data = data;
  f.deadLetters = queues
    ? Object.fromEntries((queues.queues || []).map((x) => [x.queue, x.waiting]))
    : null;
  f.tokens[f.index + 1] = data.next || null;
  for (const r of data.records || []) if (r.code) f.codes.add(r.code);
  renderFailures();
  markReady("failures", seq);
}

function renderCodeOptions() {
  const select = $("failure-code");
  const chosen = select.value;
  const codes = [...state.failures.codes].sort();
  const have = [...select.options].map((o) => o.value).slice(1);
  if (have.join("|") !== codes.join("|")) {
    select.replaceChildren(h("option", { value: "", text: t("all") }), ...codes.map((c) => h("option", { value: c, text: c })));
    select.value = chosen;
  } else {
    select.options[0].textContent = t("all");
  }
}

function renderFailures() {
  renderCodeOptions();
  const f = state.failures;
  renderDeadLetters($("failures-dead-letters"), f.deadLetters);
  const data = f.data;
  const table = $("failures-table");
  const cols = [t("failures.customer"), t("failures.stage"), t("failures.code"), t("failures.channel"), t("failures.reason"), t("failures.attempts"), t("failures.occurrences"), t("failures.last"), t("failures.actions")];
  const records = (data && data.records) || [];
  const rows = records.map((r) => {
    const customer = subjectCustomer(r);
    const open = customer ? h("button", { type: "button", class: "link open-customer", "aria-label": t("failures.openLabel", { customer }) }, customer) : null;
    if (open) open.addEventListener("click", () => openCustomer(customer));
    const actions = customer
      ? h("div", { class: "actions" }, ...DELIVERY_ACTIONS.map((v) => actionButton(v, { cycle: state.cycle, customer })))
      : null;
    return h("tr", { "data-customer": customer, "data-code": r.code, "data-stage": r.stage },
      h("th", { scope: "row" }, open || h("span", { class: "subject", text: r.subject })),
      h("td", { text: r.stage }),
      h("td", {}, h("code", { text: r.code })),
      h("td", { text: r.channel || "—" }),
      h("td", { class: "reason", text: r.reason }),
      h("td", { class: "num", text: count(r.attempts) }),
      h("td", { class: "num", text: count(r.occurrences) }),
      h("td", {}, timeNode(r.last_at)),
      h("td", {}, actions));
  });
  table.replaceChildren(
    h("caption", { class: "sr-only", text: t("failures.caption") }),
    h("thead", {}, h("tr", {}, ...cols.map((x) => h("th", { scope: "col", text: x })))),
    h("tbody", {}, ...rows));
  const note = $("failures-note");
  const unreadable = (data && data.unreadable) || [];
  note.replaceChildren(...[
    records.length === 0 ? h("p", { class: "note", text: t("failures.none") }) : null,
    unreadable.length ? h("p", { class: "warn", text: t("failures.unreadable", { n: count(unreadable.length) }) }) : null,
  ].filter(Boolean));
  $("failures-page").textContent = t("failures.page", { n: f.index + 1 });
  $("failures-prev").disabled = f.index === 0;
  $("failures-next").disabled = !(data && data.next);
}

function openCustomer(customer) {
  state.customerQueued = customer;
  if (location.hash === "#customer") show("customer");
  else location.hash = "#customer";
}

// ---------------------------------------------------------------------------------------
// Settings

async function loadSettings(seq) {
  const [settings, templates] = await Promise.all([api("/api/settings"), api("/api/templates")]);
  if (seq !== state.loadSeq) return;
  state.settings = { settings, templates };
  if (!state.templateVersion || !(templates.versions || []).some((v) => v.version === state.templateVersion)) {
    state.templateVersion = templates.active;
  }
  renderSettings();
  markReady("settings", seq);
}

function renderSettings() {
  const s = state.settings;
  if (!s) return;
  const policy = (s.settings.settings || []).find((x) => x.name === "channel-policy") || {};
  fillDl($("channel-policy"), [
    [t("settings.value"), h("span", {}, h("strong", { text: policy.value }), ` (${tOr(`policy.${policy.value}`, "")})`), { "data-value": policy.value }],
    [t("settings.source"), tOr(`settings.source.${policy.source}`, policy.source)],
    [t("settings.revision"), policy.revision === undefined ? null : count(policy.revision)],
    [t("settings.updated"), policy.updated_at ? h("span", {}, timeNode(policy.updated_at), policy.updated_by ? ` · ${policy.updated_by}` : "") : null],
    [t("settings.readBy"), policy.read_by],
    [t("settings.takesEffect"), policy.takes_effect],
  ]);
  $("channel-policy").dataset.value = policy.value || "";

  const tpl = s.templates;
  const list = $("templates");
  list.replaceChildren(...(tpl.versions || []).map((v) => {
    const active = v.version === tpl.active;
    const selected = v.version === state.templateVersion;
    const button = h("button", { type: "button", class: "link", "aria-pressed": selected ? "true" : "false" }, `${t("settings.preview")} ${v.version}`);
    button.addEventListener("click", () => {
      state.templateVersion = v.version;
      renderSettings();
      list.querySelector(`li[data-version="${CSS.escape(v.version)}"] button`)?.focus();
    });
    return h("li", { "data-version": v.version, "data-active": active ? "true" : "false", class: selected ? "selected" : "" },
      h("strong", { text: v.version }),
      active ? h("span", { class: "badge", text: t("settings.active") }) : null,
      v.version === tpl.default ? h("span", { class: "badge muted", text: t("settings.default") }) : null,
      v.meta && v.meta.brand ? h("span", { class: "tpl-brand", text: v.meta.brand }) : null,
      button);
  }));

  const sample = $("template-sample");
  const samples = tpl.samples || ["family"];
  if ([...sample.options].map((o) => o.value).join("|") !== samples.join("|")) {
    sample.replaceChildren(...samples.map((k) => h("option", { value: k, text: k })));
  }
  if (!samples.includes(state.templateSample)) state.templateSample = samples[0];
  sample.value = state.templateSample;
  showTemplatePreview();
}

function showTemplatePreview() {
  const v = state.templateVersion;
  if (!v) return;
  const q = new URLSearchParams({ version: v, sample: state.templateSample });
  const src = `/console/template-preview?${q}`;
  const old = $("template-preview");
  if (old.dataset.src !== src) {
    const frame = h("iframe", { id: "template-preview", title: t("settings.previewTitle", { version: v }), sandbox: "", "data-src": src, "data-version": v, src });
    old.replaceWith(frame);
    const sms = $("template-sms");
    sms.textContent = t("loading");
    q.set("part", "sms");
    fetch(`/console/template-preview?${q}`, { credentials: "same-origin", cache: "no-store" })
      .then((r) => (r.ok ? r.text() : Promise.reject(new ApiError(r.status, `http-${r.status}`, r.statusText))))
      .then((text) => {
        if ($("template-preview").dataset.src === src) sms.textContent = text;
      })
      .catch((e) => {
        sms.textContent = `${t("error.other", { status: e.status ?? 0 })}`;
      });
  } else {
    old.title = t("settings.previewTitle", { version: v });
  }
}

const LOADERS = { month: loadMonth, funnel: loadFunnel, customer: loadCustomer, failures: loadFailures, settings: loadSettings };

// ---------------------------------------------------------------------------------------
// Cycle, language, start

function renderCycles() {
  const select = $("cycle-select");
  const list = state.cycles.length ? state.cycles : state.cycle ? [{ cycle: state.cycle }] : [];
  if (!list.some((c) => c.cycle === state.cycle) && state.cycle) list.unshift({ cycle: state.cycle });
  select.replaceChildren(...list.map((c) => h("option", { value: c.cycle },
    c.status ? `${c.cycle} · ${tOr(`month.status.${c.status}`, c.status)}` : c.cycle)));
  if (list.length === 0) select.append(h("option", { value: "", text: t("cycle.none") }));
  select.value = state.cycle || "";
}

function selectCycle(cycle) {
  if (cycle === state.cycle) return;
  state.cycle = cycle;
  state.funnel = null;
  resetFailures();
  renderCycles();
}

function renderSession() {
  const s = state.session;
  const box = $("session-info");
  if (!s) return box.replaceChildren();
  box.replaceChildren(...[
    h("span", {}, `${t("session.stack")}: `, h("strong", { text: s.stack || t("session.local") })),
    s.region ? h("span", { text: s.region }) : null,
    s.version ? h("span", { text: `${t("session.version")} ${s.version}` }) : null,
  ].filter(Boolean));
}

function renderAll() {
  translateStatic();
  const lang = $("lang");
  lang.textContent = t("lang.switch");
  lang.setAttribute("aria-label", t("lang.switchLabel"));
  lang.lang = language() === "ko" ? "en" : "ko";
  renderRole();
  renderCycles();
  renderSession();
  if (state.lastError) showError(state.lastError.err, state.lastError.opts);
  renderAudit();
  if (state.page === "month" && state.month) renderMonth();
  if (state.page === "funnel" && state.funnel) renderFunnel();
  if (state.page === "customer") renderCustomer();
  if (state.page === "failures" && state.failures.data) renderFailures();
  if (state.page === "settings" && state.settings) renderSettings();
}

/// The month before this one in Korea time: the cycle to look at when the API lists none.
function lastMonthKst() {
  const d = new Date(Date.now() + 9 * 3600 * 1000);
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() - 1);
  return d.toISOString().slice(0, 7);
}

function wire() {
  $("lang").addEventListener("click", () => {
    setLanguage(language() === "ko" ? "en" : "ko");
    renderAll();
  });
  $("cycle-select").addEventListener("change", (e) => {
    selectCycle(e.target.value);
    state.customer = null;
    if (state.page) show(state.page);
  });
  window.addEventListener("hashchange", () => {
    const page = pageFromHash();
    if (page) show(page);
  });
  document.addEventListener("visibilitychange", () => {
    if (state.page !== "funnel") return;
    if (document.hidden) stopFunnel();
    else refreshFunnel(true);
  });
  $("skip-link").addEventListener("click", (e) => {
    e.preventDefault();
    $("main").focus();
  });
  $("customer-form").addEventListener("submit", (e) => {
    e.preventDefault();
    searchCustomer($("customer-search").value);
  });
  $("failure-code").addEventListener("change", () => {
    resetFailures();
    show("failures");
  });
  $("failure-channel").addEventListener("change", () => {
    resetFailures();
    show("failures");
  });
  $("failure-filters").addEventListener("submit", (e) => e.preventDefault());
  $("failures-next").addEventListener("click", () => {
    if (!state.failures.tokens[state.failures.index + 1]) return;
    state.failures.index++;
    show("failures").then(() => $("failures-table").focus());
  });
  $("failures-prev").addEventListener("click", () => {
    if (state.failures.index === 0) return;
    state.failures.index--;
    show("failures").then(() => $("failures-table").focus());
  });
  $("template-sample").addEventListener("change", (e) => {
    state.templateSample = e.target.value;
    showTemplatePreview();
  });
  $("action-form").addEventListener("submit", submitAction);
  $("action-cancel").addEventListener("click", () => $("action-dialog").close());
  $("action-dialog").addEventListener("close", () => {
    const d = state.dialog;
    state.dialog = null;
    if (d && d.opener && d.opener.isConnected) d.opener.focus();
  });
  $("action-reason").addEventListener("input", (e) => {
    if (e.target.value.trim()) e.target.removeAttribute("aria-invalid");
  });
}

async function boot() {
  setLanguage(preferredLanguage());
  wire();
  const page = pageFromHash() || "month";
  state.page = page;
  for (const p of PAGES) $(`page-${p}`).hidden = p !== page;
  renderAll();

  const sessionP = api("/console/session").catch(() => null);
  const rolesP = api("/api/roles").then((r) => r && r.you && r.you.role, (e) => {
    if (e.status === 401) throw e;
    return null;
  });
  const cyclesP = api("/api/cycles?limit=24").then((r) => (r && r.cycles) || [], () => []);
  state.rolesReady = rolesP.catch(() => null).then((role) => {
    state.role = role;
    renderRole();
  });

  const session = await sessionP;
  state.session = session;
  if (session && session.cycle) {
    state.cycle = session.cycle;
  } else {
    state.cycles = await cyclesP;
    state.cycle = state.cycles.length ? state.cycles[0].cycle : lastMonthKst();
  }
  renderSession();
  renderCycles();
  cyclesP.then((cycles) => {
    state.cycles = cycles;
    renderCycles();
  });
  rolesP.catch((e) => showError(e));
  await show(page);
}

boot();

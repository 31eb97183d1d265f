// The /ui page: calls the endpoint's JSON API on this origin only (see ui/__init__.py).
"use strict";

const state = { basket: [], item: null, paths: new Set(), key: "" };
const $ = (id) => document.getElementById(id);
try { state.key = window.localStorage.getItem("simrec-key") || ""; } catch (e) { /* none */ }

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || "HTTP " + status);
    this.status = status;
    this.field = body && body.field;
  }
}

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(name, value);
  }
  const headers = state.key ? { "X-Api-Key": state.key } : {};
  const url = path + (query.toString() ? "?" + query : "");
  const response = await fetch(url, { headers });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function showError(err) {
  const box = $("error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = err.message + (err.field ? " (" + err.field + ")" : "");
  if (err.status === 401 || (err.status === 403 && err.field === "key")) $("key-form").hidden = false;
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function skuButton(sku) {
  const b = el("button", sku, "sku");
  b.type = "button";
  b.dataset.sku = sku;
  b.addEventListener("click", () => openItem(sku));
  return b;
}

function attributes(item) {
  const parts = [];
  if (item.category !== undefined) parts.push("category: " + (item.category ?? "none"));
  if (item.in_stock !== undefined) parts.push(item.in_stock ? "in stock" : "out of stock");
  for (const [k, v] of Object.entries(item.attributes || {})) {
    parts.push(k + ": " + (typeof v === "object" ? JSON.stringify(v) : v));
  }
  return parts.join(", ");
}

// One table for every list of items: sku, score, because (when given), attributes.
function renderItems(table, items, opts) {
  table.replaceChildren();
  const withBecause = items.some((it) => Array.isArray(it.because));
  const head = el("tr");
  for (const name of ["sku", opts && opts.scoreName || "score",
                      ...(withBecause ? ["because"] : []), "attributes", ""]) {
    head.append(el("th", name));
  }
  table.append(head);
  for (const item of items) {
    const row = el("tr");
    row.dataset.sku = item.sku;
    const sku = el("td");
    sku.append(skuButton(item.sku));
    row.append(sku);
    const score = item.score ?? item.popularity;
    row.append(el("td", typeof score === "number" ? score.toFixed(4) : "", "num score"));
    if (withBecause) {
      const why = (item.because || []).map((b) => b.sku + " " + Math.round(b.share * 100) + "%");
      row.append(el("td", why.join(", "), "because"));
    }
    row.append(el("td", attributes(item), "attrs"));
    const add = el("td");
    const b = el("button", "+ basket", "add");
    b.type = "button";
    b.addEventListener("click", () => addToBasket(item.sku));
    add.append(b);
    row.append(add);
    table.append(row);
  }
  if (!items.length) {
    const row = el("tr");
    row.append(el("td", "nothing", "muted"));
    table.append(row);
  }
}

let searchTimer = null;
async function search() {
  const q = $("q").value.trim();
  try {
    const body = await api("/items", { q, n: 20 });
    showError(null);
    const list = $("results");
    list.replaceChildren();
    for (const item of body.items) {
      const li = el("li");
      li.append(skuButton(item.sku));
      const extra = attributes(item);
      li.append(el("span", " " + (extra ? extra + ", " : "") + "popularity " + item.popularity,
                   "muted"));
      list.append(li);
    }
    $("matches").textContent = body.matches + " match" + (body.matches === 1 ? "" : "es");
  } catch (err) { showError(err); }
}

async function openItem(sku) {
  state.item = sku;
  $("item-section").hidden = false;
  $("item-sku").textContent = sku;
  try {
    const body = await api("/similar", { sku, n: 10 });
    showError(null);
    renderItems($("neighbors"), body.items);
    const own = await api("/items", { q: sku, n: 1 });
    const me = own.items.find((it) => it.sku === sku);
    $("item-fields").textContent = me ? attributes(me) + ", popularity " + me.popularity : "";
  } catch (err) { showError(err); }
  if (state.paths.has("/bought-together")) {
    try {
      const body = await api("/bought-together", { sku, n: 10 });
      renderItems($("bought"), body.items);
    } catch (err) { showError(err); }
  }
}

function addToBasket(sku) {
  if (!state.basket.includes(sku)) state.basket.push(sku);
  refreshBasket();
}

async function refreshBasket() {
  const list = $("basket");
  list.replaceChildren();
  for (const sku of state.basket) {
    const li = el("li");
    li.dataset.sku = sku;
    li.append(skuButton(sku));
    const remove = el("button", "remove", "remove");
    remove.type = "button";
    remove.addEventListener("click", () => {
      state.basket = state.basket.filter((s) => s !== sku);
      refreshBasket();
    });
    li.append(remove);
    list.append(li);
  }
  $("basket-empty").hidden = state.basket.length > 0;
  if (!state.basket.length) { $("recs").replaceChildren(); $("fallback").hidden = true; return; }
  try {
    const body = await api("/recommendations", { basket: state.basket.join(","), n: 10 });
    showError(null);
    renderItems($("recs"), body.items);
    $("fallback").hidden = !body.fallback;
  } catch (err) { showError(err); }
}

function runRow(list, name, value) {
  if (value === undefined || value === null) return;
  list.append(el("dt", name));
  list.append(el("dd", typeof value === "object" ? JSON.stringify(value) : value));
}

async function loadRun() {
  try {
    const run = await api("/runs/latest");
    const list = $("run");
    list.replaceChildren();
    const model = run.model || {};
    const sims = run.similarities || {};
    const summary = run.summary || {};
    runRow(list, "model version", run.model_version);
    runRow(list, "tenant", run.tenant);
    runRow(list, "created", model.created_at);
    runRow(list, "run date", (model.params || {}).date);
    runRow(list, "items", (model.counts || {}).items);
    runRow(list, "engine", sims.engine);
    for (const [k, v] of Object.entries(sims.counts || {})) runRow(list, k, v);
    if (run.export) runRow(list, "rows", run.export.counts);
    if (summary.run_id) runRow(list, "summary of run", summary.run_id);
    runRow(list, "stage timings (s)", summary.stage_timings_s);
    const link = $("report-link");
    link.hidden = !run.report;
    if (run.report) link.href = run.report + (state.key ? "?key=" + encodeURIComponent(state.key) : "");
    $("model").textContent = "model: " + run.model_version;
  } catch (err) {
    $("model").textContent = "model: " + err.message;
    if (err.status === 401 || err.status === 403) showError(err);
  }
}

async function loadTrending() {
  if (!state.paths.has("/trending")) return;
  try {
    const body = await api("/trending", { n: 10 });
    $("trending-section").hidden = false;
    renderItems($("trending"), body.items);
  } catch (err) { showError(err); }
}

async function start() {
  $("q").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 150);
  });
  $("add-basket").addEventListener("click", () => { if (state.item) addToBasket(state.item); });
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("key").value.trim();
    try { window.localStorage.setItem("simrec-key", state.key); } catch (e) { /* none */ }
    $("key-form").hidden = true;
    showError(null);
    loadRun();
    search();
  });
  try {
    const doc = await api("/openapi.json");
    state.paths = new Set(Object.keys(doc.paths || {}));
  } catch (err) { showError(err); }
  $("bought-section").hidden = !state.paths.has("/bought-together");
  await Promise.all([loadRun(), search(), loadTrending()]);
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);

// Chronos's web UI: chat against /v1/chat/completions, the live expert monitor fed by
// /v1/chronos/events, the model report of /v1/chronos/model, offload benchmarks run through
// /v1/chronos/benchmarks, and pretraining runs and tuning studies run through
// /v1/chronos/training and /v1/chronos/tuning. Plain JavaScript, no build step.
"use strict";

const LANGUAGES = ["en", "zh-Hans", "zh-Hant", "ja"];
const PLOT_POINTS = 240;
const $ = (id) => document.getElementById(id);
// The string keys of the values the server and the page name, each written out so that the
// string tables' test finds every key this script uses.
const ROLE_LABELS = { user: "chat.role.user", assistant: "chat.role.assistant", error: "chat.role.error" };
const CONNECTION_LABELS = { connecting: "experts.connection.connecting", live: "experts.connection.live", lost: "experts.connection.lost" };
const STATE_LABELS = { hot: "state.hot", staging: "state.staging", loading: "state.loading", disk: "state.disk" };
const BENCH_STATE_LABELS = {
  running: "bench.state.running",
  finished: "bench.state.finished",
  failed: "bench.state.failed",
  cancelled: "bench.state.cancelled",
};
const TRAIN_STATE_LABELS = {
  running: "train.state.running",
  finished: "train.state.finished",
  failed: "train.state.failed",
  cancelled: "train.state.cancelled",
  interrupted: "train.state.interrupted",
  saved: "train.state.saved",
};
const TRAIN_PHASE_LABELS = { tokenizer: "train.phase.tokenizer", data: "train.phase.data", training: "train.phase.training" };
const TRIAL_STATE_LABELS = { complete: "tune.trialState.complete", pruned: "tune.trialState.pruned", failed: "tune.trialState.failed" };

const state = {
  language: "en",
  strings: {},
  modelID: null,
  modelReport: null,
  residency: null,
  chat: { history: [], controller: null },
  events: { controller: null, retry: null },
  // Decode steps seen, and those whose storage counters were measured (all, unless every expert
  // is resident), with their stall and bytes summed for the averages per token.
  monitor: { hitRates: [], stalls: [], bytes: [], tokens: 0, measured: 0, stallSum: 0, bytesSum: 0, total: null, usedTimer: null, drawPending: false },
  // The newest benchmark as GET /v1/chronos/benchmarks reports it, and the timer that polls it.
  benchmark: null,
  benchmarkTimer: null,
  // Runs and studies as GET /v1/chronos/training and /v1/chronos/tuning list them, the output
  // directory of the one each shows, and the timer that polls them while one runs.
  training: { runs: [], studies: [], run: null, study: null, workspace: null, error: null, timer: null },
};

// ---------------------------------------------------------------------------------------------
// Strings: one table per language in /ui/i18n/CODE.json; `{name}` in a string is replaced.

function t(key, values = {}) {
  const text = state.strings[key];
  if (text === undefined) return key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : `{${name}}`));
}

// Sets `element`'s text to the string `key` names, and keeps the key and values on it so that a
// change of language translates it again.
function translate(element, key, values = {}) {
  element.dataset.i18n = key;
  element.dataset.i18nValues = JSON.stringify(values);
  element.textContent = t(key, values);
}

function preferredLanguage() {
  const saved = localStorage.getItem("chronos.language");
  if (LANGUAGES.includes(saved)) return saved;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const lower = tag.toLowerCase();
    if (lower.startsWith("zh")) return /hant|tw|hk|mo/.test(lower) ? "zh-Hant" : "zh-Hans";
    if (lower.startsWith("ja")) return "ja";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

async function setLanguage(language) {
  const response = await fetch(`/ui/i18n/${language}.json`);
  if (!response.ok) throw new Error(`/ui/i18n/${language}.json: ${response.status}`);
  state.strings = await response.json();
  state.language = language;
  localStorage.setItem("chronos.language", language);
  document.documentElement.lang = language;
  $("language").value = language;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n, element.dataset.i18nValues ? JSON.parse(element.dataset.i18nValues) : {});
  }
  for (const element of document.querySelectorAll("[data-i18n-placeholder]")) element.placeholder = t(element.dataset.i18nPlaceholder);
  for (const element of document.querySelectorAll("[data-i18n-aria-label]")) element.setAttribute("aria-label", t(element.dataset.i18nAriaLabel));
  renderModel();
  renderResidency();
  renderMonitorStats();
  drawPlots();
  renderBenchmark();
  renderTraining();
  renderConnection();
  renderStatus();
}

// ---------------------------------------------------------------------------------------------
// Numbers, in the UI's language.

function formatNumber(value, digits = 2) {
  return new Intl.NumberFormat(state.language, { maximumFractionDigits: digits }).format(value);
}

function formatCount(value) {
  return new Intl.NumberFormat(state.language, { notation: "compact", maximumFractionDigits: 2 }).format(value);
}

function formatBytes(value) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${formatNumber(value, unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function formatPercent(fraction) {
  return new Intl.NumberFormat(state.language, { style: "percent", maximumFractionDigits: 1 }).format(fraction);
}

function formatMilliseconds(seconds) {
  return `${formatNumber(seconds * 1000, 2)} ms`;
}

// ---------------------------------------------------------------------------------------------
// Requests: the API key when the server asks for one, errors as OpenAI's error object says.

function headers(extra = {}) {
  const key = $("api-key").value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) {
    // Not JSON: the status says enough.
  }
  return `${response.status} ${response.statusText}`;
}

async function getJSON(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) {
    const error = new Error(await errorMessage(response));
    error.status = response.status;
    throw error;
  }
  return response.json();
}

// Yields the data of each server-sent event of `response` as it arrives; comments are skipped.
async function* serverSentEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart()).join("\n");
      if (data) yield data;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The server's state: loading, ready, unreachable, or waiting for a key.

let status = { key: "status.connecting", values: {}, error: false };

function setStatus(key, values = {}, error = false) {
  status = { key, values, error };
  renderStatus();
}

function renderStatus() {
  const element = $("status");
  element.textContent = status.key ? t(status.key, status.values) : "";
  element.dataset.kind = status.error ? "error" : "info";
}

async function connect() {
  for (;;) {
    try {
      const response = await fetch("/health");
      if (response.ok) break;
      setStatus("status.loading");
    } catch (_) {
      setStatus("status.offline", {}, true);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  try {
    const models = await getJSON("/v1/models");
    state.modelID = models.data[0].id;
  } catch (error) {
    if (error.status === 401) {
      $("key-bar").hidden = false;
      setStatus($("api-key").value ? "status.wrongKey" : "status.needsKey", {}, true);
      return;
    }
    setStatus("status.failed", { message: error.message }, true);
    return;
  }
  setStatus("status.ready", { model: state.modelID });
  loadModel();
  loadBenchmarks();
  loadTraining();
  try {
    state.residency = await getJSON("/v1/chronos/experts");
    renderResidency();
    renderMonitorStats();
  } catch (error) {
    setStatus("status.failed", { message: error.message }, true);
  }
  listenToEvents();
}

// ---------------------------------------------------------------------------------------------
// Tabs: arrow keys, Home and End move between them (roving tabindex), as WAI-ARIA's tabs do.

function selectTab(tab, focus) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (focus) tab.focus();
  if (tab.id === "tab-experts") drawPlots();
}

function setUpTabs() {
  const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab, false));
    tab.addEventListener("keydown", (event) => {
      const index = tabs.indexOf(tab);
      const next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      selectTab(tabs[(next + tabs.length) % tabs.length], true);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Chat: the conversation streamed from /v1/chat/completions; Stop aborts the request.

// Adds a message of `role` (user, assistant or error): its text, or the string `key` names.
function addMessage(role, text, key, values) {
  const item = document.createElement("li");
  item.className = "message";
  item.dataset.role = role;
  const who = document.createElement("span");
  who.className = "who";
  translate(who, ROLE_LABELS[role]);
  const body = document.createElement("span");
  body.className = "text";
  if (key) {
    translate(body, key, values);
  } else {
    body.textContent = text;
  }
  const meta = document.createElement("span");
  meta.className = "meta";
  item.append(who, body, meta);
  $("messages").append(item);
  $("chat-empty").hidden = true;
  item.scrollIntoView({ block: "end" });
  return { item, body, meta };
}

// The request's sampling parameters; an empty field is left to the server's default.
function parameters() {
  const fields = { temperature: "temperature", top_p: "top-p", top_k: "top-k", max_tokens: "max-tokens", seed: "seed" };
  const body = {};
  for (const [name, id] of Object.entries(fields)) {
    const text = $(id).value.trim();
    if (text !== "") body[name] = Number(text);
  }
  return body;
}

// Appends to a message's line of notes the string `key` names.
function addNote(meta, key, values = {}) {
  const note = document.createElement("span");
  translate(note, key, values);
  if (meta.childElementCount > 0) meta.append(" ");
  meta.append(note);
}

async function send(event) {
  event.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || state.chat.controller || !state.modelID) return;
  $("prompt").value = "";
  addMessage("user", text);
  state.chat.history.push({ role: "user", content: text });
  const system = $("system").value.trim();
  const messages = system ? [{ role: "system", content: system }, ...state.chat.history] : [...state.chat.history];
  const answer = addMessage("assistant", "");
  const controller = new AbortController();
  state.chat.controller = controller;
  $("send").disabled = true;
  $("stop").disabled = false;
  const started = performance.now();
  let usage = null;
  let finish = null;
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ model: state.modelID, messages, stream: true, stream_options: { include_usage: true }, ...parameters() }),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    for await (const data of serverSentEvents(response)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices || []) {
        if (choice.delta && choice.delta.content) {
          answer.body.textContent += choice.delta.content;
          answer.item.scrollIntoView({ block: "end" });
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    if (usage) {
      addNote(answer.meta, "chat.stats", {
        tokens: formatNumber(usage.completion_tokens, 0),
        rate: formatNumber(usage.completion_tokens / Math.max(seconds, 0.001), 1),
      });
    }
    if (finish === "length") addNote(answer.meta, "chat.finishLength");
  } catch (error) {
    if (controller.signal.aborted) {
      addNote(answer.meta, "chat.stopped");
    } else {
      addMessage("error", "", "chat.error", { message: error.message });
    }
  } finally {
    state.chat.history.push({ role: "assistant", content: answer.body.textContent });
    state.chat.controller = null;
    $("send").disabled = false;
    $("stop").disabled = true;
  }
}

function setUpChat() {
  $("chat-form").addEventListener("submit", send);
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    $("chat-form").requestSubmit();
  });
  $("stop").addEventListener("click", () => state.chat.controller && state.chat.controller.abort());
  $("clear").addEventListener("click", () => {
    if (state.chat.controller) state.chat.controller.abort();
    state.chat.history = [];
    $("messages").replaceChildren();
    $("chat-empty").hidden = false;
  });
}

// ---------------------------------------------------------------------------------------------
// The expert monitor: residency from /v1/chronos/experts, then every step from /v1/chronos/events.

function setConnection(value) {
  $("connection").dataset.state = value;
  renderConnection();
}

function renderConnection() {
  const element = $("connection");
  element.textContent = t(CONNECTION_LABELS[element.dataset.state]);
}

async function listenToEvents() {
  if (state.events.controller) state.events.controller.abort();
  clearTimeout(state.events.retry);
  const controller = new AbortController();
  state.events.controller = controller;
  setConnection("connecting");
  try {
    const response = await fetch("/v1/chronos/events", { headers: headers(), signal: controller.signal });
    if (!response.ok) throw new Error(await errorMessage(response));
    setConnection("live");
    for await (const data of serverSentEvents(response)) receiveStep(JSON.parse(data));
  } catch (_) {
    if (controller.signal.aborted) return;
  }
  if (controller.signal.aborted) return;
  setConnection("lost");
  state.events.retry = setTimeout(listenToEvents, 2000);
}

function receiveStep(step) {
  const monitor = state.monitor;
  state.residency = step.residency;
  if (step.total) monitor.total = step.total;
  if (step.phase === "decode") {
    monitor.tokens += 1;
    if (step.step) {
      const needed = step.step.needed;
      monitor.hitRates.push(needed > 0 ? (100 * step.step.hits) / needed : 100);
      monitor.stalls.push(step.step.stall_seconds * 1000);
      monitor.bytes.push(step.step.bytes_read);
      monitor.measured += 1;
      monitor.stallSum += step.step.stall_seconds;
      monitor.bytesSum += step.step.bytes_read;
      for (const series of [monitor.hitRates, monitor.stalls, monitor.bytes]) if (series.length > PLOT_POINTS) series.shift();
    }
  }
  renderResidency(step.used);
  // The marks of the experts a step used fade once no step has come for a while.
  clearTimeout(monitor.usedTimer);
  monitor.usedTimer = setTimeout(() => renderResidency([]), 1500);
  if (!monitor.drawPending) {
    monitor.drawPending = true;
    requestAnimationFrame(() => {
      monitor.drawPending = false;
      renderMonitorStats();
      drawPlots();
    });
  }
}

function renderMonitorStats() {
  const residency = state.residency;
  const monitor = state.monitor;
  if (!residency) return;
  $("stat-mode").textContent =
    residency.mode === "resident" ? t("experts.modeResident") : t("experts.modeValue", { mode: residency.mode, budget: formatBytes(residency.budget_bytes) });
  $("stat-hit-rate").textContent = monitor.total ? formatPercent(monitor.total.hit_rate) : "–";
  const measured = monitor.measured;
  $("stat-stall").textContent = measured ? formatMilliseconds(monitor.stallSum / measured) : "–";
  $("stat-bytes").textContent = measured ? formatBytes(monitor.bytesSum / measured) : "–";
  $("stat-tokens").textContent = formatNumber(monitor.tokens, 0);
  const resident = residency.resident_bytes;
  $("stat-resident").textContent = resident
    ? t("experts.residentValue", { hot: formatBytes(resident.hot), staging: formatBytes(resident.staging) })
    : residency.mode === "resident" ? formatBytes(residency.total_expert_bytes) : "–";
}

function renderResidency(used) {
  const residency = state.residency;
  const table = $("heatmap");
  const note = $("heatmap-note");
  if (!residency) return;
  if (!residency.layers) {
    note.hidden = false;
    note.textContent = t("experts.unknown");
    table.replaceChildren();
    return;
  }
  note.hidden = residency.mode !== "resident";
  note.textContent = t("experts.allResident");
  const width = Math.max(0, ...residency.layers.map((layer) => layer.experts.length));
  const signature = `${residency.layers.map((layer) => layer.layer).join(",")}/${width}/${state.language}`;
  if (table.dataset.signature !== signature) buildHeatmap(table, residency.layers, width, signature);
  const usedByLayer = new Map();
  if (used) for (const entry of used) usedByLayer.set(entry.layer, new Set(entry.experts));
  for (const layer of residency.layers) {
    const row = table.querySelector(`tr[data-layer="${layer.layer}"]`);
    const predicted = new Set(layer.predicted);
    layer.experts.forEach((expertState, expert) => {
      const cell = row.children[expert + 1];
      const isUsed = used === undefined ? cell.dataset.used === "true" : Boolean(usedByLayer.get(layer.layer)?.has(expert));
      const isPredicted = predicted.has(expert);
      if (cell.dataset.state === expertState && (cell.dataset.used === "true") === isUsed && (cell.dataset.predicted === "true") === isPredicted) return;
      cell.dataset.state = expertState;
      cell.dataset.used = String(isUsed);
      cell.dataset.predicted = String(isPredicted);
      const states = [t(STATE_LABELS[expertState] || expertState)];
      if (isPredicted) states.push(t("state.predicted"));
      if (isUsed) states.push(t("state.used"));
      cell.title = t("experts.cell", { layer: layer.layer, expert, state: states.join(", ") });
      cell.setAttribute("aria-label", cell.title);
    });
  }
}

function buildHeatmap(table, layers, width, signature) {
  const caption = table.querySelector("caption");
  table.replaceChildren(caption);
  const head = document.createElement("thead");
  const headRow = document.createElement("tr");
  const corner = document.createElement("th");
  corner.scope = "col";
  corner.textContent = t("experts.layerHeader");
  headRow.append(corner);
  for (let expert = 0; expert < width; expert++) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = String(expert);
    th.title = t("experts.expert", { n: expert });
    headRow.append(th);
  }
  head.append(headRow);
  const body = document.createElement("tbody");
  for (const layer of layers) {
    const row = document.createElement("tr");
    row.dataset.layer = layer.layer;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = String(layer.layer);
    th.title = t("experts.layer", { n: layer.layer });
    row.append(th);
    for (let expert = 0; expert < width; expert++) row.append(document.createElement("td"));
    body.append(row);
  }
  table.append(head, body);
  table.dataset.signature = signature;
}

// A running plot as inline SVG: the series as a line over the last PLOT_POINTS steps, with the
// latest value and the scale's top written beside it.
function drawPlot(figure, series, top, format) {
  let svg = figure.querySelector("svg");
  let readout = figure.querySelector(".readout");
  if (!svg) {
    svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", `0 0 ${PLOT_POINTS} 100`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    const axis = document.createElementNS(svg.namespaceURI, "line");
    axis.setAttribute("class", "axis");
    axis.setAttribute("x1", "0");
    axis.setAttribute("x2", String(PLOT_POINTS));
    axis.setAttribute("y1", "99");
    axis.setAttribute("y2", "99");
    const line = document.createElementNS(svg.namespaceURI, "polyline");
    line.setAttribute("class", "line");
    svg.append(axis, line);
    readout = document.createElement("div");
    readout.className = "readout";
    figure.append(svg, readout);
  }
  const scale = top > 0 ? top : 1;
  const offset = PLOT_POINTS - series.length;
  const points = series.map((value, index) => `${offset + index},${(98 - (96 * value) / scale).toFixed(2)}`);
  svg.querySelector("polyline").setAttribute("points", points.join(" "));
  readout.textContent = series.length
    ? t("plot.readout", { latest: format(series[series.length - 1]), top: format(top) })
    : t("plot.empty");
}

function drawPlots() {
  const monitor = state.monitor;
  drawPlot($("plot-hit-rate"), monitor.hitRates, 100, (value) => `${formatNumber(value, 1)} %`);
  drawPlot($("plot-stall"), monitor.stalls, Math.max(...monitor.stalls, 0), (value) => `${formatNumber(value, 2)} ms`);
  drawPlot($("plot-bytes"), monitor.bytes, Math.max(...monitor.bytes, 0), formatBytes);
}

// ---------------------------------------------------------------------------------------------
// The model: /v1/chronos/model, and the memory its weights need at the budget the slider picks.

async function loadModel() {
  try {
    state.modelReport = await getJSON("/v1/chronos/model");
    const served = state.modelReport.serving;
    if (served.total_expert_bytes > 0) {
      $("budget").value = String(Math.max(1, Math.round((100 * served.budget_bytes) / served.total_expert_bytes)));
    }
    renderModel();
    updateMemory();
  } catch (error) {
    setStatus("status.failed", { message: error.message }, true);
  }
}

function renderModel() {
  const report = state.modelReport;
  const facts = $("model-facts");
  if (!report) return;
  const rows = [
    ["model.name", report.model],
    ["model.architecture", report.architecture ? `${report.model_type} (${report.architecture})` : report.model_type],
    ["model.layers", formatNumber(report.layers, 0)],
    ["model.hidden", formatNumber(report.hidden_size, 0)],
    ["model.heads", t("model.headsValue", { query: report.attention_heads, keyValue: report.key_value_heads, dim: report.head_dim })],
    ["model.vocab", formatNumber(report.vocab_size, 0)],
    ["model.context", report.context ? t("model.contextValue", { n: formatNumber(report.context, 0) }) : "–"],
    [
      "model.experts",
      report.experts
        ? t(report.experts.shared_expert ? "model.expertsShared" : "model.expertsValue", {
            perLayer: report.experts.per_layer,
            layers: report.experts.moe_layers,
            topK: report.experts.per_token,
          })
        : t("model.dense"),
    ],
    ["model.parametersTotal", formatCount(report.parameters.total)],
    ["model.parametersActive", formatCount(report.parameters.active_per_token)],
    ["model.bytesDense", formatBytes(report.bytes.dense)],
    ["model.bytesExpert", formatBytes(report.bytes.expert)],
    ["model.bytesPerToken", report.bytes.per_token === null ? "–" : formatBytes(report.bytes.per_token)],
    ["model.serving", t("model.servingValue", { mode: report.serving.mode, budget: formatBytes(report.serving.budget_bytes) })],
  ];
  facts.replaceChildren(
    ...rows.map(([key, value]) => {
      const row = document.createElement("div");
      const term = document.createElement("dt");
      term.textContent = t(key);
      const detail = document.createElement("dd");
      detail.textContent = value;
      row.append(term, detail);
      return row;
    }),
  );
  renderMemory();
}

let memory = null;
let memoryTimer = null;

async function updateMemory() {
  const percent = Number($("budget").value);
  $("budget-value").textContent = formatPercent(percent / 100);
  try {
    memory = (await getJSON(`/v1/chronos/model?budget=${percent / 100}`)).memory;
    renderMemory();
  } catch (error) {
    setStatus("status.failed", { message: error.message }, true);
  }
}

function renderMemory() {
  $("budget-value").textContent = formatPercent(Number($("budget").value) / 100);
  if (!memory) return;
  $("memory-experts").textContent = formatBytes(memory.expert_bytes);
  $("memory-total").textContent = formatBytes(memory.total_bytes);
}

function setUpModel() {
  $("budget").addEventListener("input", () => {
    renderMemory();
    clearTimeout(memoryTimer);
    memoryTimer = setTimeout(updateMemory, 120);
  });
}

// ---------------------------------------------------------------------------------------------
// Benchmarks: an offload sweep of the served model (POST /v1/chronos/benchmarks), followed
// every second while it runs, drawn as tokens/s, stall and hit rate against the expert budget,
// one line per baseline, and listed in a table.

async function loadBenchmarks() {
  clearTimeout(state.benchmarkTimer);
  try {
    const list = (await getJSON("/v1/chronos/benchmarks")).benchmarks;
    state.benchmark = list.length ? list[list.length - 1] : null;
  } catch (error) {
    setStatus("status.failed", { message: error.message }, true);
    return;
  }
  renderBenchmark();
  if (state.benchmark && state.benchmark.state === "running") state.benchmarkTimer = setTimeout(loadBenchmarks, 1000);
}

async function runBenchmark(event) {
  event.preventDefault();
  const budgets = Array.from(document.querySelectorAll('#bench-form input[name="budget"]:checked')).map((box) => Number(box.value));
  const body = {
    budgets,
    tokens: Number($("bench-tokens").value),
    ssd_ms: Number($("bench-latency").value),
    ssd_mbps: Number($("bench-bandwidth").value),
  };
  $("bench-run").disabled = true;
  const response = await fetch("/v1/chronos/benchmarks", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    translate($("bench-status"), "bench.error", { message: await errorMessage(response) });
    $("bench-run").disabled = false;
    return;
  }
  loadBenchmarks();
}

async function cancelBenchmark() {
  if (!state.benchmark) return;
  $("bench-cancel").disabled = true;
  const response = await fetch(`/v1/chronos/benchmarks/${state.benchmark.id}`, { method: "DELETE", headers: headers() });
  if (!response.ok) translate($("bench-status"), "bench.error", { message: await errorMessage(response) });
}

function renderBenchmark() {
  const job = state.benchmark;
  const running = Boolean(job && job.state === "running");
  $("bench-run").disabled = running;
  $("bench-cancel").disabled = !running || !job;
  if (!job) {
    translate($("bench-status"), "bench.none");
  } else if (job.state === "failed") {
    translate($("bench-status"), "bench.failed", { message: job.error || "" });
  } else {
    translate($("bench-status"), "bench.status", {
      state: t(BENCH_STATE_LABELS[job.state]),
      done: job.results.length,
      total: job.settings.budgets.length,
    });
  }
  // One series per baseline and policy that ran, in the order they first appear.
  const series = [];
  const rows = [];
  for (const { budget, runs } of job ? job.results : []) {
    for (const run of runs) {
      const name = run.policy ? `${run.baseline}/${run.policy}` : run.baseline;
      rows.push({ budget, name, run });
      if (run.note) continue;
      let entry = series.find((item) => item.name === name);
      if (!entry) {
        entry = { name, speed: [], stall: [], hitRate: [] };
        series.push(entry);
      }
      entry.speed.push({ x: budget, y: run.tokens_per_s });
      entry.stall.push({ x: budget, y: run.stall_ms_per_token });
      entry.hitRate.push({ x: budget, y: run.hit_rate * 100 });
    }
  }
  drawSweep($("sweep-speed"), series.map((item) => ({ name: item.name, points: item.speed })), (value) => formatNumber(value, 1));
  drawSweep($("sweep-stall"), series.map((item) => ({ name: item.name, points: item.stall })), (value) => `${formatNumber(value, 2)} ms`);
  drawSweep($("sweep-hit-rate"), series.map((item) => ({ name: item.name, points: item.hitRate })), (value) => `${formatNumber(value, 0)} %`, 100);
  const body = $("bench-table").querySelector("tbody");
  body.replaceChildren(
    ...rows.map(({ budget, name, run }) => {
      const row = document.createElement("tr");
      const cells = run.note
        ? [formatPercent(budget), name, run.note, "", ""]
        : [
            formatPercent(budget),
            name,
            formatNumber(run.tokens_per_s, 1),
            formatNumber(run.stall_ms_per_token, 2),
            formatPercent(run.hit_rate),
          ];
      row.append(...textCells(cells));
      return row;
    }),
  );
}

/** A table cell holding each of `texts`. */
function textCells(texts) {
  return texts.map((text) => {
    const cell = document.createElement("td");
    cell.textContent = text;
    return cell;
  });
}

/** The x axis of a plot `width` wide: a line along its bottom edge at `height`. */
function plotAxis(namespace, width, height) {
  const axis = document.createElementNS(namespace, "line");
  axis.setAttribute("class", "axis");
  axis.setAttribute("x1", "0");
  axis.setAttribute("x2", String(width));
  axis.setAttribute("y1", String(height));
  axis.setAttribute("y2", String(height));
  return axis;
}

/** A tick label `text` at (x, y), anchored `anchor` (start, middle, end). */
function tickLabel(namespace, text, x, y, anchor) {
  const element = document.createElementNS(namespace, "text");
  element.setAttribute("class", "tick");
  element.setAttribute("x", String(x));
  element.setAttribute("y", String(y));
  element.setAttribute("text-anchor", anchor);
  element.textContent = text;
  return element;
}

// A line per series of points (x: budget as a fraction, y ≥ 0) over budgets 0–100 %, with the
// budgets measured marked below, the scale's top above, and a key naming each line.

function drawSweep(figure, series, format, fixedTop) {
  const width = 300;
  const height = 100;
  const namespace = "http://www.w3.org/2000/svg";
  let svg = figure.querySelector("svg");
  let key = figure.querySelector(".key");
  if (!svg) {
    svg = document.createElementNS(namespace, "svg");
    svg.setAttribute("viewBox", `-4 -12 ${width + 8} ${height + 26}`);
    svg.setAttribute("aria-hidden", "true");
    key = document.createElement("ul");
    key.className = "key";
    figure.append(svg, key);
  }
  const values = series.flatMap((item) => item.points.map((point) => point.y));
  const top = fixedTop || Math.max(...values, 0) * 1.1 || 1;
  const x = (budget) => budget * width;
  const y = (value) => height - (height * value) / top;
  const shapes = [plotAxis(namespace, width, height)];
  const label = (text, atX, atY, anchor) => shapes.push(tickLabel(namespace, text, atX, atY, anchor));
  const budgets = [...new Set(series.flatMap((item) => item.points.map((point) => point.x)))].sort((a, b) => a - b);
  for (const budget of budgets) label(formatPercent(budget), x(budget), height + 11, "middle");
  if (values.length) label(format(top), 0, -3, "start");
  series.forEach((item, index) => {
    const line = document.createElementNS(namespace, "polyline");
    line.setAttribute("class", "line");
    line.dataset.series = String(index % 8);
    line.setAttribute("points", item.points.map((point) => `${x(point.x).toFixed(1)},${y(point.y).toFixed(1)}`).join(" "));
    shapes.push(line);
    for (const point of item.points) {
      const dot = document.createElementNS(namespace, "circle");
      dot.setAttribute("class", "dot");
      dot.dataset.series = String(index % 8);
      dot.setAttribute("cx", x(point.x).toFixed(1));
      dot.setAttribute("cy", y(point.y).toFixed(1));
      dot.setAttribute("r", "2.5");
      shapes.push(dot);
    }
  });
  svg.replaceChildren(...shapes);
  key.replaceChildren(
    ...series.map((item, index) => {
      const entry = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.dataset.series = String(index % 8);
      entry.append(swatch, document.createTextNode(item.name));
      return entry;
    }),
  );
}

function setUpBenchmarks() {
  $("bench-form").addEventListener("submit", runBenchmark);
  $("bench-cancel").addEventListener("click", cancelBenchmark);
}

// ---------------------------------------------------------------------------------------------
// Training: pretraining runs (POST /v1/chronos/training) and tuning studies (POST
// /v1/chronos/tuning) in the server's workspace, followed every second while one runs: each
// run's loss curve, each study's trials, the best value so far and the running trial's curve.

async function loadTraining() {
  const training = state.training;
  clearTimeout(training.timer);
  try {
    const [runs, studies] = await Promise.all([getJSON("/v1/chronos/training"), getJSON("/v1/chronos/tuning")]);
    training.runs = runs.training;
    training.studies = studies.tuning;
    training.workspace = runs.workspace;
    training.error = null;
  } catch (error) {
    // 409: the server was started without a workspace.
    training.error = error.status === 409 ? { key: "train.noWorkspace", values: {} } : { key: "train.error", values: { message: error.message } };
    training.runs = [];
    training.studies = [];
  }
  const running = [...training.runs, ...training.studies].find((job) => job.state === "running");
  // Show the running job, else keep the one shown, else the newest.
  const pick = (jobs, shown) => {
    const live = jobs.find((job) => job.state === "running");
    if (live) return live.output;
    if (shown && jobs.some((job) => job.output === shown)) return shown;
    return jobs.length ? jobs[jobs.length - 1].output : null;
  };
  training.run = pick(training.runs, training.run);
  training.study = pick(training.studies, training.study);
  renderTraining();
  if (running) training.timer = setTimeout(loadTraining, 1000);
}

// The request's value of each field id: numbers as numbers; an empty field is left out.
function formValues(fields) {
  const body = {};
  for (const [name, [id, kind]] of Object.entries(fields)) {
    const element = $(id);
    if (kind === "checkbox") {
      body[name] = element.checked;
      continue;
    }
    const text = element.value.trim();
    if (text !== "") body[name] = kind === "number" ? Number(text) : text;
  }
  return body;
}

async function startJob(event, path, fields, statusId, buttonId, shown) {
  event.preventDefault();
  const body = formValues(fields);
  $(buttonId).disabled = true;
  const response = await fetch(path, { method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body) });
  if (!response.ok) {
    translate($(statusId), "train.error", { message: await errorMessage(response) });
    $(buttonId).disabled = false;
    return;
  }
  state.training[shown] = body.output;
  loadTraining();
}

function startRun(event) {
  startJob(
    event,
    "/v1/chronos/training",
    {
      data: ["train-data"],
      heldout: ["train-heldout"],
      tokenizer: ["train-tokenizer"],
      output: ["train-output"],
      shape: ["train-shape"],
      steps: ["train-steps", "number"],
      batch_size: ["train-batch", "number"],
      learning_rate: ["train-lr", "number"],
      seq_len: ["train-seq-len", "number"],
      vocab_size: ["train-vocab", "number"],
      seed: ["train-seed", "number"],
    },
    "train-status",
    "train-start",
    "run",
  );
}

function startStudy(event) {
  startJob(
    event,
    "/v1/chronos/tuning",
    {
      space: ["tune-space"],
      output: ["tune-output"],
      data: ["tune-data"],
      heldout: ["tune-heldout"],
      shape: ["tune-shape"],
      trials: ["tune-trials", "number"],
      steps: ["tune-steps", "number"],
      vocab_size: ["tune-vocab", "number"],
      prune: ["tune-prune", "checkbox"],
    },
    "tune-status",
    "tune-start",
    "study",
  );
}

async function stopJob(path, jobs, statusId, buttonId) {
  const job = jobs.find((item) => item.state === "running");
  if (!job) return;
  $(buttonId).disabled = true;
  const response = await fetch(`${path}/${job.id}`, { method: "DELETE", headers: headers() });
  if (!response.ok) translate($(statusId), "train.error", { message: await errorMessage(response) });
}

function renderTraining() {
  const training = state.training;
  const running = [...training.runs, ...training.studies].some((job) => job.state === "running");
  if (training.error) {
    translate($("train-workspace"), training.error.key, training.error.values);
  } else if (training.workspace) {
    translate($("train-workspace"), "train.workspace", { path: training.workspace });
  }
  $("train-start").disabled = running || Boolean(training.error);
  $("tune-start").disabled = running || Boolean(training.error);
  $("train-stop").disabled = !training.runs.some((job) => job.state === "running");
  $("tune-stop").disabled = !training.studies.some((job) => job.state === "running");
  renderRuns();
  renderStudies();
}

// The line under a job's form: its state and how far it has come, or why it failed.
function jobStatus(job, key, values) {
  if (job.state === "failed") return ["train.failed", { output: job.output, message: job.error || "" }];
  const phase = job.state === "running" && job.phase && job.phase !== "training" ? t(TRAIN_PHASE_LABELS[job.phase]) : t(TRAIN_STATE_LABELS[job.state]);
  return [key, { output: job.output, state: phase, ...values }];
}

// A table of jobs, each output a button that shows the job; `cells` gives the other columns.
function renderJobTable(table, jobs, shown, select, cells) {
  const body = table.querySelector("tbody");
  body.replaceChildren(
    ...jobs.map((job) => {
      const row = document.createElement("tr");
      const head = document.createElement("th");
      head.scope = "row";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = job.output;
      button.setAttribute("aria-pressed", String(job.output === shown));
      button.addEventListener("click", () => select(job.output));
      head.append(button);
      row.append(head);
      row.append(...textCells([t(TRAIN_STATE_LABELS[job.state]), ...cells(job)]));
      return row;
    }),
  );
}

function lastValue(curve, key) {
  for (let index = curve.length - 1; index >= 0; index--) if (curve[index][key] !== null && curve[index][key] !== undefined) return curve[index][key];
  return null;
}

function renderRuns() {
  const training = state.training;
  const job = training.runs.find((item) => item.output === training.run);
  if (job) {
    const [key, values] = jobStatus(job, "train.progress", { step: formatNumber(job.step, 0), steps: job.steps ? formatNumber(job.steps, 0) : "?" });
    translate($("train-status"), key, values);
  } else if (!training.error) {
    translate($("train-status"), "train.none");
  }
  renderJobTable($("train-jobs"), training.runs, training.run, (output) => {
    training.run = output;
    renderRuns();
  }, (item) => {
    const loss = lastValue(item.curve, "loss");
    const heldOut = lastValue(item.curve, "heldout_ce");
    return [
      item.steps ? `${formatNumber(item.step, 0)} / ${formatNumber(item.steps, 0)}` : formatNumber(item.step, 0),
      loss === null ? "–" : formatNumber(loss, 3),
      heldOut === null ? "–" : formatNumber(heldOut, 3),
    ];
  });
  drawCurve($("train-curve"), job ? job.curve : [], job ? job.steps : null);
}

function renderStudies() {
  const training = state.training;
  const job = training.studies.find((item) => item.output === training.study);
  const bestValue = (item) => {
    const best = item.trials.find((trial) => trial.number === item.best);
    return best ? best.values[0] : null;
  };
  if (job) {
    const done = formatNumber(job.trials.length, 0);
    const wanted = job.trials_wanted ? formatNumber(job.trials_wanted, 0) : "?";
    const [key, values] = jobStatus(job, "tune.progress", { done, wanted });
    translate($("tune-status"), key, values);
  } else if (!training.error) {
    translate($("tune-status"), "tune.none");
  }
  renderJobTable($("tune-jobs"), training.studies, training.study, (output) => {
    training.study = output;
    renderStudies();
  }, (item) => {
    const best = bestValue(item);
    return [
      item.trials_wanted ? `${formatNumber(item.trials.length, 0)} / ${formatNumber(item.trials_wanted, 0)}` : formatNumber(item.trials.length, 0),
      best === null ? "–" : formatNumber(best, 4),
    ];
  });
  // The best value after each trial, beside each complete trial's own value.
  const trials = job ? job.trials : [];
  const direction = job && job.objectives.length ? job.objectives[0].direction : "minimize";
  const better = (a, b) => (direction === "maximize" ? a > b : a < b);
  const values = [];
  const bests = [];
  let best = null;
  for (const trial of trials) {
    if (trial.state !== "complete" || !trial.values.length) continue;
    const value = trial.values[0];
    if (best === null || better(value, best)) best = value;
    values.push({ x: trial.number + 1, y: value });
    bests.push({ x: trial.number + 1, y: best });
  }
  drawLines(
    $("tune-best"),
    [
      { name: t("tune.seriesBest"), points: bests },
      { name: t("tune.seriesValue"), points: values, dotsOnly: true },
    ],
    Math.max(job && job.trials_wanted ? job.trials_wanted : 0, trials.length, 1),
    (value) => formatNumber(value, 3),
  );
  const running = job && job.state === "running" && job.trial !== null ? job : null;
  drawCurve($("tune-curve"), running ? running.curve : [], running ? running.steps : null);
  const table = $("tune-trials-table").querySelector("tbody");
  table.replaceChildren(
    ...trials.map((trial) => {
      const row = document.createElement("tr");
      if (job && trial.number === job.best) row.dataset.best = "true";
      const parameters = Object.keys(trial.parameters)
        .sort()
        .map((name) => {
          const value = trial.parameters[name];
          return `${name}=${typeof value === "number" ? formatNumber(value, 4) : value}`;
        })
        .join(" ");
      const cells = [
        `#${trial.number}`,
        t(TRIAL_STATE_LABELS[trial.state] || "tune.trialState.failed"),
        trial.values.length ? formatNumber(trial.values[0], 4) : "–",
        parameters,
      ];
      row.append(...textCells(cells));
      return row;
    }),
  );
}

// A run's loss curve: the training loss and cross-entropy of each step and the held-out
// cross-entropy of each evaluation, against the step.
function drawCurve(figure, curve, steps) {
  const series = [
    { name: t("train.seriesLoss"), key: "loss" },
    { name: t("train.seriesCE"), key: "ce" },
    { name: t("train.seriesHeldout"), key: "heldout_ce" },
  ].map(({ name, key }) => ({
    name,
    points: curve.filter((point) => point[key] !== null && point[key] !== undefined).map((point) => ({ x: point.step, y: point[key] })),
  }));
  const last = curve.length ? curve[curve.length - 1].step : 0;
  drawLines(figure, series, Math.max(steps || 0, last, 1), (value) => formatNumber(value, 3));
}

// Lines of points (x from 0 to xMax, y scaled between the lowest and highest value shown), the
// range of y written at the left, x's end below, and a key naming each line; a series with
// `dotsOnly` is drawn as dots.
function drawLines(figure, series, xMax, format) {
  const width = 300;
  const height = 100;
  const namespace = "http://www.w3.org/2000/svg";
  let svg = figure.querySelector("svg");
  let key = figure.querySelector(".key");
  let readout = figure.querySelector(".readout");
  if (!svg) {
    svg = document.createElementNS(namespace, "svg");
    svg.setAttribute("viewBox", `-4 -12 ${width + 8} ${height + 26}`);
    svg.setAttribute("aria-hidden", "true");
    key = document.createElement("ul");
    key.className = "key";
    readout = document.createElement("div");
    readout.className = "readout";
    figure.append(svg, key, readout);
  }
  const values = series.flatMap((item) => item.points.map((point) => point.y));
  const low = values.length ? Math.min(...values) : 0;
  const high = values.length ? Math.max(...values) : 1;
  const span = high - low || Math.abs(high) || 1;
  const x = (value) => (value / xMax) * width;
  const y = (value) => height - 4 - ((height - 8) * (value - low)) / span;
  const shapes = [plotAxis(namespace, width, height)];
  const label = (text, atX, atY, anchor) => shapes.push(tickLabel(namespace, text, atX, atY, anchor));
  if (values.length) {
    label(format(high), 0, -3, "start");
    label(format(low), 0, height + 11, "start");
    label(formatNumber(xMax, 0), width, height + 11, "end");
  }
  series.forEach((item, index) => {
    if (!item.dotsOnly) {
      const line = document.createElementNS(namespace, "polyline");
      line.setAttribute("class", "line");
      line.dataset.series = String(index % 8);
      line.setAttribute("points", item.points.map((point) => `${x(point.x).toFixed(1)},${y(point.y).toFixed(1)}`).join(" "));
      shapes.push(line);
    }
    if (item.dotsOnly || item.points.length < 40) {
      for (const point of item.points) {
        const dot = document.createElementNS(namespace, "circle");
        dot.setAttribute("class", "dot");
        dot.dataset.series = String(index % 8);
        dot.setAttribute("cx", x(point.x).toFixed(1));
        dot.setAttribute("cy", y(point.y).toFixed(1));
        dot.setAttribute("r", "2");
        shapes.push(dot);
      }
    }
  });
  svg.replaceChildren(...shapes);
  const shown = series.filter((item) => item.points.length);
  key.replaceChildren(
    ...shown.map((item) => {
      const entry = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.dataset.series = String(series.indexOf(item) % 8);
      const last = item.points[item.points.length - 1];
      entry.append(swatch, document.createTextNode(`${item.name}: ${format(last.y)}`));
      return entry;
    }),
  );
  readout.hidden = values.length > 0;
  if (!values.length) translate(readout, "train.curveEmpty");
}

function setUpTraining() {
  $("train-form").addEventListener("submit", startRun);
  $("tune-form").addEventListener("submit", startStudy);
  $("train-stop").addEventListener("click", () => stopJob("/v1/chronos/training", state.training.runs, "train-status", "train-stop"));
  $("tune-stop").addEventListener("click", () => stopJob("/v1/chronos/tuning", state.training.studies, "tune-status", "tune-stop"));
}

// ---------------------------------------------------------------------------------------------

async function start() {
  setUpTabs();
  setUpChat();
  setUpModel();
  setUpBenchmarks();
  setUpTraining();
  $("api-key").value = sessionStorage.getItem("chronos.apiKey") || "";
  const useKey = () => {
    sessionStorage.setItem("chronos.apiKey", $("api-key").value.trim());
    connect();
  };
  $("api-key").addEventListener("change", useKey);
  $("key-bar").addEventListener("submit", (event) => {
    event.preventDefault();
    useKey();
  });
  $("language").addEventListener("change", () => setLanguage($("language").value));
  await setLanguage(preferredLanguage());
  await connect();
}

start();

// Accord's web console: plain JavaScript over the same HTTP API every client uses. The API key
// lives in this tab's session storage only. Nothing from an instance (its log, tags, out, error)
// is ever parsed as HTML: every text goes in through textContent.
"use strict";

const KEY_STORAGE = "accord.apiKey";
const TERMINAL = new Set(["FINISHED", "FAILED", "CANCELLED", "TIMED_OUT"]);
const LIST_REFRESH_MS = 2000;

const $ = (id) => document.getElementById(id);
let pageController = null; // aborts the current page's streams and timers when leaving it

function apiKey() { return sessionStorage.getItem(KEY_STORAGE); }

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: apiKey() || "" }, options.headers || {});
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  if (resp.status === 401) {
    sessionStorage.removeItem(KEY_STORAGE);
    route();
    throw new HttpError(401, "the key was refused; sign in again");
  }
  if (!resp.ok) {
    let message = resp.statusText;
    try { message = (await resp.json()).message || message; } catch (_) { /* not JSON */ }
    throw new HttpError(resp.status, message);
  }
  return resp;
}

function notice(text) {
  const el = $("notice");
  el.textContent = text || "";
  el.hidden = !text;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toLocaleString(undefined, { hour12: false }) + "." + String(date.getMilliseconds()).padStart(3, "0");
}

function statusBadge(status) {
  return el("span", { class: "status status-" + status.toLowerCase().replace("_", "-") }, status);
}

function show(page) {
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== "page-" + page;
  $("nav").hidden = page === "sign-in";
}

// ---------------------------------------------------------------- routing

function route() {
  if (pageController) pageController.abort();
  pageController = new AbortController();
  const signal = pageController.signal;
  notice("");
  if (!apiKey()) { show("sign-in"); $("api-key").focus(); return; }
  const hash = location.hash || "#/";
  const instance = hash.match(/^#\/instance\/([0-9a-fA-F-]{36})$/);
  if (instance) { show("instance"); instancePage(instance[1], signal); return; }
  if (hash === "#/start") { show("start"); return; }
  show("list");
  listPage(signal);
}

// ---------------------------------------------------------------- sign in

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  // Checked against a route every key may use before it is kept.
  const resp = await fetch("/api/v2/process?limit=1", { headers: { Authorization: key } });
  if (resp.status === 401) { notice("That key was refused."); return; }
  sessionStorage.setItem(KEY_STORAGE, key);
  $("api-key").value = "";
  route();
}

// ---------------------------------------------------------------- list

function listQuery() {
  const params = new URLSearchParams({ limit: "100" });
  if ($("filter-status").value) params.set("status", $("filter-status").value);
  if ($("filter-tag").value.trim()) params.set("tag", $("filter-tag").value.trim());
  return params.toString();
}

async function listPage(signal) {
  const refresh = async () => {
    if (signal.aborted) return;
    if (document.visibilityState === "visible") {
      try {
        const items = await (await api("/api/v2/process?" + listQuery(), { signal })).json();
        renderList(items);
        $("list-updated").textContent = "updated " + new Date().toLocaleTimeString(undefined, { hour12: false });
      } catch (error) {
        if (error.name !== "AbortError") notice("Listing failed: " + error.message);
      }
    }
    if (!signal.aborted) setTimeout(refresh, LIST_REFRESH_MS);
  };
  refresh();
}

let lastListing = null;

function renderList(items) {
  // Unchanged answers leave the table as it is (no flicker, a selection survives).
  const listing = JSON.stringify(items);
  if (listing === lastListing && $("instance-rows").childElementCount === items.length) return;
  lastListing = listing;
  const rows = items.map((item) => el("tr", { "data-id": item.instanceId },
    el("td", {}, el("a", { href: "#/instance/" + item.instanceId, class: "mono" }, item.instanceId)),
    el("td", {}, statusBadge(item.status)),
    el("td", {}, when(item.createdAt)),
    el("td", {}, when(item.lastChangeDt)),
    el("td", {}, ...(item.tags || []).map((tag) => el("span", { class: "tag" }, tag)))));
  $("instance-rows").replaceChildren(...rows);
  $("list-empty").hidden = items.length > 0;
}

// ---------------------------------------------------------------- one instance

async function instancePage(id, signal) {
  $("instance-id").textContent = id;
  $("log").replaceChildren();
  $("timeline").replaceChildren();
  $("instance-out").textContent = "(once the instance ends)";
  $("failure").hidden = true;
  $("stop").hidden = true;
  $("stop").onclick = () => stop(id);
  // The follow stream pushes the status as it moves (`progress`) and at the end (`status`);
  // each move re-reads the history once. Nothing here asks on a timer.
  const refresh = async () => {
    try {
      const [status, history] = await Promise.all([
        (await api(`/api/v1/process/${id}`, { signal })).json(),
        (await api(`/api/v1/process/${id}/history`, { signal })).json(),
      ]);
      renderInstance(status, history);
    } catch (error) {
      if (error.name !== "AbortError") notice(error.status === 404 ? "No such instance." : "Status failed: " + error.message);
    }
  };
  let shown = null;
  followLog(id, signal, {
    line: appendLogLine,
    status: (status) => {
      if (status.status === shown) return;
      shown = status.status;
      refresh();
    },
  });
}

function renderInstance(status, history) {
  $("instance-status").replaceChildren(statusBadge(status.status));
  $("instance-created").textContent = when(status.createdAt);
  $("instance-changed").textContent = when(status.lastChangeDt);
  $("instance-tags").replaceChildren(...(status.tags || []).map((tag) => el("span", { class: "tag" }, tag)));
  $("stop").hidden = TERMINAL.has(status.status);
  if (TERMINAL.has(status.status)) $("instance-out").textContent = JSON.stringify(status.out || {}, null, 2);
  if (status.error) {
    $("failure").hidden = false;
    $("failure-message").textContent = status.error;
    $("failure-location").textContent = failureLocation() || "";
  }
  $("timeline").replaceChildren(...history.map((change) => el("li", { class: "step-" + change.status.toLowerCase().replace("_", "-") },
    statusBadge(change.status), " ", el("time", { datetime: change.changeDate }, when(change.changeDate)),
    el("div", { class: "muted" }, change.reason))));
}

// `file:line:column` of the failure: the server's own ERROR line in the log names it.
function failureLocation() {
  const lines = [...$("log").querySelectorAll(".line-error")].map((node) => node.textContent);
  for (const line of lines.reverse()) {
    const match = line.match(/\[ERROR\]\s+(\S+:\d+:\d+):/);
    if (match) return match[1];
  }
  return null;
}

function appendLogLine(text) {
  const log = $("log");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  const level = (text.match(/\[(\w+)\s*\]/) || [])[1] || "";
  log.append(el("div", { class: "line line-" + level.toLowerCase() }, text));
  if (atBottom) log.scrollTop = log.scrollHeight;
  if (level === "ERROR" && !$("failure").hidden) $("failure-location").textContent = failureLocation() || "";
}

// The log as Server-Sent Events over fetch (EventSource cannot send the Authorization header):
// each line as it is written and the status as it moves; a dropped stream resumes after the last
// line with Last-Event-ID.
async function followLog(id, signal, handlers) {
  let lastId = null;
  $("log-state").textContent = "(live)";
  while (!signal.aborted) {
    const headers = { Accept: "text/event-stream" };
    if (lastId) headers["Last-Event-ID"] = lastId;
    try {
      const resp = await api(`/api/v1/process/${id}/log?follow=true`, { headers, signal });
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let event = { name: "message", data: [], id: null };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, end).replace(/\r$/, "");
          buffer = buffer.slice(end + 1);
          if (line === "") {
            if (event.data.length) {
              if (event.name === "status") {
                $("log-state").textContent = "(ended)";
                handlers.status(JSON.parse(event.data.join("\n")));
                return;
              }
              if (event.name === "progress") {
                handlers.status(JSON.parse(event.data.join("\n")));
              } else {
                handlers.line(event.data.join("\n"));
                if (event.id) lastId = event.id;
              }
            }
            event = { name: "message", data: [], id: null };
          } else if (!line.startsWith(":")) {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            let data = colon < 0 ? "" : line.slice(colon + 1);
            if (data.startsWith(" ")) data = data.slice(1);
            if (field === "data") event.data.push(data);
            else if (field === "event") event.name = data;
            else if (field === "id") event.id = data;
          }
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error.status && error.status < 500) { notice("Log failed: " + error.message); return; }
    }
    $("log-state").textContent = "(reconnecting)";
    await new Promise((resolve) => setTimeout(resolve, 1000));
    $("log-state").textContent = "(live)";
  }
}

async function stop(id) {
  $("stop").disabled = true;
  try {
    await api(`/api/v1/process/${id}`, { method: "DELETE" });
  } catch (error) {
    notice("Stop failed: " + error.message);
  } finally {
    $("stop").disabled = false;
  }
}

// ---------------------------------------------------------------- start

async function start(event) {
  event.preventDefault();
  const file = $("start-archive").files[0];
  if (!file) { notice("Choose a ZIP archive."); return; }
  const form = new FormData();
  form.append("archive", new Blob([file], { type: "application/zip" }), file.name);
  const argumentsText = $("start-arguments").value.trim();
  if (argumentsText) {
    let parsed;
    try { parsed = JSON.parse(argumentsText); } catch (_) { notice("Arguments must be a JSON object."); return; }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) { notice("Arguments must be a JSON object."); return; }
    form.append("request", new Blob([JSON.stringify({ arguments: parsed })], { type: "application/json" }), "request.json");
  }
  if ($("start-entry").value.trim()) form.append("entryPoint", $("start-entry").value.trim());
  if ($("start-tags").value.trim()) form.append("tags", $("start-tags").value.trim());
  try {
    const body = await (await api("/api/v1/process", { method: "POST", body: form })).json();
    $("start-form").reset();
    location.hash = "#/instance/" + body.instanceId;
  } catch (error) {
    notice("The start was refused: " + error.message);
  }
}

// ---------------------------------------------------------------- wiring

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => { sessionStorage.removeItem(KEY_STORAGE); location.hash = "#/"; route(); });
  $("filters").addEventListener("change", () => route());
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); route(); });
  $("filter-tag").addEventListener("input", () => { clearTimeout(window.tagTimer); window.tagTimer = setTimeout(route, 300); });
  $("start-form").addEventListener("submit", start);
  window.addEventListener("hashchange", route);
  route();
});

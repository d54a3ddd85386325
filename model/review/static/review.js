// The review page: everything from S3 is set with textContent, never as markup.
"use strict";

const UNSURE = "unsure";
const state = {queue: null, current: null, shownAt: null, history: [], busy: false};
const $ = (id) => document.getElementById(id);

async function api(path, body) {
  const init = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) throw new Error(`${data.error}: ${data.message}`);
  return data;
}

function itemPath(item) { return `/api/items/${encodeURIComponent(item)}`; }

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function renderProgress() {
  const {total, answered, reviewer, bucket, waiting} = state.queue;
  $("reviewer").textContent = reviewer;
  $("bucket").textContent = bucket;
  $("progress").textContent = `${answered} reviewed of ${total} · ${waiting.length} waiting`;
  $("progress-bar").style.width = total ? `${(100 * answered) / total}%` : "0";
  $("undo").disabled = state.history.length === 0;
}

function renderProbabilities(view) {
  const table = $("probabilities");
  table.replaceChildren();
  const best = Math.max(...view.probabilities);
  view.labels.forEach((name, i) => {
    const p = view.probabilities[i];
    const row = table.insertRow();
    if (p === best) row.className = "top";
    row.insertCell().textContent = name;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.round(p * 200)}px`;
    row.insertCell().append(bar);
    row.insertCell().textContent = p.toFixed(4);
  });
}

function answerButton(label, key, text) {
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.label = label;
  button.textContent = `${key} · ${text}`;
  if (label === UNSURE) button.className = "unsure";
  button.addEventListener("click", () => answer(label));
  return button;
}

function renderItem(view) {
  $("photo").src = `${itemPath(view.item)}/image`;
  $("image-uri").textContent = view.image ?? "";
  $("reason").textContent = view.reason ?? "";
  $("recorded").textContent = view.recorded_at ? new Date(view.recorded_at).toLocaleString() : "";
  $("execution").textContent = view.execution_arn ?? "";
  $("item-name").textContent = view.item;
  const buttons = view.labels.map((name, i) => answerButton(name, String(i + 1), name));
  $("answers").replaceChildren(...buttons, answerButton(UNSURE, "0", "neither / unsure"));
  renderProbabilities(view);
}

async function refresh() {
  state.queue = await api("/api/queue");
  renderProgress();
  const next = state.queue.waiting[0];
  $("review").hidden = !next;
  $("empty").hidden = Boolean(next);
  state.current = next ? await api(itemPath(next.item)) : null;
  if (state.current) {
    renderItem(state.current);
    state.shownAt = new Date().toISOString();
  }
  document.body.dataset.state = next ? "ready" : "empty";
}

async function act(work) {
  if (state.busy) return;
  state.busy = true;
  document.body.dataset.state = "busy";
  document.querySelectorAll(".answers button").forEach((b) => { b.disabled = true; });
  try {
    await work();
  } catch (error) {
    say(error.message, true);
  } finally {
    state.busy = false;
    await refresh().catch((error) => say(error.message, true));
  }
}

function answer(label) {
  const view = state.current;
  if (!view) return;
  act(async () => {
    const given = await api(`${itemPath(view.item)}/answer`, {label, shown_at: state.shownAt});
    state.history.push({item: view.item, label, submissionTime: given.submissionTime});
    say(`${view.item}: ${label}`);
  });
}

function undo() {
  const last = state.history.at(-1);
  if (!last) { say("nothing to undo"); return; }
  act(async () => {
    await api(`${itemPath(last.item)}/undo`, {submissionTime: last.submissionTime});
    state.history.pop();
    say(`undone: ${last.item} (${last.label})`);
  });
}

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.metaKey || (event.ctrlKey && event.key !== "z")) return;
  if (event.key === "u" || (event.ctrlKey && event.key === "z")) { undo(); return; }
  if (!state.current || !/^[0-9]$/.test(event.key)) return;
  const index = Number(event.key);
  if (index === 0) answer(UNSURE);
  else if (index <= state.current.labels.length) answer(state.current.labels[index - 1]);
});

document.addEventListener("DOMContentLoaded", () => {
  $("undo").addEventListener("click", undo);
  refresh().catch((error) => { say(error.message, true); document.body.dataset.state = "error"; });
});

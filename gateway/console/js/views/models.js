// Models: each model's state, the swapper's lifecycle, load/unload (admin key).

import { callJson } from "../api.js";
import { $, el, say, showError } from "../ui.js";

function renderSwapper(status) {
  const list = $("swapper-status");
  list.replaceChildren();
  const rows = [
    ["state", status.state],
    ["loads asked", String(status.load_count)],
    ["last load", status.last_load_s == null ? "—" : `${status.last_load_s.toFixed(1)} s`],
    ["last error", status.last_error || "—"],
  ];
  for (const [term, value] of rows) list.append(el("dt", term), el("dd", value));
}

export async function refresh() {
  say("models-error", "");
  try {
    const result = await callJson("GET", "/v1/models");
    const body = $("models-table").querySelector("tbody");
    body.replaceChildren();
    for (const model of result.models) {
      const row = el("tr");
      row.append(el("td", model.name), el("td", model.state));
      body.append(row);
    }
    if (result.swapper) renderSwapper(result.swapper);
    say("models-label", result.label ? `Serving: ${result.label}` : "");
    say("models-status", `updated ${new Date().toLocaleTimeString()}`);
  } catch (exc) {
    showError("models-error", exc);
  }
}

async function swapperAction(action, button) {
  button.disabled = true;
  say("models-error", "");
  say("models-status", action === "load" ? "loading the swapper…" : "unloading the swapper…");
  try {
    renderSwapper(await callJson("POST", `/v1/models/swapper/${action}`));
    await refresh();
  } catch (exc) {
    showError("models-error", exc);
    say("models-status", "");
  } finally {
    button.disabled = false;
  }
}

export function init() {
  $("models-refresh").addEventListener("click", refresh);
  $("swapper-load").addEventListener("click", (e) => swapperAction("load", e.currentTarget));
  $("swapper-unload").addEventListener("click", (e) => swapperAction("unload", e.currentTarget));
}

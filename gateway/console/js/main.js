// The console's entry point: the API key form, hash navigation between views, wiring.

import { hasKey, setKey } from "./api.js";
import { $, say, wireCamera, wireDropZones } from "./ui.js";
import * as detect from "./views/detect.js";
import * as gallery from "./views/gallery.js";
import * as models from "./views/models.js";
import * as swap from "./views/swap.js";
import * as verify from "./views/verify.js";

const VIEWS = ["detect", "verify", "swap", "gallery", "models"];
// Views whose content comes from the API when they are opened.
const ON_OPEN = { gallery: () => gallery.refresh(), models: () => models.refresh() };

function keyState() {
  say("key-state", hasKey() ? "key set for this tab" : "no key: API calls will be refused");
}

function show() {
  const wanted = location.hash.replace("#", "");
  const name = VIEWS.includes(wanted) ? wanted : "detect";
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `facegate console: ${name}`;
  if (hasKey() && ON_OPEN[name]) ON_OPEN[name]();
}

function init() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("api-key");
    setKey(input.value);
    input.value = "";
    keyState();
    show();
  });
  $("key-forget").addEventListener("click", () => {
    setKey("");
    keyState();
  });
  for (const view of [detect, verify, swap, gallery, models]) view.init();
  wireDropZones();
  wireCamera();
  keyState();
  window.addEventListener("hashchange", () => {
    show();
    $("main").focus();
  });
  show();
  document.body.dataset.ready = "true";
}

init();

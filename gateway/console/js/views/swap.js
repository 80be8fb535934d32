// Swap: source photo(s) onto the target; result beside the original, with a download link.
// The swapper loads on demand: while a swap waits, the models endpoint says whether it is
// LOADING, and the view says so.

import { call, callJson, filesForm } from "../api.js";
import { decode, paint } from "../draw.js";
import { $, busy, say } from "../ui.js";

let resultUrl = null;

async function watchSwapper(stillWaiting) {
  while (stillWaiting()) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (!stillWaiting()) return;
    try {
      const models = await callJson("GET", "/v1/models");
      if (stillWaiting() && models.swapper && models.swapper.state === "LOADING") {
        say("swap-status", "the swapper is loading on demand (first swap after idle): waiting…");
      }
    } catch {
      return; // the swap call itself reports errors
    }
  }
}

export function init() {
  const form = $("swap-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, "swap-error", async () => {
      const sources = [...$("swap-source").files];
      const target = $("swap-target").files[0];
      if (!sources.length || !target) throw new Error("choose source photo(s) and a target first");
      const image = $("swap-result");
      const link = $("swap-download");
      image.hidden = true;
      link.hidden = true;
      say("swap-status", "swapping…");
      paint($("swap-original"), await decode(target));
      let waiting = true;
      watchSwapper(() => waiting);
      let response;
      try {
        response = await call("POST", "/v1/swap", {
          query: { target_face: $("swap-face").value, format: "png" },
          body: filesForm({ source: sources, target: [target] }),
        });
      } finally {
        waiting = false;
      }
      const blob = await response.blob();
      if (resultUrl) URL.revokeObjectURL(resultUrl);
      resultUrl = URL.createObjectURL(blob);
      image.src = resultUrl;
      image.hidden = false;
      link.href = resultUrl;
      link.hidden = false;
      const swapped = response.headers.get("X-Faces-Swapped");
      say("swap-status", `${swapped} face${swapped === "1" ? "" : "s"} swapped (${Math.round(blob.size / 1024)} KiB PNG).`);
    }, "swap-status");
  });
}

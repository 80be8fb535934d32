// Verify: two images side by side, each one's face highlighted, the similarity and verdict.

import { callJson, filesForm } from "../api.js";
import { decode, drawFace, formatTimings, paint } from "../draw.js";
import { $, busy, el } from "../ui.js";

export function init() {
  const form = $("verify-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, "verify-error", async () => {
      const a = $("verify-file-a").files[0];
      const b = $("verify-file-b").files[0];
      if (!a || !b) throw new Error("choose both images first");
      const out = $("verify-result");
      out.textContent = "comparing…";
      const [result, bitmapA, bitmapB] = await Promise.all([
        callJson("POST", "/v1/verify", { body: filesForm({ image_a: [a], image_b: [b] }) }),
        decode(a),
        decode(b),
      ]);
      for (const [canvas, bitmap, face] of [
        [$("verify-canvas-a"), bitmapA, result.face_a],
        [$("verify-canvas-b"), bitmapB, result.face_b],
      ]) {
        if (paint(canvas, bitmap)) drawFace(canvas, face, 0, `score ${face.score.toFixed(2)}`);
      }
      const verdict = result.match
        ? el("span", "same person", "match")
        : el("span", "different people", "nomatch");
      const similarity = el("span", result.similarity.toFixed(4));
      similarity.id = "verify-similarity";
      out.replaceChildren(
        "Similarity ",
        similarity,
        ` (match at ≥ ${result.threshold}): `,
        verdict,
        `. ${formatTimings(result.timings_ms)}`,
      );
    }, "verify-result");
  });
}

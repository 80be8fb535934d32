// Detect: boxes, landmarks and scores on the image; age/gender/liveness, the 106 dense
// landmarks with head pose, and quality when asked; timings.

import { callJson, filesForm } from "../api.js";
import { decode, drawFace, drawPoints, formatTimings, paint } from "../draw.js";
import { $, busy, el, say } from "../ui.js";

function describeFace(face, index) {
  const parts = [`#${index} score ${face.score.toFixed(3)}`];
  const [x1, y1, x2, y2] = face.bbox;
  parts.push(`box ${Math.round(x2 - x1)}×${Math.round(y2 - y1)} at (${Math.round(x1)}, ${Math.round(y1)})`);
  if (face.gender) parts.push(`${face.gender === "F" ? "female" : "male"}, age ${face.age}`);
  if (face.liveness) {
    const live = face.liveness;
    parts.push(live.reason ? `liveness: ${live.reason}` : `${live.is_live ? "live" : "not live"} (${live.score.toFixed(3)})`);
  }
  if (face.pose) {
    const { pitch, yaw, roll } = face.pose;
    parts.push(`pose pitch ${pitch.toFixed(1)}°, yaw ${yaw.toFixed(1)}°, roll ${roll.toFixed(1)}°`);
  }
  if (face.quality) {
    const q = face.quality;
    parts.push(`quality ${q.for_recognition} (size ${Math.round(q.size)} px, sharpness ${q.sharpness.toFixed(1)})`);
  }
  return parts.join(", ");
}

function shortLabel(face, index) {
  let label = `#${index} ${face.score.toFixed(2)}`;
  if (face.gender) label += ` ${face.gender}${face.age}`;
  if (face.liveness && !face.liveness.reason) label += face.liveness.is_live ? " live" : " spoof";
  return label;
}

export function init() {
  const form = $("detect-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, "detect-error", async () => {
      const file = $("detect-file").files[0];
      if (!file) throw new Error("choose an image first");
      say("detect-status", "detecting…");
      const canvas = $("detect-canvas");
      const list = $("detect-faces");
      list.replaceChildren();
      const query = {
        threshold: $("detect-threshold").value,
        attributes: $("detect-attributes").checked ? "true" : "",
        liveness: $("detect-liveness").checked ? "true" : "",
        dense_landmarks: $("detect-dense").checked ? "true" : "",
        pose: $("detect-dense").checked ? "true" : "",
        quality: $("detect-quality").checked ? "true" : "",
      };
      const [result, bitmap] = await Promise.all([
        callJson("POST", "/v1/detect", { query, body: filesForm({ image: [file] }) }),
        decode(file),
      ]);
      paint(canvas, bitmap);
      result.faces.forEach((face, index) => {
        if (bitmap) drawFace(canvas, face, index, shortLabel(face, index));
        if (bitmap && face.landmarks_2d_106) drawPoints(canvas, face.landmarks_2d_106);
        list.append(el("li", describeFace(face, index)));
      });
      const count = result.faces.length;
      say(
        "detect-status",
        `${count} face${count === 1 ? "" : "s"} in ${result.width}×${result.height} px. ${formatTimings(result.timings_ms)}`,
      );
    }, "detect-status");
  });
}

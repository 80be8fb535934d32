// Draw an image and face boxes on a canvas. Boxes are [x1, y1, x2, y2] in image pixels,
// landmarks five [x, y] points, as the API returns them.

const COLOURS = ["#ff3b30", "#34c759", "#0a84ff", "#ffcc00", "#af52de", "#ff9500"];

/** Decode a File/Blob to an ImageBitmap (no object URL, so no blob: image source needed). */
export async function decode(file) {
  try {
    return await createImageBitmap(file);
  } catch {
    return null; // the browser cannot show it; the API still gets the bytes and says why
  }
}

/** Paint the bitmap on the canvas at its own size (CSS scales it down to fit). */
export function paint(canvas, bitmap) {
  if (!bitmap) {
    canvas.removeAttribute("width");
    canvas.removeAttribute("height");
    return null;
  }
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  canvas.dataset.boxes = "0";
  canvas.dataset.points = "0";
  return ctx;
}

/** Outline one face with a label above it; line widths follow the image size. */
export function drawFace(canvas, face, index, label) {
  const ctx = canvas.getContext("2d");
  const unit = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 300));
  const colour = COLOURS[index % COLOURS.length];
  const [x1, y1, x2, y2] = face.bbox;
  ctx.lineWidth = unit;
  ctx.strokeStyle = colour;
  ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  for (const [x, y] of face.landmarks || []) {
    ctx.fillStyle = colour;
    ctx.beginPath();
    ctx.arc(x, y, unit * 1.5, 0, 2 * Math.PI);
    ctx.fill();
  }
  if (label) {
    const size = unit * 7;
    ctx.font = `${size}px system-ui, sans-serif`;
    const width = ctx.measureText(label).width + unit * 2;
    const top = y1 - size - unit * 2 >= 0 ? y1 - size - unit * 2 : y2;
    ctx.fillStyle = colour;
    ctx.fillRect(x1, top, width, size + unit * 2);
    ctx.fillStyle = "#000000";
    ctx.fillText(label, x1 + unit, top + size);
  }
  canvas.dataset.boxes = String(Number(canvas.dataset.boxes || "0") + 1);
}

/** Small dots for dense landmarks ([x, y] in image pixels), e.g. the 106 2-D points. */
export function drawPoints(canvas, points) {
  const ctx = canvas.getContext("2d");
  const radius = Math.max(1, Math.round(Math.max(canvas.width, canvas.height) / 600));
  ctx.fillStyle = "#00ffff";
  for (const [x, y] of points) {
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, 2 * Math.PI);
    ctx.fill();
  }
  canvas.dataset.points = String(Number(canvas.dataset.points || "0") + points.length);
}

export function formatTimings(timings) {
  return Object.entries(timings || {})
    .map(([stage, ms]) => `${stage} ${ms.toFixed(1)} ms`)
    .join(" · ");
}

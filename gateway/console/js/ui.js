// Small DOM helpers shared by the views: status and error lines, busy buttons, drop zones,
// and the camera dialog that turns a frame into a File in a file input.

import { ApiError } from "./api.js";

export const $ = (id) => document.getElementById(id);

export function say(id, text) {
  $(id).textContent = text;
}

export function showError(id, exc) {
  $(id).textContent = exc instanceof ApiError ? exc.describe() : `console error: ${exc.message}`;
}

/** Run `work` with the form's submit button disabled and errors shown in `errorId`;
 * a failure also clears the progress line `statusId` ("detecting…" would be a lie). */
export async function busy(form, errorId, work, statusId) {
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  say(errorId, "");
  try {
    await work();
  } catch (exc) {
    showError(errorId, exc);
    if (statusId) say(statusId, "");
  } finally {
    if (button) button.disabled = false;
  }
}

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** Dropping files on a .drop zone puts them in its file input. */
export function wireDropZones() {
  for (const zone of document.querySelectorAll(".drop")) {
    const input = zone.querySelector("input[type=file]");
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        input.dispatchEvent(new Event("change"));
      }
    });
  }
}

/** A "Camera" button fills its target input with one frame (stays in the page). */
export function wireCamera() {
  const dialog = $("camera-dialog");
  const video = $("camera-video");
  let target = null;
  let stream = null;
  const stop = () => {
    if (stream) for (const track of stream.getTracks()) track.stop();
    stream = null;
    video.srcObject = null;
    if (dialog.open) dialog.close();
  };
  for (const button of document.querySelectorAll("button.camera")) {
    button.addEventListener("click", async () => {
      target = $(button.dataset.target);
      const errorId = button.closest("section").id.replace("view-", "") + "-error";
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: true });
      } catch (exc) {
        say(errorId, `no camera: ${exc.message} (pick a file instead)`);
        return;
      }
      video.srcObject = stream;
      dialog.showModal();
    });
  }
  $("camera-cancel").addEventListener("click", stop);
  dialog.addEventListener("close", () => stop());
  $("camera-take").addEventListener("click", () => {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((blob) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([blob], "camera.png", { type: "image/png" }));
      target.files = transfer.files;
      target.dispatchEvent(new Event("change"));
      stop();
    }, "image/png");
  });
}

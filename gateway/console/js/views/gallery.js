// Gallery: collections, subjects with face counts, enrol from photos, identify (each face
// labelled by its best match), delete with a confirmation; unassigned faces (people.js).

import { callJson, filesForm } from "../api.js";
import { decode, drawFace, paint } from "../draw.js";
import { $, busy, el, say, showError } from "../ui.js";
import * as people from "./people.js";

const collectionPath = (name) => `/v1/collections/${encodeURIComponent(name)}`;
const current = () => $("collection-pick").value;

function requireCollection() {
  const name = current();
  if (!name) throw new Error("create or pick a collection first");
  return name;
}

async function deleteSubject(collection, subject) {
  if (!window.confirm(`Delete subject "${subject}" and all its faces from "${collection}"?`)) return;
  try {
    await callJson("DELETE", `${collectionPath(collection)}/subjects/${encodeURIComponent(subject)}`);
    say("gallery-status", `deleted subject ${subject}`);
    await loadSubjects();
  } catch (exc) {
    showError("gallery-error", exc);
  }
}

async function loadSubjects() {
  const body = $("subjects").querySelector("tbody");
  body.replaceChildren();
  const collection = current();
  if (!collection) return;
  const page = await callJson("GET", `${collectionPath(collection)}/subjects`, {
    query: { limit: 1000 },
  });
  for (const subject of page.subjects) {
    const row = el("tr");
    row.dataset.subject = subject.subject;
    const remove = el("button", "Delete", "danger");
    remove.type = "button";
    remove.setAttribute("aria-label", `Delete subject ${subject.subject}`);
    remove.addEventListener("click", () => deleteSubject(collection, subject.subject));
    const actions = el("td");
    if (people.isServerNamed(subject.subject)) {
      const name = el("button", "Name");
      name.type = "button";
      name.dataset.action = "name";
      name.setAttribute("aria-label", `Name the group ${subject.subject}`);
      name.addEventListener("click", () => people.nameGroup(collection, subject.subject, refresh));
      actions.append(name);
    }
    actions.append(remove);
    row.append(el("th", subject.subject), el("td", String(subject.faces)), actions);
    row.firstChild.scope = "row";
    body.append(row);
  }
  if (page.next_cursor) say("gallery-status", "showing the first 1000 subjects");
}

export async function refresh(select) {
  say("gallery-error", "");
  try {
    const picker = $("collection-pick");
    const keep = select || picker.value;
    const { collections } = await callJson("GET", "/v1/collections");
    picker.replaceChildren();
    for (const c of collections) {
      const option = el("option", `${c.name} (${c.subjects} subjects, ${c.faces} faces)`);
      option.value = c.name;
      picker.append(option);
    }
    if (collections.some((c) => c.name === keep)) picker.value = keep;
    await loadSubjects();
    await people.loadUnassigned(picker.value);
  } catch (exc) {
    showError("gallery-error", exc);
  }
}

export function init() {
  people.init(current, refresh);
  $("collection-pick").addEventListener("change", () => refresh());
  $("collection-refresh").addEventListener("click", () => refresh());

  const create = $("collection-form");
  create.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(create, "gallery-error", async () => {
      const name = $("collection-name").value.trim();
      await callJson("POST", "/v1/collections", { json: { name } });
      say("gallery-status", `created collection ${name}`);
      await refresh(name);
    });
  });

  $("collection-delete").addEventListener("click", async () => {
    const name = current();
    if (!name || !window.confirm(`Delete collection "${name}" with all its subjects and faces?`)) return;
    try {
      await callJson("DELETE", collectionPath(name));
      say("gallery-status", `deleted collection ${name}`);
      await refresh();
    } catch (exc) {
      showError("gallery-error", exc);
    }
  });

  const enrol = $("enrol-form");
  enrol.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(enrol, "gallery-error", async () => {
      const collection = requireCollection();
      const subject = $("enrol-subject").value.trim();
      const files = [...$("enrol-files").files];
      const path = `${collectionPath(collection)}/subjects/${encodeURIComponent(subject)}/faces`;
      const result = await callJson("POST", path, { body: filesForm({ image: files }) });
      say("gallery-status", `enrolled ${result.faces.length} face(s) as ${subject}`);
      await refresh(collection);
    });
  });

  const identify = $("identify-form");
  identify.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(identify, "gallery-error", async () => {
      const collection = requireCollection();
      const file = $("identify-file").files[0];
      const [result, bitmap] = await Promise.all([
        callJson("POST", `${collectionPath(collection)}/identify`, {
          query: { threshold: $("identify-threshold").value },
          body: filesForm({ image: [file] }),
        }),
        decode(file),
      ]);
      const canvas = $("identify-canvas");
      const list = $("identify-faces");
      list.replaceChildren();
      paint(canvas, bitmap);
      result.faces.forEach((face, index) => {
        const best = face.matches[0];
        const label = best ? `${best.subject} ${best.similarity.toFixed(2)}` : "unknown";
        if (bitmap && face.bbox) drawFace(canvas, face, index, label);
        const item = el("li", best ? `#${index}: ${best.subject} (similarity ${best.similarity.toFixed(4)})` : `#${index}: no match in ${collection}`);
        item.dataset.subject = best ? best.subject : "";
        list.append(item);
      });
      say("gallery-status", `${result.faces.length} face(s) in the photo`);
    });
  });
}

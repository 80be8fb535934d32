// Unassigned faces of a collection: add photos without a subject, list them, group them
// into people (POST /cluster), and name a group the server made (unknown-0001 -> a name).

import { callJson, filesForm } from "../api.js";
import { $, busy, el, say, showError } from "../ui.js";

const collectionPath = (name) => `/v1/collections/${encodeURIComponent(name)}`;
export const isServerNamed = (subject) => /^unknown-\d+$/.test(subject);

/** The first page of the collection's unassigned faces, with their count on it. */
export async function loadUnassigned(collection) {
  const list = $("unassigned-faces");
  list.replaceChildren();
  if (!collection) {
    say("unassigned-count", "");
    return;
  }
  const page = await callJson("GET", `${collectionPath(collection)}/faces`, {
    query: { subject: "none", limit: 100 },
  });
  for (const face of page.faces) {
    const item = el("li", `${face.id.slice(0, 8)}… enrolled ${face.created.slice(0, 19).replace("T", " ")}`);
    item.dataset.face = face.id;
    list.append(item);
  }
  const more = page.next_cursor ? " (the first 100 shown)" : "";
  say("unassigned-count", `${page.faces.length} unassigned face(s)${more}`);
}

/** Ask for a name and move the group's faces to it (PUT subjects/{name} {merge_from}). */
export async function nameGroup(collection, subject, refresh) {
  const name = (window.prompt(`Name for the group "${subject}"`) || "").trim();
  if (!name) return;
  try {
    await callJson("PUT", `${collectionPath(collection)}/subjects/${encodeURIComponent(name)}`, {
      json: { merge_from: subject },
    });
    say("gallery-status", `named ${subject} as ${name}`);
    await refresh(collection);
  } catch (exc) {
    showError("gallery-error", exc);
  }
}

export function init(current, refresh) {
  const add = $("unassigned-form");
  add.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(add, "gallery-error", async () => {
      const collection = current();
      if (!collection) throw new Error("create or pick a collection first");
      const files = [...$("unassigned-files").files];
      const result = await callJson("POST", `${collectionPath(collection)}/faces`, {
        body: filesForm({ image: files }),
      });
      say("gallery-status", `added ${result.faces.length} unassigned face(s)`);
      await refresh(collection);
    });
  });

  const cluster = $("cluster-form");
  cluster.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(cluster, "gallery-error", async () => {
      const collection = current();
      if (!collection) throw new Error("create or pick a collection first");
      const result = await callJson("POST", `${collectionPath(collection)}/cluster`, {
        query: { min_faces: $("cluster-min-faces").value },
      });
      const made = result.subjects_created.length ? `: new ${result.subjects_created.join(", ")}` : "";
      const pending = result.pending ? `; ${result.pending} still to do, run it again` : "";
      say("gallery-status", `grouped: ${result.assigned} face(s) assigned${made}${pending}`);
      await refresh(collection);
    });
  });
}

// Calls to the gateway with the pasted API key; errors carry the API's own message.
// The key lives in this module and in sessionStorage (this tab only): never in a URL,
// never in localStorage, never logged.

const KEY_SLOT = "facegate.apiKey";
let apiKey = sessionStorage.getItem(KEY_SLOT) || "";

export function hasKey() {
  return apiKey !== "";
}

export function setKey(key) {
  apiKey = key.trim();
  if (apiKey) sessionStorage.setItem(KEY_SLOT, apiKey);
  else sessionStorage.removeItem(KEY_SLOT);
}

/** An error answer of the API: status, its code and message, and the request id to quote. */
export class ApiError extends Error {
  constructor(status, code, message, requestId, retryAfterS) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.retryAfterS = retryAfterS;
  }

  describe() {
    const head = this.status ? `${this.status} ${this.code}`.trim() + ": " : "";
    const id = this.requestId ? ` (request id ${this.requestId})` : "";
    const retry = this.retryAfterS ? ` Retry in ${this.retryAfterS} s.` : "";
    return `${head}${this.message}${retry}${id}`;
  }
}

async function errorOf(response) {
  let code = "";
  let message = `the gateway answered HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || "";
      message = body.error.message || message;
    }
  } catch {
    // not JSON (a proxy's page): keep the status line
  }
  return new ApiError(
    response.status,
    code,
    message,
    response.headers.get("X-Request-ID"),
    response.headers.get("Retry-After"),
  );
}

/** fetch() a gateway path with the key; resolves to the Response when 2xx, else throws ApiError. */
export async function call(method, path, { query, body, json } = {}) {
  const headers = {};
  if (apiKey) headers["X-API-Key"] = apiKey;
  let payload = body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  }
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const url = params.size ? `${path}?${params}` : path;
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, cache: "no-store" });
  } catch (exc) {
    throw new ApiError(0, "network", `the gateway did not answer (${exc.message}): is it running?`);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function callJson(method, path, options) {
  const response = await call(method, path, options);
  return response.status === 204 ? null : response.json();
}

/** multipart/form-data with files under their field names ({image: [file, ...]}). */
export function filesForm(fields) {
  const form = new FormData();
  for (const [name, files] of Object.entries(fields)) {
    for (const file of files) form.append(name, file, file.name || `${name}.png`);
  }
  return form;
}

// depthlite web UI: the HTTP API (same origin), the API key, and typed errors.

import { KEY_STORAGE, els, state } from "./dom.js";

export function getKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setKey(value) {
  try {
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    /* ignore */
  }
  els.forgetRow.hidden = !value;
}

export class ApiError extends Error {
  constructor(status, code, detail, retryAfter = null) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
    this.detail = detail || "";
    this.retryAfter = retryAfter;
  }
}

function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, Math.ceil((date - Date.now()) / 1000)) : null;
}

function detailText(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's validation errors: [{loc: [...], msg: "..."}]
    return detail
      .map((d) => {
        if (typeof d === "string") return d;
        const where = Array.isArray(d?.loc) ? d.loc.filter((x) => x !== "query" && x !== "body").join(".") : "";
        return where && d?.msg ? `${where}: ${d.msg}` : d?.msg || "";
      })
      .filter(Boolean)
      .join("; ");
  }
  if (typeof detail === "object") return detail.message || detail.detail || "";
  return String(detail);
}

async function errorFrom(res) {
  let code = "";
  let detail = "";
  try {
    const type = res.headers.get("content-type") || "";
    if (type.includes("json")) {
      const body = await res.json();
      code = typeof body?.error === "string" ? body.error : body?.error?.code || "";
      detail = detailText(body?.detail ?? body?.message ?? body?.error?.message);
    } else {
      const text = (await res.text()).trim();
      // A short plain-text reason is worth showing; an HTML error page is not.
      if (text && text.length < 300 && !text.startsWith("<")) detail = text;
    }
  } catch {
    /* unreadable body: the status alone says enough */
  }
  return new ApiError(res.status, code, detail, parseRetryAfter(res.headers.get("retry-after")));
}

export async function api(path, { method = "GET", body, signal, headers: extra = {} } = {}) {
  const headers = { ...extra };
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let res;
  try {
    res = await fetch(path, { method, body, signal, headers, cache: "no-store" });
  } catch (err) {
    if (err?.name === "AbortError") throw err;
    throw new ApiError(0, "network", "");
  }
  if (!res.ok) throw await errorFrom(res);
  return res;
}

/** POST /v1/depth with the page's settings; `extra` adds query pairs, e.g. [["known", "4,5=2"]]. */
export function depthRequest(format, { signal, extra = [] } = {}) {
  const params = new URLSearchParams({ format, resize: els.resize.value });
  if (els.model.value) params.set("model", els.model.value);
  if (format === "color" || format === "jpeg" || format === "side") {
    params.set("colormap", els.colormap.value);
  }
  for (const [name, value] of extra) params.append(name, value);
  const form = new FormData();
  const name = state.file.name || `${state.stem}.png`;
  form.append("file", state.file, name);
  return api(`/v1/depth?${params}`, { method: "POST", body: form, signal });
}

/** POST a JSON body; the answer's JSON, or an ApiError with the server's detail. */
export async function postJson(path, payload, { signal } = {}) {
  const res = await api(path, {
    method: "POST",
    body: JSON.stringify(payload),
    signal,
    headers: { "Content-Type": "application/json" },
  });
  return res.json();
}

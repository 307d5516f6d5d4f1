// depthlite web UI: vanilla ES module, no dependencies, same-origin requests only.

const KEY_STORAGE = "depthlite.apiKey"; // sessionStorage: never persisted beyond the tab
const PREFS_STORAGE = "depthlite.prefs"; // localStorage: colour map and view, nothing sensitive
const FALLBACK_COLORMAPS = ["inferno"];
const RESIZE_LABELS = { keep_aspect: "Keep aspect ratio", square: "Square" };
// Server-Timing stages in pipeline order; anything else the server sends is shown after them.
const STAGES = ["queue", "decode", "preprocess", "inference", "postprocess", "encode"];
const TOTAL_NAMES = new Set(["total", "server", "app"]);
const DOWNLOAD_NAMES = {
  color: (stem) => `${stem}_color.png`,
  png16: (stem) => `${stem}_depth16.png`,
  npy: (stem) => `${stem}.npy`,
};

const $ = (id) => document.getElementById(id);
const els = {
  modelInfo: $("model-info"),
  modelText: $("model-text"),
  dropzone: $("dropzone"),
  fileInput: $("file-input"),
  sample: $("sample-button"),
  colormap: $("colormap"),
  resize: $("resize"),
  keyForm: $("api-key-form"),
  keyInput: $("api-key"),
  keyText: $("api-key-text"),
  forgetRow: $("forget-key-row"),
  forget: $("forget-key"),
  resultCard: $("result-card"),
  status: $("status"),
  error: $("error"),
  errorTitle: $("error-title"),
  errorDetail: $("error-detail"),
  retry: $("retry"),
  stage: $("stage"),
  viewSide: $("view-side"),
  viewCompare: $("view-compare"),
  originalImg: $("original-img"),
  depthImg: $("depth-img"),
  depthCaption: $("depth-caption"),
  compare: $("compare"),
  compareOriginal: $("compare-original"),
  compareDepth: $("compare-depth"),
  compareRange: $("compare-range"),
  legend: $("legend"),
  legendBar: $("legend-bar"),
  details: $("details"),
  latencyTotal: $("latency-total"),
  latencyNote: $("latency-note"),
  timingBar: $("timing-bar"),
  timingList: $("timing-list"),
  meta: $("meta"),
  downloadButtons: [...document.querySelectorAll("[data-download]")],
};

const state = {
  file: null, // the current image (File or Blob)
  stem: "image",
  originalUrl: null,
  depthUrl: null,
  depthBlob: null,
  depthColormap: null,
  extras: new Map(), // "png16" / "npy" blobs of the current image and resize mode
  controller: null,
  seq: 0,
  downloadUrl: null,
  retryTimer: null,
  warmupTimer: null,
  pendingAfterKey: null,
  maxBodyBytes: null,
};

// ---------------------------------------------------------------- small helpers

function loadPrefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS_STORAGE)) || {};
  } catch {
    return {};
  }
}

function savePrefs(patch) {
  try {
    localStorage.setItem(PREFS_STORAGE, JSON.stringify({ ...loadPrefs(), ...patch }));
  } catch {
    /* storage may be disabled: preferences are optional */
  }
}

export function getKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

function setKey(value) {
  try {
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    /* ignore */
  }
  els.forgetRow.hidden = !value;
}

function formatMs(ms) {
  if (!Number.isFinite(ms)) return "–";
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1)} ms`;
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function fileStem(name) {
  const base = (name || "").split(/[\\/]/).pop().replace(/\.[^.]*$/, "");
  const safe = base.replace(/[\u0000-\u001f<>:"/\\|?*]+/g, "_").trim();
  return safe || "image";
}

function revoke(url) {
  if (url) URL.revokeObjectURL(url);
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
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

async function api(path, { method = "GET", body, signal } = {}) {
  const headers = {};
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

function depthRequest(format, { signal } = {}) {
  const params = new URLSearchParams({ format, resize: els.resize.value });
  if (format === "color" || format === "jpeg" || format === "side") {
    params.set("colormap", els.colormap.value);
  }
  const form = new FormData();
  const name = state.file.name || `${state.stem}.png`;
  form.append("file", state.file, name);
  return api(`/v1/depth?${params}`, { method: "POST", body: form, signal });
}

// ---------------------------------------------------------------- status and errors

function setStatus(html) {
  els.status.innerHTML = html;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function describeError(err) {
  const code = (err.code || "").toLowerCase();
  const detail = err.detail;
  switch (err.status) {
    case 0:
      return ["Can’t reach the server", "The request did not get through. Check that depthlite serve is still running, then try again."];
    case 401:
      return getKey()
        ? ["API key not accepted", "The server rejected this API key. Enter a valid one below the image picker."]
        : ["API key required", detail || "This server needs an API key. Enter it below the image picker."];
    case 403:
      return ["Access denied", detail || "The server refused this request."];
    case 413:
      return ["Image too large", detail || "The image is larger than this server accepts. Try a smaller one."];
    case 415:
      return ["Not an image", detail || "This file is not an image the server can read. Try a PNG, JPEG or WebP."];
    case 422:
      if (/param|option|invalid_(?!image)|colormap|format|resize|valid/.test(code) || (!code && /colormap|format|resize/.test(detail))) {
        return ["Invalid option", detail || "The server did not accept one of the options."];
      }
      return ["Couldn’t read this image", detail || "The file looks damaged or is not a complete image."];
    case 429:
      return ["Too many requests", detail || "Slow down a little and try again."];
    case 503:
      if (code === "not_ready") return ["Model still loading", detail || "The server is warming up. Try again in a moment."];
      if (code === "shutting_down") return ["Server restarting", detail || "The server is shutting down. Try again shortly."];
      if (code === "model_unavailable") return ["Model unavailable", detail || "The server could not load its model."];
      return ["Server busy", detail || "The server is busy with other images. Try again in a moment."];
    default:
      if (err.status >= 500) {
        return ["Server error", detail || `The server failed to process the image (HTTP ${err.status}).`];
      }
      return ["Request failed", detail || `The server answered HTTP ${err.status}.`];
  }
}

function clearError() {
  clearInterval(state.retryTimer);
  state.retryTimer = null;
  els.error.hidden = true;
  els.retry.hidden = true;
  els.retry.onclick = null;
}

function showError(err, retry) {
  clearError();
  const [title, detail] = describeError(err);
  els.errorTitle.textContent = title;
  els.errorDetail.textContent = detail;
  els.error.dataset.status = String(err.status);
  els.error.hidden = false;
  setStatus("");

  if (err.status === 401) {
    state.pendingAfterKey = retry;
    showKeyForm(Boolean(getKey()));
    return;
  }
  // Retrying only helps when the server or the network was the problem, not the file.
  const transient =
    (err.status === 0 || err.status === 429 || err.status >= 500) && err.code !== "model_unavailable";
  if (!retry || !transient) return;
  els.retry.hidden = false;
  els.retry.onclick = () => {
    clearError();
    retry();
  };
  let wait = err.status === 503 ? (err.retryAfter ?? 0) : 0;
  if (wait > 0) {
    const tick = () => {
      els.retry.textContent = wait > 0 ? `Try again (${wait} s)` : "Try again";
      if (wait <= 0) clearInterval(state.retryTimer);
      wait -= 1;
    };
    tick();
    state.retryTimer = setInterval(tick, 1000);
  } else {
    els.retry.textContent = "Try again";
  }
}

function showKeyForm(rejected) {
  els.keyForm.hidden = false;
  els.keyText.textContent = rejected
    ? "That key was not accepted. Enter another one; it stays in this tab only."
    : "This server asks for an API key. It is kept in this tab only (session storage) and sent as a Bearer token.";
  if (rejected) els.keyInput.value = "";
  els.keyInput.focus();
}

// ---------------------------------------------------------------- server info

function resolveRef(spec, obj) {
  let node = obj;
  for (let i = 0; node && typeof node.$ref === "string" && i < 10; i += 1) {
    if (!node.$ref.startsWith("#/")) return null;
    node = node.$ref
      .slice(2)
      .split("/")
      .reduce((acc, part) => acc?.[part.replace(/~1/g, "/").replace(/~0/g, "~")], spec);
  }
  return node || null;
}

function schemaEnum(spec, schema, depth = 0) {
  const s = resolveRef(spec, schema);
  if (!s || depth > 5) return null;
  if (Array.isArray(s.enum)) return s.enum.filter((v) => typeof v === "string");
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    for (const sub of s[key] || []) {
      const found = schemaEnum(spec, sub, depth + 1);
      if (found?.length) return found;
    }
  }
  return s.items ? schemaEnum(spec, s.items, depth + 1) : null;
}

function queryParam(spec, name) {
  const item = spec?.paths?.["/v1/depth"];
  const op = item?.post;
  if (!op) return null;
  const params = [...(item.parameters || []), ...(op.parameters || [])].map((p) => resolveRef(spec, p));
  const param = params.find((p) => p?.name === name && (p.in || "query") === "query");
  if (!param) return null;
  const schema = resolveRef(spec, param.schema);
  return { values: schemaEnum(spec, schema), default: schema?.default ?? param.default ?? null };
}

function fillSelect(select, values, preferred, labels = {}) {
  const current = select.value;
  select.replaceChildren(
    ...values.map((v) => {
      const opt = document.createElement("option");
      opt.value = v;
      opt.textContent = labels[v] || v.replace(/_/g, " ");
      return opt;
    }),
  );
  const pick = [preferred, current].find((v) => v && values.includes(v)) ?? values[0];
  select.value = pick;
}

function pickModel(data) {
  const models = Array.isArray(data?.models) ? data.models : [];
  const wanted = data?.default || data?.current || data?.loaded;
  return (
    models.find((m) => m && (m.loaded === true || m.active === true || m.default === true || m.current === true)) ||
    models.find((m) => m && typeof wanted === "string" && m.name === wanted) ||
    models[0] ||
    null
  );
}

function renderModel(model, data) {
  if (!model) {
    els.modelInfo.dataset.state = "ok";
    els.modelText.textContent = "Server ready";
    return;
  }
  const warming = model.ready === false;
  els.modelInfo.dataset.state = warming ? "loading" : "ok";
  const parts = [model.backend, model.precision].filter((x) => typeof x === "string" && x);
  if (warming) parts.push("warming up…");
  els.modelText.innerHTML =
    `<strong>${escapeHtml(model.name || "model")}</strong>` +
    parts.map((p) => ` <span class="sep" aria-hidden="true">·</span> ${escapeHtml(p)}`).join("");
  const extra = [model.resize && `resize ${model.resize}`, data?.version && `depthlite ${data.version}`].filter(Boolean);
  els.modelInfo.title = extra.join(" · ");
  if (model.resize && !loadPrefs().resize && [...els.resize.options].some((o) => o.value === model.resize)) {
    els.resize.value = model.resize;
  }
}

async function loadModels(poll = 0) {
  clearTimeout(state.warmupTimer);
  try {
    const res = await api("/v1/models");
    const data = await res.json();
    const model = pickModel(data);
    renderModel(model, data);
    if (Number.isFinite(data?.max_body_bytes)) state.maxBodyBytes = data.max_body_bytes;
    // The model loads in the background after start-up: watch until it is ready.
    if (model?.ready === false && poll < 120) {
      state.warmupTimer = setTimeout(() => loadModels(poll + 1), 1500);
    }
    return data;
  } catch (err) {
    els.modelInfo.dataset.state = "error";
    if (err instanceof ApiError && err.status === 401) {
      els.modelText.textContent = "API key required";
      state.pendingAfterKey = state.pendingAfterKey || (() => {});
      showKeyForm(Boolean(getKey()));
    } else {
      els.modelText.textContent = "Model information unavailable";
    }
    return null;
  }
}

async function loadOptions(modelsData) {
  const prefs = loadPrefs();
  const strings = (value) => (Array.isArray(value) ? value.filter((v) => typeof v === "string") : []);
  // /v1/models lists the choices; the OpenAPI schema's enums fill in whatever it does not.
  let colormaps = strings(modelsData?.colormaps);
  let colormapDefault = typeof modelsData?.default_colormap === "string" ? modelsData.default_colormap : null;
  let resizes = strings(modelsData?.resize_modes);
  let formats = strings(modelsData?.formats);
  if (!colormaps.length || !resizes.length || !formats.length || !colormapDefault) {
    try {
      const res = await fetch("/openapi.json", { cache: "no-store" });
      if (res.ok) {
        const spec = await res.json();
        const cm = queryParam(spec, "colormap");
        if (!colormaps.length) colormaps = cm?.values || [];
        colormapDefault = colormapDefault || cm?.default;
        if (!resizes.length) resizes = queryParam(spec, "resize")?.values || [];
        if (!formats.length) formats = queryParam(spec, "format")?.values || [];
      }
    } catch {
      /* no schema: fall back below */
    }
  }
  if (!colormaps?.length) colormaps = FALLBACK_COLORMAPS;
  const defaultMap = [colormapDefault, "inferno"].find((v) => v && colormaps.includes(v));
  fillSelect(els.colormap, colormaps, prefs.colormap || defaultMap);
  if (resizes?.length) fillSelect(els.resize, resizes, prefs.resize || els.resize.value, RESIZE_LABELS);
  else if (prefs.resize) fillSelect(els.resize, [...els.resize.options].map((o) => o.value), prefs.resize, RESIZE_LABELS);
  if (formats?.length) {
    for (const button of els.downloadButtons) button.hidden = !formats.includes(button.dataset.download);
  }
  els.colormap.dataset.ready = "true";
}

// ---------------------------------------------------------------- server timing

function parseServerTiming(header) {
  if (!header) return [];
  return header
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const [name, ...params] = entry.split(";").map((s) => s.trim());
      const metric = { name, dur: null, desc: "" };
      for (const p of params) {
        const eq = p.indexOf("=");
        const key = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
        const value = eq < 0 ? "" : p.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1");
        if (key === "dur") metric.dur = Number.parseFloat(value);
        else if (key === "desc") metric.desc = value;
      }
      return metric;
    })
    .filter((m) => m.name && Number.isFinite(m.dur));
}

function renderTiming(metrics, elapsed) {
  const totalMetric = metrics.find((m) => TOTAL_NAMES.has(m.name.toLowerCase()));
  const stages = metrics
    .filter((m) => m !== totalMetric)
    .sort((a, b) => {
      const ia = STAGES.indexOf(a.name.toLowerCase());
      const ib = STAGES.indexOf(b.name.toLowerCase());
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
    });
  const serverTotal = totalMetric ? totalMetric.dur : stages.reduce((sum, m) => sum + m.dur, 0);
  const rows = stages.map((m) => ({
    name: m.desc || m.name,
    dur: m.dur,
    color: STAGES.includes(m.name.toLowerCase()) ? `var(--t-${m.name.toLowerCase()})` : "var(--t-other)",
  }));
  if (stages.length) {
    rows.push({ name: "network", dur: Math.max(0, elapsed - serverTotal), color: "var(--t-other)" });
  }

  els.latencyTotal.textContent = formatMs(elapsed);
  const inference = stages.find((m) => m.name.toLowerCase() === "inference");
  els.latencyNote.textContent = stages.length
    ? `round trip · server ${formatMs(serverTotal)}${inference ? ` · inference ${formatMs(inference.dur)}` : ""}`
    : "round trip (the server sent no timing breakdown)";

  const sum = rows.reduce((s, r) => s + r.dur, 0) || 1;
  els.timingBar.replaceChildren(
    ...rows.map((r) => {
      const seg = document.createElement("span");
      seg.style.flex = `${r.dur / sum} 1 0`;
      seg.style.background = r.color;
      seg.title = `${r.name}: ${formatMs(r.dur)}`;
      return seg;
    }),
  );
  els.timingList.replaceChildren(
    ...rows.map((r) => {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = r.name;
      dt.style.setProperty("--swatch", r.color);
      dd.textContent = formatMs(r.dur);
      div.append(dt, dd);
      return div;
    }),
  );
}

// ---------------------------------------------------------------- legend from the PNG palette

async function paletteOf(blob) {
  // The colour PNG is a palette image: its PLTE chunk is the colour map, index 0 = farthest.
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (bytes.length < 8 || sig.some((b, i) => bytes[i] !== b)) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let pos = 8; pos + 8 <= bytes.length; ) {
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (type === "PLTE") return bytes.subarray(pos + 8, pos + 8 + length);
    if (type === "IDAT" || type === "IEND") return null;
    pos += 12 + length;
  }
  return null;
}

async function updateLegend(blob) {
  let palette = null;
  try {
    palette = await paletteOf(blob);
  } catch {
    palette = null;
  }
  if (!palette || palette.length < 6) {
    els.legend.hidden = true;
    return;
  }
  const n = Math.floor(palette.length / 3);
  const canvas = els.legendBar;
  canvas.width = n;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(n, 1);
  for (let i = 0; i < n; i += 1) {
    img.data.set([palette[3 * i], palette[3 * i + 1], palette[3 * i + 2], 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  els.legend.hidden = false;
}

// ---------------------------------------------------------------- image flow

function setBusy(busy) {
  els.stage.dataset.busy = String(busy);
  els.resultCard.setAttribute("aria-busy", String(busy));
}

function setImage(img, url) {
  if (url) img.src = url;
  else img.removeAttribute("src");
}

function showFileInDropzone(file) {
  const title = els.dropzone.querySelector(".dropzone-title");
  const hint = els.dropzone.querySelector(".dropzone-hint");
  title.querySelector(".pointer-fine").innerHTML =
    'Drop or <span class="dropzone-link">choose another image</span>';
  title.querySelector(".pointer-coarse").innerHTML = '<span class="dropzone-link">Choose another image</span>';
  const label = file.name ? `${file.name} · ${formatBytes(file.size)}` : formatBytes(file.size);
  hint.querySelector(".dropzone-formats").innerHTML = `<span class="dropzone-file">${escapeHtml(label)}</span>`;
}

function resetStage() {
  state.depthBlob = null;
  state.depthColormap = null;
  revoke(state.depthUrl);
  state.depthUrl = null;
  setImage(els.depthImg, null);
  setImage(els.compareDepth, null);
  delete els.depthImg.dataset.colormap;
  els.legend.hidden = true;
  els.details.hidden = true;
}

function useFile(file, fallbackName = "image.png") {
  if (!file) return;
  if (file.size === 0) {
    showError(new ApiError(422, "empty", "The file is empty."));
    return;
  }
  if (state.maxBodyBytes && file.size > state.maxBodyBytes) {
    // No point uploading what the server will refuse.
    const detail = `${file.name || "The image"} is ${formatBytes(file.size)}; this server accepts up to ${formatBytes(state.maxBodyBytes)}.`;
    showError(new ApiError(413, "body_too_large", detail));
    return;
  }
  state.controller?.abort();
  state.seq += 1; // invalidate in-flight results of the previous image
  state.file = file;
  state.stem = fileStem(file.name || fallbackName);
  state.extras.clear();
  resetStage();
  revoke(state.originalUrl);
  state.originalUrl = URL.createObjectURL(file);
  els.originalImg.closest("figure").classList.remove("no-preview");
  setImage(els.originalImg, state.originalUrl);
  setImage(els.compareOriginal, state.originalUrl);
  els.stage.dataset.state = "loading";
  showFileInDropzone(file);
  estimate();
}

async function estimate(attempt = 0) {
  if (!state.file) return;
  if (typeof attempt !== "number") attempt = 0;
  state.controller?.abort();
  const controller = new AbortController();
  state.controller = controller;
  const seq = ++state.seq;
  const colormap = els.colormap.value;
  const name = state.file.name || "the image";

  clearError();
  setBusy(true);
  setStatus(`Estimating depth for <strong>${escapeHtml(name)}</strong>…`);
  const started = performance.now();
  try {
    const res = await depthRequest("color", { signal: controller.signal });
    const blob = await res.blob();
    const elapsed = performance.now() - started;
    if (seq !== state.seq) return;

    const url = URL.createObjectURL(blob);
    const probe = new Image();
    probe.src = url;
    try {
      await probe.decode();
    } catch {
      revoke(url);
      throw new ApiError(500, "bad_response", "The server’s depth image could not be displayed.");
    }
    if (seq !== state.seq) {
      revoke(url);
      return;
    }
    const previous = state.depthUrl;
    state.depthUrl = url;
    state.depthBlob = blob;
    state.depthColormap = colormap;
    setImage(els.depthImg, url);
    setImage(els.compareDepth, url);
    revoke(previous);
    els.depthImg.alt = `Depth map of ${name}, colour map ${colormap}`;
    els.depthImg.dataset.colormap = colormap;
    els.depthCaption.textContent = `Depth · ${colormap.replace(/_/g, " ")}`;

    const width = Number(res.headers.get("x-depth-width")) || probe.naturalWidth;
    const height = Number(res.headers.get("x-depth-height")) || probe.naturalHeight;
    setCompareSize(width, height);
    els.meta.textContent = `${width} × ${height} px · ${formatBytes(blob.size)} colour PNG`;
    renderTiming(parseServerTiming(res.headers.get("server-timing")), elapsed);
    els.details.hidden = false;
    els.stage.dataset.state = "ready";
    updateLegend(blob);
    setStatus(`Depth ready in <strong>${formatMs(elapsed)}</strong>.`);
  } catch (err) {
    if (err?.name === "AbortError" || seq !== state.seq) return;
    if (err instanceof ApiError && err.status === 503 && err.code === "not_ready" && attempt < 30) {
      // The model is still loading: wait as asked and try again without bothering the user.
      const wait = Math.min(Math.max(err.retryAfter ?? 2, 1), 10);
      setStatus(`The model is warming up; trying again in ${wait} s…`);
      setTimeout(() => {
        if (seq === state.seq) estimate(attempt + 1);
      }, wait * 1000);
      return;
    }
    if (!state.depthBlob) {
      // Nothing to show for this file: go back to the empty stage.
      els.stage.dataset.state = "empty";
    }
    showError(err instanceof ApiError ? err : new ApiError(0, "network", ""), estimate);
  } finally {
    if (seq === state.seq) setBusy(false);
  }
}

function setCompareSize(width, height) {
  if (!width || !height) return;
  els.compare.style.aspectRatio = `${width} / ${height}`;
  els.compare.style.width = `min(100%, calc(66vh * ${(width / height).toFixed(4)}))`;
}

// ---------------------------------------------------------------- downloads

function saveBlob(blob, filename) {
  revoke(state.downloadUrl);
  const url = URL.createObjectURL(blob);
  state.downloadUrl = url;
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.rel = "noopener";
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // Give the browser time to start the download, then free the memory.
  setTimeout(() => {
    if (state.downloadUrl === url) {
      revoke(url);
      state.downloadUrl = null;
    }
  }, 60_000);
}

async function download(format, button) {
  if (!state.file || !state.depthBlob) return;
  const file = state.file;
  const stem = state.stem;
  const resize = els.resize.value;
  const filename = DOWNLOAD_NAMES[format](stem);
  if (format === "color") {
    saveBlob(state.depthBlob, filename);
    setStatus(`Saved <strong>${escapeHtml(filename)}</strong>.`);
    return;
  }
  const cacheKey = `${format}:${resize}`;
  let blob = state.extras.get(cacheKey);
  if (!blob) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    clearError();
    setStatus(`Preparing <strong>${escapeHtml(filename)}</strong>…`);
    try {
      const res = await depthRequest(format);
      blob = await res.blob();
      if (state.file !== file) return; // a new image arrived meanwhile
      state.extras.set(cacheKey, blob);
    } catch (err) {
      if (state.file === file) showError(err instanceof ApiError ? err : new ApiError(0, "network", ""), () => download(format, button));
      return;
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }
  saveBlob(blob, filename);
  setStatus(`Saved <strong>${escapeHtml(filename)}</strong> (${formatBytes(blob.size)}).`);
}

// ---------------------------------------------------------------- sample scene

function sampleScene() {
  const w = 960;
  const h = 600;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const horizon = h * 0.56;

  const sky = ctx.createLinearGradient(0, 0, 0, horizon);
  sky.addColorStop(0, "#7fa7d9");
  sky.addColorStop(1, "#f4d7b5");
  ctx.fillStyle = sky;
  ctx.fillRect(0, 0, w, horizon);
  ctx.fillStyle = "#fff3d6";
  ctx.beginPath();
  ctx.arc(w * 0.74, horizon * 0.42, 38, 0, Math.PI * 2);
  ctx.fill();

  const ridges = [
    ["#a7b3c9", 0.78, 40, 0.004],
    ["#7c8aa6", 0.86, 55, 0.007],
    ["#55627d", 0.94, 45, 0.011],
  ];
  for (const [color, base, amp, freq] of ridges) {
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.moveTo(0, horizon);
    for (let x = 0; x <= w; x += 8) {
      const y = horizon * base - amp * (Math.sin(x * freq) + 0.5 * Math.sin(x * freq * 2.7 + 1));
      ctx.lineTo(x, y);
    }
    ctx.lineTo(w, horizon);
    ctx.closePath();
    ctx.fill();
  }

  const ground = ctx.createLinearGradient(0, horizon, 0, h);
  ground.addColorStop(0, "#8aa26b");
  ground.addColorStop(1, "#3f5a2c");
  ctx.fillStyle = ground;
  ctx.fillRect(0, horizon, w, h - horizon);
  ctx.strokeStyle = "rgb(255 255 255 / 18%)";
  ctx.lineWidth = 1.5;
  for (let i = -12; i <= 12; i += 1) {
    ctx.beginPath();
    ctx.moveTo(w / 2 + i * 8, horizon);
    ctx.lineTo(w / 2 + i * 160, h);
    ctx.stroke();
  }
  for (let k = 1; k < 9; k += 1) {
    const y = horizon + (h - horizon) * (k / 9) ** 2;
    ctx.beginPath();
    ctx.moveTo(0, y);
    ctx.lineTo(w, y);
    ctx.stroke();
  }

  const spheres = [
    [w * 0.3, h * 0.82, 92, "#d9573b"],
    [w * 0.62, h * 0.7, 54, "#3b7dd9"],
    [w * 0.8, h * 0.63, 30, "#e7b53c"],
  ];
  for (const [x, y, r, color] of spheres) {
    ctx.fillStyle = "rgb(0 0 0 / 22%)";
    ctx.beginPath();
    ctx.ellipse(x + r * 0.2, y + r * 0.92, r * 0.95, r * 0.22, 0, 0, Math.PI * 2);
    ctx.fill();
    const g = ctx.createRadialGradient(x - r * 0.35, y - r * 0.4, r * 0.1, x, y, r);
    g.addColorStop(0, "#ffffff");
    g.addColorStop(0.25, color);
    g.addColorStop(1, "#1b1b24");
    ctx.fillStyle = g;
    ctx.beginPath();
    ctx.arc(x, y, r, 0, Math.PI * 2);
    ctx.fill();
  }
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// ---------------------------------------------------------------- compare slider

function setComparePos(value) {
  const v = Math.min(100, Math.max(0, Math.round(value)));
  els.compare.style.setProperty("--pos", `${v}%`);
  els.compareRange.value = String(v);
  els.compareRange.setAttribute("aria-valuetext", `${v}% depth, ${100 - v}% original`);
}

function bindCompare() {
  els.compareRange.addEventListener("input", () => setComparePos(Number(els.compareRange.value)));
  const fromPointer = (event) => {
    const rect = els.compare.getBoundingClientRect();
    setComparePos(((event.clientX - rect.left) / rect.width) * 100);
  };
  els.compare.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    els.compare.setPointerCapture(event.pointerId);
    fromPointer(event);
  });
  els.compare.addEventListener("pointermove", (event) => {
    if (els.compare.hasPointerCapture(event.pointerId)) fromPointer(event);
  });
  setComparePos(50);
}

function setView(view) {
  const compare = view === "compare";
  els.viewSide.hidden = compare;
  els.viewCompare.hidden = !compare;
  for (const radio of document.querySelectorAll('input[name="view"]')) radio.checked = radio.value === view;
}

// ---------------------------------------------------------------- wiring

function bindInputs() {
  els.dropzone.addEventListener("click", () => els.fileInput.click());
  els.fileInput.addEventListener("change", () => {
    const file = els.fileInput.files?.[0];
    if (file) useFile(file);
    els.fileInput.value = ""; // picking the same file again should work too
  });

  // Drop anywhere on the page; the drop zone lights up while a file is over the window.
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  window.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    els.dropzone.classList.add("dragging");
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) els.dropzone.classList.remove("dragging");
  });
  window.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    els.dropzone.classList.remove("dragging");
    const file = event.dataTransfer.files?.[0];
    if (file) useFile(file);
  });

  document.addEventListener("paste", (event) => {
    const items = [...(event.clipboardData?.items || [])];
    const item = items.find((i) => i.kind === "file" && i.type.startsWith("image/"));
    if (!item) return; // ordinary text paste (e.g. into the API key field)
    event.preventDefault();
    useFile(item.getAsFile(), "pasted.png");
  });

  els.sample.addEventListener("click", async () => {
    const blob = await sampleScene();
    if (blob) useFile(new File([blob], "sample-scene.png", { type: "image/png" }));
  });

  els.colormap.addEventListener("change", () => {
    savePrefs({ colormap: els.colormap.value });
    if (state.file) estimate();
  });
  els.resize.addEventListener("change", () => {
    savePrefs({ resize: els.resize.value });
    if (state.file) estimate();
  });

  for (const radio of document.querySelectorAll('input[name="view"]')) {
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      setView(radio.value);
      savePrefs({ view: radio.value });
    });
  }

  for (const button of els.downloadButtons) {
    button.addEventListener("click", () => download(button.dataset.download, button));
  }

  els.originalImg.addEventListener("load", () => {
    // Until the depth arrives, its frame and the compare view take the original's shape.
    const { naturalWidth: w, naturalHeight: h } = els.originalImg;
    if (!w || !h) return;
    els.depthImg.style.aspectRatio = `${w} / ${h}`;
    els.originalImg.style.aspectRatio = `${w} / ${h}`;
    if (!state.depthBlob) setCompareSize(w, h);
  });
  els.originalImg.addEventListener("error", () => {
    if (els.originalImg.getAttribute("src")) els.originalImg.closest("figure").classList.add("no-preview");
  });

  els.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = els.keyInput.value.trim();
    if (!key) return;
    setKey(key);
    els.keyInput.value = "";
    els.keyForm.hidden = true;
    clearError();
    const pending = state.pendingAfterKey;
    state.pendingAfterKey = null;
    if (els.modelInfo.dataset.state !== "ok") loadModels();
    if (pending) pending();
  });
  els.forget.addEventListener("click", () => {
    setKey("");
    setStatus("The API key was removed from this tab.");
  });

  window.addEventListener("pagehide", () => {
    revoke(state.originalUrl);
    revoke(state.depthUrl);
    revoke(state.downloadUrl);
  });
}

async function init() {
  setKey(getKey());
  if (/Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent)) {
    for (const kbd of document.querySelectorAll(".mod-key")) kbd.textContent = "⌘";
  }
  bindInputs();
  bindCompare();
  const prefs = loadPrefs();
  setView(prefs.view === "compare" ? "compare" : "side");
  const models = await loadModels();
  await loadOptions(models);
}

init();

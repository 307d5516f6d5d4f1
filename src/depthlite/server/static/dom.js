// depthlite web UI: the page's elements, the shared state, preferences and small helpers.

export const KEY_STORAGE = "depthlite.apiKey"; // sessionStorage: never persisted beyond the tab

export const PREFS_STORAGE = "depthlite.prefs"; // localStorage: colour map and view, nothing sensitive

export const DOWNLOAD_NAMES = {
  color: (stem) => `${stem}_color.png`,
  png16: (stem) => `${stem}_depth16.png`,
  npy: (stem) => `${stem}.npy`,
};

export const $ = (id) => document.getElementById(id);

export const els = {
  modelInfo: $("model-info"),
  modelText: $("model-text"),
  dropzone: $("dropzone"),
  fileInput: $("file-input"),
  sample: $("sample-button"),
  model: $("model"),
  modelLicence: $("model-licence"),
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

export const state = {
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
  models: null, // the last GET /v1/models answer
  pendingAfterKey: null,
  maxBodyBytes: null,
};

export function loadPrefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS_STORAGE)) || {};
  } catch {
    return {};
  }
}

export function savePrefs(patch) {
  try {
    localStorage.setItem(PREFS_STORAGE, JSON.stringify({ ...loadPrefs(), ...patch }));
  } catch {
    /* storage may be disabled: preferences are optional */
  }
}

export function formatMs(ms) {
  if (!Number.isFinite(ms)) return "–";
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1)} ms`;
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function fileStem(name) {
  const base = (name || "").split(/[\\/]/).pop().replace(/\.[^.]*$/, "");
  const safe = base.replace(/[\u0000-\u001f<>:"/\\|?*]+/g, "_").trim();
  return safe || "image";
}

export function revoke(url) {
  if (url) URL.revokeObjectURL(url);
}

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// depthlite web UI: the page's elements, the shared state, preferences and small helpers.

export const KEY_STORAGE = "depthlite.apiKey"; // sessionStorage: never persisted beyond the tab

export const PREFS_STORAGE = "depthlite.prefs"; // localStorage: colour map and view, nothing sensitive

export const DOWNLOAD_NAMES = {
  color: (stem) => `${stem}_color.png`,
  png16: (stem) => `${stem}_depth16.png`,
  npy: (stem) => `${stem}.npy`,
  ply: (stem) => `${stem}.ply`,
};

// What the page's modules tell each other (document events), so none imports the others' state.
export const EVENTS = {
  image: "depthlite:image", // a new image was chosen: every per-image value is stale
  depth: "depthlite:depth", // a depth map is shown (new image, model or network input)
  calibration: "depthlite:calibration", // the calibration was fitted or cleared
};

export function emit(name, detail = {}) {
  document.dispatchEvent(new CustomEvent(name, { detail }));
}

export function on(name, handler) {
  document.addEventListener(name, (event) => handler(event.detail));
}

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
  legendFar: $("legend-far"),
  legendNear: $("legend-near"),
  legendTicks: $("legend-ticks"),
  depthWrap: $("depth-wrap"),
  originalWrap: $("original-wrap"),
  measure: $("measure"),
  probeReadout: $("probe-readout"),
  probeAnnounce: $("probe-announce"),
  calibrateToggle: $("calibrate-toggle"),
  calibration: $("calibration"),
  calibHelp: $("calib-help"),
  calibPoints: $("calib-points"),
  calibFit: $("calib-fit"),
  calibRun: $("calib-run"),
  calibClear: $("calib-clear"),
  calibError: $("calib-error"),
  calibErrorTitle: $("calib-error-title"),
  calibErrorDetail: $("calib-error-detail"),
  calibSummary: $("calib-summary"),
  view3dOption: $("view-3d-option"),
  view3d: $("view-3d"),
  view3dHost: $("view3d-host"),
  view3dInfo: $("view3d-info"),
  view3dReset: $("view3d-reset"),
  pointSize: $("point-size"),
  fov: $("fov"),
  plyDownload: $("ply-download"),
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
  calibration: null, // the last POST /v1/calibration answer for this image, with its values key
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

export function saveBlob(blob, filename) {
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

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

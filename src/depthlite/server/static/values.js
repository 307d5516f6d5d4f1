// depthlite web UI: the depth values behind the picture (format=npy), fetched once per image and
// setting, and what they mean (the model's output kind, metres once calibrated).

import { ApiError, depthRequest } from "./api.js";
import { els, state } from "./dom.js";
import { NpyError, parseNpy } from "./npy.js";

const KIND_NAMES = {
  relative_inverse_depth: "relative inverse depth",
  relative_disparity: "relative disparity",
  metric_depth: "metric depth",
};

/** The card of the model the requests use (GET /v1/models), or null before it arrived. */
function chosenModel() {
  const models = Array.isArray(state.models?.models) ? state.models.models : [];
  return models.find((m) => m?.name === els.model.value) || models.find((m) => m?.default) || models[0] || null;
}

export function currentKind() {
  return chosenModel()?.kind || "relative_inverse_depth";
}

export function kindName(kind = currentKind()) {
  return KIND_NAMES[kind] || String(kind).replace(/_/g, " ");
}

/** Larger values are nearer for the relative kinds; metric depth grows with distance. */
export function nearIsLarger(kind = currentKind()) {
  return kind !== "metric_depth";
}

/** One key per image (the cache is cleared with each new image), model and network input. */
export function valuesKey() {
  return `npy:${els.resize.value}:${els.model.value}`;
}

const pending = new Map(); // values key -> promise, so concurrent callers share one request

async function fetchValues(key, file) {
  let blob = state.extras.get(key); // the NPY download and the probe share one response
  if (!blob) {
    const res = await depthRequest("npy");
    blob = await res.blob();
    if (state.file !== file) throw new DOMException("a new image replaced this one", "AbortError");
    state.extras.set(key, blob);
  }
  let parsed;
  try {
    parsed = parseNpy(await blob.arrayBuffer());
  } catch (err) {
    if (err instanceof NpyError) throw new ApiError(500, "bad_response", `The server’s depth values could not be read: ${err.message}.`);
    throw err;
  }
  if (parsed.shape.length !== 2) throw new ApiError(500, "bad_response", `The depth values have shape ${parsed.shape}, not height × width.`);
  const [height, width] = parsed.shape;
  let min = Infinity;
  let max = -Infinity;
  for (const v of parsed.data) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { key, width, height, data: parsed.data, min, max };
}

/** The current image's depth values: {key, width, height, data, min, max}, fetched lazily. */
export function depthValues() {
  const key = valuesKey();
  const cached = state.extras.get(`values:${key}`);
  if (cached) return Promise.resolve(cached);
  const file = state.file;
  let promise = pending.get(key);
  if (!promise || promise.file !== file) {
    promise = fetchValues(key, file).then((values) => {
      if (state.file === file) state.extras.set(`values:${key}`, values);
      return values;
    });
    promise.file = file;
    promise.finally(() => pending.get(key) === promise && pending.delete(key)).catch(() => {});
    pending.set(key, promise);
  }
  return promise;
}

/** Cached values of the current image and setting, or null (never starts a request). */
export function loadedValues() {
  return state.extras.get(`values:${valuesKey()}`) || null;
}

export function valueAt(values, x, y) {
  return values.data[y * values.width + x];
}

/** Metres from a model value with a POST /v1/calibration answer (the contract's formula). */
export function toMetres(calibration, value) {
  if (!calibration || !Number.isFinite(value)) return NaN;
  const { scale, shift } = calibration;
  const metres = calibration.space === "linear" ? scale * value + shift : 1 / (scale * value + shift);
  // Beyond the fit's horizon (1/d <= 0) there is no distance to show.
  return Number.isFinite(metres) && metres > 0 ? metres : NaN;
}

/** A model value from metres (the inverse of toMetres), for placing metre ticks on the bar. */
export function fromMetres(calibration, metres) {
  const { scale, shift } = calibration;
  return calibration.space === "linear" ? (metres - shift) / scale : (1 / metres - shift) / scale;
}

export function formatValue(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return Number(v.toPrecision(5)).toString();
}

export function formatMetres(m) {
  if (!Number.isFinite(m)) return "beyond the fit’s range";
  if (m < 10) return `${m.toFixed(2)} m`;
  if (m < 100) return `${m.toFixed(1)} m`;
  return `${Math.round(m)} m`;
}

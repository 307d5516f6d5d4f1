// depthlite web UI: calibration in metres. The user clicks two or more points and types their
// true distances; POST /v1/calibration fits the model's output to them (the library's fit, not
// one of ours) and answers the residual of every point, or a 422 saying why it refused.

import { ApiError, postJson } from "./api.js";
import { EVENTS, els, emit, on, state } from "./dom.js";
import { setMarks } from "./marks.js";
import { currentKind, depthValues, formatMetres, formatValue, kindName, valueAt, valuesKey } from "./values.js";

let points = []; // [{x, y, value, distance: string as typed, result: the fit's answer or null}]
let pointsKey = null; // the depth values (model, network input) the points' values come from
let seq = 0; // the newest fit request; older answers are dropped

export function isCalibrating() {
  return els.calibrateToggle.getAttribute("aria-pressed") === "true";
}

/** The fitted calibration, if it belongs to the depth values on screen (same model and input). */
export function activeCalibration() {
  const cal = state.calibration;
  return cal && cal.key === valuesKey() ? cal : null;
}

function setCalibration(cal) {
  state.calibration = cal;
  emit(EVENTS.calibration, { calibration: cal });
}

function hideError() {
  els.calibError.hidden = true;
}

function showCalibError(title, detail, input = null) {
  els.calibErrorTitle.textContent = title;
  els.calibErrorDetail.textContent = detail;
  els.calibError.hidden = false;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

function pointRow(p, i) {
  const result = p.result;
  const li = document.createElement("li");
  li.className = "calib-point";
  Object.assign(li.dataset, { x: String(p.x), y: String(p.y), value: String(p.value) });
  const id = `calib-distance-${i + 1}`;
  li.innerHTML = `
    <span class="calib-num" aria-hidden="true">${i + 1}</span>
    <span class="calib-at"></span>
    <span class="calib-distance">
      <label for="${id}">Distance (m)</label>
      <input type="number" id="${id}" min="0" step="any" inputmode="decimal" required>
    </span>
    <span class="calib-result"></span>
    <button type="button" class="link-button calib-remove">Remove</button>`;
  li.querySelector(".calib-at").textContent = `Point ${i + 1}: x ${p.x}, y ${p.y} · ${kindName()} ${formatValue(p.value)}`;
  const input = li.querySelector("input");
  input.value = p.distance;
  input.addEventListener("input", () => {
    p.distance = input.value;
    p.result = null;
    li.querySelector(".calib-result").textContent = "";
    input.removeAttribute("aria-invalid");
    if (state.calibration) els.calibSummary.textContent = "Points changed: fit again to update the calibration.";
  });
  const remove = li.querySelector(".calib-remove");
  remove.setAttribute("aria-label", `Remove point ${i + 1}`);
  remove.addEventListener("click", () => {
    points.splice(i, 1);
    renderPoints();
    (els.calibPoints.querySelector("input") || els.calibRun).focus();
  });
  if (result) {
    const res = li.querySelector(".calib-result");
    // A robust fit (four points or more) tells which points it set aside.
    const outlier = Number.isFinite(result.weight) && result.weight < 0.5 ? " · outlier" : "";
    res.textContent = `fit ${formatMetres(result.predicted)} · residual ${signed(result.residual)} m${outlier}`;
    Object.assign(res.dataset, { predicted: String(result.predicted), residual: String(result.residual) });
  }
  return li;
}

function signed(v) {
  if (!Number.isFinite(v)) return String(v);
  const text = Math.abs(v) < 10 ? v.toFixed(3) : v.toFixed(1);
  // An exact fit prints as 0.000, not as "-0.000" from a rounding error's sign.
  if (Number(text) === 0) return text.replace("-", "");
  return v > 0 ? `+${text}` : text;
}

function renderPoints() {
  els.calibPoints.replaceChildren(...points.map(pointRow));
  els.calibPoints.hidden = !points.length;
  setMarks({ points });
}

/** Add a known point at an image pixel (a click or Enter on the depth map while calibrating). */
export async function addKnownPoint(px) {
  hideError();
  const values = await depthValues().catch(() => null);
  if (!values) {
    showCalibError("No depth values", "The depth values could not be read; try again once the depth map is shown.");
    return;
  }
  pointsKey = values.key;
  points.push({ x: px.x, y: px.y, value: valueAt(values, px.x, px.y), distance: "", result: null });
  renderPoints();
  els.calibPoints.lastElementChild?.querySelector("input")?.focus();
  const missing = Math.max(0, 2 - points.length);
  els.calibHelp.textContent = missing
    ? `Point ${points.length} added. Type its distance, then click ${missing} more point${missing > 1 ? "s" : ""}.`
    : `Point ${points.length} added. Type its distance; add more points or fit.`;
}

function validate() {
  if (points.length < 2) {
    return ["Too few points", `A calibration needs at least two known points; click ${2 - points.length} more on either image.`];
  }
  for (const [i, p] of points.entries()) {
    const d = Number(p.distance);
    if (String(p.distance).trim() === "" || !Number.isFinite(d) || d <= 0) {
      const input = els.calibPoints.children[i]?.querySelector("input");
      return ["Distance missing", `Type the distance of point ${i + 1} in metres, a number above 0.`, input];
    }
  }
  return null;
}

function failure(err) {
  if (err instanceof ApiError && err.status === 422) {
    return ["Calibration refused", err.detail || "The server refused these points."];
  }
  if (err instanceof ApiError && (err.status === 404 || err.status === 405)) {
    return ["Calibration unavailable", "This server has no /v1/calibration; update depthlite on the server."];
  }
  if (err instanceof ApiError && err.status === 0) {
    return ["Can’t reach the server", "The request did not get through. Check that depthlite serve is still running."];
  }
  return ["Calibration failed", err?.detail || err?.message || "The server could not fit these points."];
}

function describeFit(cal) {
  const space = cal.space === "linear" ? "metric output" : kindName();
  const method = cal.method ? ` (${String(cal.method).replace(/_/g, " ")})` : "";
  const rms = Number.isFinite(cal.rms) ? `; RMS residual ${cal.rms.toFixed(3)} m` : "";
  return `Calibrated from ${cal.points.length} points: scale ${formatValue(cal.scale)}, shift ${formatValue(cal.shift)} on the ${space}${method}${rms}. Point at either image to read metres.`;
}

/** Fit the points on the server; show residuals or the refusal. */
export async function runFit() {
  hideError();
  const invalid = validate();
  if (invalid) {
    showCalibError(...invalid);
    return;
  }
  const mine = ++seq;
  const key = valuesKey();
  const fitted = [...points];
  const payload = {
    model: els.model.value || undefined,
    kind: currentKind(),
    points: fitted.map((p) => ({ x: p.x, y: p.y, value: p.value, distance: Number(p.distance) })),
    fit: els.calibFit.value,
  };
  els.calibRun.disabled = true;
  els.calibSummary.textContent = "Fitting…";
  try {
    const answer = await postJson("/v1/calibration", payload);
    if (mine !== seq) return;
    fitted.forEach((p, i) => {
      p.result = answer.points?.[i] ?? null;
    });
    setCalibration({ ...answer, key, requestedFit: payload.fit, known: payload.points });
    els.calibSummary.textContent = describeFit(answer);
  } catch (err) {
    if (mine !== seq) return;
    setCalibration(null); // the refused points no longer match the old fit
    for (const p of fitted) p.result = null;
    els.calibSummary.textContent = "";
    showCalibError(...failure(err));
  } finally {
    if (mine === seq) els.calibRun.disabled = false;
    renderPoints();
  }
}

function clearPoints() {
  seq += 1;
  points = [];
  hideError();
  els.calibSummary.textContent = "";
  els.calibRun.disabled = false;
  if (state.calibration) setCalibration(null);
  renderPoints();
}

function setCalibrating(active) {
  els.calibrateToggle.setAttribute("aria-pressed", String(active));
  els.calibration.hidden = !active && !points.length && !state.calibration;
  els.stage.dataset.calibrating = String(active);
  els.calibrateToggle.textContent = active ? "Done adding points" : "Calibrate in metres";
  if (active) {
    // Points are picked on the side-by-side images.
    const side = document.querySelector('input[name="view"][value="side"]');
    if (side && !side.checked) side.click();
    els.calibration.hidden = false;
    if (!points.length) {
      els.calibHelp.textContent =
        "Click two or more points on either image whose distance from the camera you know, then type each distance in metres.";
    }
  }
}

// The same pixels under another model or network input have other values: read them again,
// and refit if there was a fit.
async function rereadPoints() {
  if (!points.length) return;
  const refit = Boolean(state.calibration) && state.calibration.key !== valuesKey();
  const values = await depthValues().catch(() => null);
  if (!values) return;
  pointsKey = values.key;
  hideError(); // about the old values
  for (const p of points) {
    p.value = valueAt(values, p.x, p.y);
    p.result = null;
  }
  renderPoints();
  if (refit) runFit();
}

els.calibrateToggle.addEventListener("click", () => setCalibrating(!isCalibrating()));
els.calibRun.addEventListener("click", runFit);
els.calibClear.addEventListener("click", clearPoints);
on(EVENTS.image, () => {
  clearPoints();
  setCalibrating(false);
});
on(EVENTS.depth, () => {
  if (points.length && pointsKey !== valuesKey()) rereadPoints();
});

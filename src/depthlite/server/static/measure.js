// depthlite web UI: the depth probe. Point at either image (or move a cursor with the arrow
// keys) to read the model's value there, in metres once calibrated; click or Enter pins it, or
// adds a known point while calibrating.

import { ApiError } from "./api.js";
import { addKnownPoint, activeCalibration, isCalibrating } from "./calibrate.js";
import { EVENTS, els, on } from "./dom.js";
import { showError } from "./errors.js";
import { clientToPixel, gridSize, setMarks } from "./marks.js";
import "./scalebar.js"; // the legend in metres: it follows the calibration events
import {
  currentKind,
  depthValues,
  formatMetres,
  formatValue,
  kindName,
  loadedValues,
  toMetres,
  valueAt,
} from "./values.js";

let hover = null; // the pixel under the pointer or the keyboard cursor
let pinned = null; // the last clicked pixel
let keyCursor = null; // the keyboard cursor, kept while the depth map has focus
let loadFailed = false;

function idleText() {
  return activeCalibration()
    ? "Point at either image to read the distance in metres."
    : "Point at either image to read the depth value there.";
}

/** What one pixel says: {value, metres, text}. */
export function describePixel(values, px) {
  const value = valueAt(values, px.x, px.y);
  const calibration = activeCalibration();
  const at = `x ${px.x}, y ${px.y}`;
  if (calibration) {
    const metres = toMetres(calibration, value);
    return { value, metres, text: `${at} · ${formatMetres(metres)} (${kindName()} ${formatValue(value)})` };
  }
  const unit = currentKind() === "metric_depth" ? " m" : "";
  return { value, metres: unit ? value : null, text: `${at} · ${kindName()} ${formatValue(value)}${unit}` };
}

function setReadout(text, px = null, info = null) {
  const el = els.probeReadout;
  el.textContent = text;
  for (const key of ["x", "y", "value", "metres"]) delete el.dataset[key];
  if (px && info) {
    el.dataset.x = String(px.x);
    el.dataset.y = String(px.y);
    el.dataset.value = String(info.value);
    if (info.metres != null) el.dataset.metres = String(info.metres);
  }
}

async function ensureValues() {
  if (loadedValues()) return loadedValues();
  setReadout("Reading the depth values…");
  try {
    const values = await depthValues();
    loadFailed = false;
    return values;
  } catch (err) {
    if (err?.name === "AbortError") return null;
    loadFailed = true;
    setReadout("The depth values could not be read.");
    showError(err instanceof ApiError ? err : new ApiError(0, "network", ""), () => {
      loadFailed = false;
      update();
    });
    return null;
  }
}

/** Refresh the readout and markers for the hovered (else the pinned) pixel. */
export async function update({ announce = false } = {}) {
  setMarks({ cursor: hover, pin: pinned });
  const px = hover || pinned;
  if (!px) {
    setReadout(idleText());
    return;
  }
  if (loadFailed) return;
  const values = loadedValues() || (await ensureValues());
  if (!values || px !== (hover || pinned)) return; // moved on meanwhile; that call shows it
  const info = describePixel(values, px);
  setReadout(info.text, px, info);
  if (announce) els.probeAnnounce.textContent = info.text;
}

function act(px) {
  if (isCalibrating()) {
    addKnownPoint(px);
    return;
  }
  pinned = px;
  update({ announce: true });
}

function bindPointer(wrap) {
  wrap.addEventListener("pointermove", (event) => {
    const px = clientToPixel(wrap, event.clientX, event.clientY);
    if (px?.x === hover?.x && px?.y === hover?.y) return;
    hover = px;
    update();
  });
  wrap.addEventListener("pointerleave", () => {
    hover = document.activeElement === els.depthWrap ? keyCursor : null;
    update();
  });
  wrap.addEventListener("click", (event) => {
    const px = clientToPixel(wrap, event.clientX, event.clientY);
    if (px) act(px);
  });
}

const KEY_STEPS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

function bindKeyboard() {
  const wrap = els.depthWrap;
  const startCursor = () => {
    const { width, height } = gridSize();
    if (!width || !height) return false;
    keyCursor ??= pinned || hover || { x: Math.floor(width / 2), y: Math.floor(height / 2) };
    return true;
  };
  // A click focuses the map too; only other focus (Tab) shows the keyboard cursor at once.
  let pressed = false;
  wrap.addEventListener("pointerdown", () => {
    pressed = true;
  });
  wrap.addEventListener("focus", () => {
    const byPointer = pressed;
    pressed = false;
    if (byPointer || !startCursor()) return;
    hover = keyCursor;
    update({ announce: true });
  });
  wrap.addEventListener("blur", () => {
    hover = null;
    update();
  });
  wrap.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && pinned) {
      pinned = null;
      update();
      event.preventDefault();
      return;
    }
    const step = KEY_STEPS[event.key];
    if (!(step || event.key === "Enter" || event.key === " ") || !startCursor()) return;
    const { width, height } = gridSize();
    if (step) {
      // One pixel per press is too slow on a photo: 1% of the side, 10% with Shift.
      const size = Math.max(width, height) * (event.shiftKey ? 0.1 : 0.01);
      const n = Math.max(1, Math.round(size));
      keyCursor = {
        x: Math.min(width - 1, Math.max(0, keyCursor.x + step[0] * n)),
        y: Math.min(height - 1, Math.max(0, keyCursor.y + step[1] * n)),
      };
      hover = keyCursor;
      update({ announce: true });
    } else {
      act(keyCursor);
    }
    event.preventDefault();
  });
}

bindPointer(els.depthWrap);
bindPointer(els.originalWrap);
bindKeyboard();

on(EVENTS.image, () => {
  hover = pinned = keyCursor = null;
  loadFailed = false;
  els.measure.hidden = true;
  setMarks({ cursor: null, pin: null });
  setReadout(idleText());
});
on(EVENTS.depth, () => {
  els.measure.hidden = false;
  loadFailed = false;
  update();
});
on(EVENTS.calibration, () => update());

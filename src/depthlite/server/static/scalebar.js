// depthlite web UI: the legend in metres once calibrated: the distances at both ends of the
// colour bar and ticks at round distances in between (the map is linear in the model's value,
// so equal steps in metres are not equally spaced).

import { activeCalibration } from "./calibrate.js";
import { EVENTS, els, on } from "./dom.js";
import { formatMetres, fromMetres, loadedValues, nearIsLarger, toMetres } from "./values.js";

const MIN_GAP = 0.12; // ticks closer than this fraction of the bar (or to its ends) are dropped
const STEPS = [1, 2, 5];

// The bar runs from the farthest value (left, palette index 0) to the nearest (right), as
// the colour PNG is min-max scaled: value at a fraction f of the bar.
function barValue(values, f) {
  const lo = nearIsLarger() ? values.min : values.max;
  const hi = nearIsLarger() ? values.max : values.min;
  return lo + f * (hi - lo);
}

function barFraction(values, value) {
  const f = (value - values.min) / (values.max - values.min);
  return nearIsLarger() ? f : 1 - f;
}

function niceDistances(near, far) {
  const out = [];
  for (let exp = Math.floor(Math.log10(near)); exp <= Math.ceil(Math.log10(far)); exp += 1) {
    for (const step of STEPS) {
      const m = step * 10 ** exp;
      if (m > near && m < far) out.push(Number(m.toPrecision(3)));
    }
  }
  return out;
}

function ticks(values, cal) {
  // The metres the bar spans: its ends, or the part of it inside the fit's horizon.
  const span = [];
  for (let i = 0; i <= 64; i += 1) {
    const m = toMetres(cal, barValue(values, i / 64));
    if (Number.isFinite(m)) span.push(m);
  }
  if (span.length < 2) return [];
  const chosen = [];
  for (const m of niceDistances(Math.min(...span), Math.max(...span))) {
    const f = barFraction(values, fromMetres(cal, m));
    if (!(f > MIN_GAP && f < 1 - MIN_GAP)) continue;
    if (chosen.some((t) => Math.abs(t.f - f) < MIN_GAP)) continue;
    chosen.push({ m, f });
  }
  return chosen.sort((a, b) => a.f - b.f);
}

function endLabel(el, word, metres) {
  el.replaceChildren(word);
  if (metres === undefined) return;
  const strong = document.createElement("strong");
  // Past the fit's horizon (1/d <= 0) the end of the bar is "infinitely" far.
  strong.textContent = Number.isFinite(metres) ? formatMetres(metres) : "∞";
  strong.title = Number.isFinite(metres) ? "" : formatMetres(metres);
  el.append(" ", strong);
  el.dataset.metres = String(metres);
}

export function renderScale() {
  const cal = activeCalibration();
  const values = loadedValues();
  const ok = cal && values && values.max > values.min;
  els.legend.dataset.calibrated = String(Boolean(ok));
  delete els.legendFar.dataset.metres;
  delete els.legendNear.dataset.metres;
  if (!ok) {
    endLabel(els.legendFar, "far");
    endLabel(els.legendNear, "near");
    els.legendTicks.replaceChildren();
    return;
  }
  endLabel(els.legendFar, "far", toMetres(cal, barValue(values, 0)));
  endLabel(els.legendNear, "near", toMetres(cal, barValue(values, 1)));
  els.legendTicks.replaceChildren(
    ...ticks(values, cal).map(({ m, f }) => {
      const tick = document.createElement("span");
      tick.className = "tick";
      tick.style.left = `${(f * 100).toFixed(2)}%`;
      tick.textContent = `${Number(m.toPrecision(3))} m`; // round by construction: no padding zeros
      tick.dataset.metres = String(m);
      return tick;
    }),
  );
}

on(EVENTS.calibration, renderScale);
on(EVENTS.depth, renderScale);
on(EVENTS.image, renderScale);

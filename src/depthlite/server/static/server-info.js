// depthlite web UI: what the server runs (/v1/models) and offers (its OpenAPI enums).

import { ApiError, api, getKey } from "./api.js";
import { els, escapeHtml, loadPrefs, state } from "./dom.js";
import { showKeyForm } from "./errors.js";

const FALLBACK_COLORMAPS = ["inferno"];

const RESIZE_LABELS = { keep_aspect: "Keep aspect ratio", square: "Square" };
// Server-Timing stages in pipeline order; anything else the server sends is shown after them.

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
  const chosen = els.model.value;
  return (
    models.find((m) => m && chosen && m.name === chosen) ||
    models.find((m) => m && m.default === true) ||
    models[0] ||
    null
  );
}

// The picker lists what the server loaded (GET /v1/models), each with its licence; the choice
// goes with every request as ?model= and is remembered in this browser.
function fillModels(data) {
  const models = (Array.isArray(data?.models) ? data.models : []).filter((m) => m && m.name);
  if (!models.length) return;
  const names = models.map((m) => m.name);
  const labels = Object.fromEntries(
    models.map((m) => [m.name, m.licence && !m.licence.commercial ? `${m.name} (non-commercial)` : m.name]),
  );
  const fallback = models.find((m) => m.default)?.name;
  fillSelect(els.model, names, [loadPrefs().model, els.model.value, fallback].find((v) => v && names.includes(v)), labels);
  els.model.disabled = models.length < 2;
  els.model.dataset.ready = "true";
}

function renderLicence(model) {
  const lic = model?.licence;
  if (!lic) {
    els.modelLicence.textContent = "";
    return;
  }
  const use = lic.commercial ? "commercial use allowed" : "non-commercial use only";
  els.modelLicence.textContent = `${lic.spdx} · ${use}`;
  els.modelLicence.title = [model.description, lic.note].filter(Boolean).join(" — ");
  els.modelLicence.dataset.commercial = String(Boolean(lic.commercial));
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

export async function loadModels(poll = 0) {
  clearTimeout(state.warmupTimer);
  try {
    const res = await api("/v1/models");
    const data = await res.json();
    fillModels(data);
    const model = pickModel(data);
    renderModel(model, data);
    renderLicence(model);
    state.models = data;
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

export async function loadOptions(modelsData) {
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

export function showChosenModel() {
  const model = pickModel(state.models);
  renderModel(model, state.models);
  renderLicence(model);
}

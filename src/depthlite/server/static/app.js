// depthlite web UI: the photo flow (pick, estimate, show, download) and the page's wiring.
// Vanilla ES modules, no dependencies, same-origin requests only.

import { ApiError, depthRequest, getKey, setKey } from "./api.js";
import {
  DOWNLOAD_NAMES,
  EVENTS,
  els,
  emit,
  escapeHtml,
  fileStem,
  formatBytes,
  formatMs,
  loadPrefs,
  revoke,
  savePrefs,
  saveBlob,
  state,
} from "./dom.js";
import { clearError, setStatus, showError } from "./errors.js";
import "./measure.js"; // the depth probe and calibration: they follow the events emitted here
import { sampleScene } from "./scene.js";
import { loadModels, loadOptions, showChosenModel } from "./server-info.js";
import { parseServerTiming, renderTiming, updateLegend } from "./timing.js";
import { showView3d } from "./view3d.js";

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
  emit(EVENTS.image);
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
    await updateLegend(blob);
    if (seq !== state.seq) return;
    emit(EVENTS.depth, { width, height });
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
  const cacheKey = `${format}:${resize}:${els.model.value}`;
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
  els.viewSide.hidden = view !== "side";
  els.viewCompare.hidden = view !== "compare";
  els.view3d.hidden = view !== "3d";
  for (const radio of document.querySelectorAll('input[name="view"]')) radio.checked = radio.value === view;
  if (view === "3d") showView3d();
}

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
  els.model.addEventListener("change", () => {
    savePrefs({ model: els.model.value });
    showChosenModel();
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
      // The 3D view costs a request per image: a new visit starts in a 2D view.
      if (radio.value !== "3d") savePrefs({ view: radio.value });
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

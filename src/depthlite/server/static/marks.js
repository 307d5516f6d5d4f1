// depthlite web UI: image pixels <-> screen positions on the side-by-side images, and the
// markers drawn over both (the probe's cursor, a pinned point, the calibration's known points).

import { els } from "./dom.js";

const marks = { cursor: null, pin: null, points: [] };

/** The depth map's pixel grid (the same as the original's, EXIF orientation applied). */
export function gridSize() {
  return { width: els.depthImg.naturalWidth, height: els.depthImg.naturalHeight };
}

// Where the picture sits inside an <img> laid out with object-fit: contain (it may be
// letterboxed when max-height limits the element), in client coordinates.
function contentBox(img, width, height) {
  const rect = img.getBoundingClientRect();
  if (!width || !height || !rect.width || !rect.height) return null;
  const scale = Math.min(rect.width / width, rect.height / height);
  return {
    left: rect.left + (rect.width - width * scale) / 2,
    top: rect.top + (rect.height - height * scale) / 2,
    scale,
  };
}

/** The integer image pixel {x, y} under a client point of a wrap's image, or null outside. */
export function clientToPixel(wrap, clientX, clientY) {
  const { width, height } = gridSize();
  const box = contentBox(wrap.querySelector("img"), width, height);
  if (!box) return null;
  // Pixel i covers [i, i + 1): floor, not round, names the pixel under the pointer.
  const x = Math.floor((clientX - box.left) / box.scale);
  const y = Math.floor((clientY - box.top) / box.scale);
  return x >= 0 && y >= 0 && x < width && y < height ? { x, y } : null;
}

/** The centre of an image pixel in a wrap's own coordinates (for markers), or null. */
function pixelToWrap(wrap, x, y) {
  const { width, height } = gridSize();
  const box = contentBox(wrap.querySelector("img"), width, height);
  if (!box) return null;
  const origin = wrap.getBoundingClientRect();
  return { left: box.left - origin.left + (x + 0.5) * box.scale, top: box.top - origin.top + (y + 0.5) * box.scale };
}

function layerOf(wrap) {
  let layer = wrap.querySelector(":scope > .marks");
  if (!layer) {
    layer = document.createElement("div");
    layer.className = "marks";
    layer.setAttribute("aria-hidden", "true"); // the readout and the points list say it in words
    wrap.append(layer);
  }
  return layer;
}

function mark(wrap, px, className, label = "") {
  const at = pixelToWrap(wrap, px.x, px.y);
  if (!at) return null;
  const el = document.createElement("span");
  el.className = `mark ${className}`;
  el.style.left = `${at.left}px`;
  el.style.top = `${at.top}px`;
  if (label) el.textContent = label;
  return el;
}

export function renderMarks() {
  for (const wrap of [els.depthWrap, els.originalWrap]) {
    const items = [
      ...marks.points.map((p, i) => mark(wrap, p, "mark-known", String(i + 1))),
      marks.pin && mark(wrap, marks.pin, "mark-pin"),
      marks.cursor && mark(wrap, marks.cursor, "mark-cursor"),
    ];
    layerOf(wrap).replaceChildren(...items.filter(Boolean));
  }
}

/** Change some markers ({cursor}, {pin}, {points}) and redraw. */
export function setMarks(patch) {
  Object.assign(marks, patch);
  renderMarks();
}

// The images change size with the window and the layout: keep the markers on their pixels.
new ResizeObserver(() => renderMarks()).observe(els.depthImg);
els.depthImg.addEventListener("load", () => renderMarks());

// depthlite web UI: the latency breakdown (Server-Timing) and the legend (the PNG's palette).

import { els, formatMs } from "./dom.js";

// Server-Timing stages in pipeline order; anything else the server sends is shown after them.
const STAGES = ["queue", "decode", "preprocess", "inference", "postprocess", "encode"];

const TOTAL_NAMES = new Set(["total", "server", "app"]);

export function parseServerTiming(header) {
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

export function renderTiming(metrics, elapsed) {
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

export async function updateLegend(blob) {
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

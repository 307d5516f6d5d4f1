// depthlite web UI, Live tab: webcam frames to WS /v1/live, colour depth frames back.
// Backpressure: exactly one frame in flight; the next is captured when the answer arrives.

import { getKey } from "./api.js";

const MAX_WIDTH = 480; // frames are scaled down before sending: depth runs at 256 px anyway
const JPEG_QUALITY = 0.8;
const FPS_WINDOW = 10; // answers averaged for the frame rate
const BUSY_RETRY_MS = 250;

const $ = (id) => document.getElementById(id);
const els = {
  tabs: [$("tab-photo"), $("tab-live")],
  photo: $("main"),
  live: $("live"),
  toggle: $("live-toggle"),
  colormap: $("live-colormap"),
  photoColormap: $("colormap"),
  status: $("live-status"),
  error: $("live-error"),
  errorTitle: $("live-error-title"),
  errorDetail: $("live-error-detail"),
  video: $("live-video"),
  canvas: $("live-canvas"),
  fps: $("live-fps"),
  latency: $("live-latency"),
  server: $("live-server"),
  dropped: $("live-dropped"),
};

const grab = document.createElement("canvas");
const live = {
  stream: null,
  ws: null,
  running: false,
  sentAt: 0,
  answers: [], // arrival times of the last FPS_WINDOW answers
  frames: 0,
  retryTimer: null,
};

// ---------------------------------------------------------------- tabs

function selectTab(tab) {
  for (const t of els.tabs) {
    const selected = t === tab;
    t.setAttribute("aria-selected", String(selected));
    t.tabIndex = selected ? 0 : -1;
  }
  const isLive = tab.id === "tab-live";
  els.photo.hidden = isLive;
  els.live.hidden = !isLive;
  if (isLive) copyColormaps();
  else stop("Camera stopped.");
}

function bindTabs() {
  for (const tab of els.tabs) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
      const next = els.tabs[(els.tabs.indexOf(tab) + 1) % els.tabs.length];
      next.focus();
      selectTab(next);
    });
  }
}

function copyColormaps() {
  // The Photo tab fills its select from the server; reuse that list and choice.
  const source = els.photoColormap;
  if (!source || source.options.length <= els.colormap.options.length) return;
  els.colormap.replaceChildren(...[...source.options].map((o) => new Option(o.text, o.value)));
  els.colormap.value = source.value;
}

// ---------------------------------------------------------------- status

function setStatus(text) {
  els.status.textContent = text;
}

function showError(title, detail) {
  els.errorTitle.textContent = title;
  els.errorDetail.textContent = detail || "";
  els.error.hidden = false;
}

function clearError() {
  els.error.hidden = true;
}

function showStats(header) {
  const now = performance.now();
  live.answers.push(now);
  if (live.answers.length > FPS_WINDOW) live.answers.shift();
  const span = (live.answers.at(-1) - live.answers[0]) / 1000;
  if (live.answers.length > 1 && span > 0) {
    els.fps.textContent = ((live.answers.length - 1) / span).toFixed(1);
  }
  els.latency.textContent = `${Math.round(now - live.sentAt)} ms`;
  els.server.textContent = `${Math.round(header.timings.total)} ms`;
  els.dropped.textContent = String(header.dropped);
}

// ---------------------------------------------------------------- frames

function sendFrame() {
  live.retryTimer = null;
  const { ws, running } = live;
  if (!running || !ws || ws.readyState !== WebSocket.OPEN) return;
  const video = els.video;
  if (!video.videoWidth) {
    requestAnimationFrame(sendFrame);
    return;
  }
  const width = Math.min(video.videoWidth, MAX_WIDTH);
  const height = Math.round((video.videoHeight * width) / video.videoWidth);
  grab.width = width;
  grab.height = height;
  grab.getContext("2d").drawImage(video, 0, 0, width, height);
  grab.toBlob(
    (blob) => {
      if (!blob || !live.running || live.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      live.sentAt = performance.now();
      ws.send(blob);
    },
    "image/jpeg",
    JPEG_QUALITY,
  );
}

async function drawAnswer(buffer) {
  const size = new DataView(buffer).getUint32(0);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, size)));
  const jpeg = new Blob([new Uint8Array(buffer, 4 + size)], { type: "image/jpeg" });
  const bitmap = await createImageBitmap(jpeg);
  const canvas = els.canvas;
  if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  live.frames += 1;
  els.canvas.dataset.frames = String(live.frames);
  showStats(header);
}

function onText(message) {
  if (message.type === "busy") {
    setStatus("The server is busy; retrying…");
    live.retryTimer = setTimeout(sendFrame, BUSY_RETRY_MS);
    return;
  }
  if (message.type === "error") {
    if (message.code === "unauthorized") {
      showError("API key required", "Enter the server's API key in the Photo tab, then start again.");
    } else {
      showError("The server could not process a frame", message.detail);
    }
    if (message.seq !== undefined) live.retryTimer = setTimeout(sendFrame, BUSY_RETRY_MS);
  }
}

function onMessage(event) {
  if (typeof event.data === "string") {
    onText(JSON.parse(event.data));
    return;
  }
  drawAnswer(event.data)
    .then(() => {
      if (live.running) setStatus("Live.");
      sendFrame();
    })
    .catch((err) => {
      showError("Could not show a depth frame", String(err));
      sendFrame();
    });
}

// ---------------------------------------------------------------- start / stop

function socketUrl() {
  const url = new URL("/v1/live", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("colormap", els.colormap.value);
  const model = document.getElementById("model")?.value;
  if (model) url.searchParams.set("model", model);
  const key = getKey();
  if (key) url.searchParams.set("key", key);
  return url;
}

function openSocket() {
  const ws = new WebSocket(socketUrl());
  ws.binaryType = "arraybuffer";
  ws.addEventListener("open", () => {
    setStatus("Connected; waiting for the first depth frame…");
    sendFrame();
  });
  ws.addEventListener("message", onMessage);
  ws.addEventListener("close", (event) => {
    if (live.ws !== ws) return;
    const wasRunning = live.running;
    stop();
    if (wasRunning && event.code !== 1000) {
      if (els.error.hidden) showError("The live connection closed", event.reason || `code ${event.code}`);
      setStatus("Stopped.");
    }
  });
  live.ws = ws;
}

async function start() {
  clearError();
  if (!navigator.mediaDevices?.getUserMedia) {
    showError("No camera access", "This browser does not offer cameras to this page (it needs HTTPS or localhost).");
    return;
  }
  setStatus("Asking for the camera…");
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
  } catch (err) {
    showError("The camera is not available", err?.message || String(err));
    setStatus("Camera stopped.");
    return;
  }
  els.video.srcObject = live.stream;
  await els.video.play().catch(() => {});
  live.running = true;
  live.answers = [];
  els.toggle.textContent = "Stop camera";
  els.toggle.setAttribute("aria-pressed", "true");
  openSocket();
}

function stop(message) {
  live.running = false;
  clearTimeout(live.retryTimer);
  const ws = live.ws;
  live.ws = null;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "stopped");
  for (const track of live.stream?.getTracks() || []) track.stop();
  live.stream = null;
  els.video.srcObject = null;
  els.toggle.textContent = "Start camera";
  els.toggle.setAttribute("aria-pressed", "false");
  if (message) setStatus(message);
}

function bindControls() {
  els.toggle.addEventListener("click", () => (live.running ? stop("Camera stopped.") : start()));
  els.colormap.addEventListener("change", () => {
    if (live.ws?.readyState === WebSocket.OPEN) {
      live.ws.send(JSON.stringify({ colormap: els.colormap.value }));
    }
  });
  // Closing or hiding the tab frees the camera and the server's connection at once.
  window.addEventListener("pagehide", () => stop());
}

bindTabs();
bindControls();

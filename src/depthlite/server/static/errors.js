// depthlite web UI: the status line, readable errors with retries, the API-key prompt.

import { getKey } from "./api.js";
import { els, state } from "./dom.js";

export function setStatus(html) {
  els.status.innerHTML = html;
}

function describeError(err) {
  const code = (err.code || "").toLowerCase();
  const detail = err.detail;
  switch (err.status) {
    case 0:
      return ["Can’t reach the server", "The request did not get through. Check that depthlite serve is still running, then try again."];
    case 401:
      return getKey()
        ? ["API key not accepted", "The server rejected this API key. Enter a valid one below the image picker."]
        : ["API key required", detail || "This server needs an API key. Enter it below the image picker."];
    case 403:
      return ["Access denied", detail || "The server refused this request."];
    case 413:
      return ["Image too large", detail || "The image is larger than this server accepts. Try a smaller one."];
    case 415:
      return ["Not an image", detail || "This file is not an image the server can read. Try a PNG, JPEG or WebP."];
    case 422:
      if (/param|option|invalid_(?!image)|colormap|format|resize|valid/.test(code) || (!code && /colormap|format|resize/.test(detail))) {
        return ["Invalid option", detail || "The server did not accept one of the options."];
      }
      return ["Couldn’t read this image", detail || "The file looks damaged or is not a complete image."];
    case 429:
      return ["Too many requests", detail || "Slow down a little and try again."];
    case 503:
      if (code === "not_ready") return ["Model still loading", detail || "The server is warming up. Try again in a moment."];
      if (code === "shutting_down") return ["Server restarting", detail || "The server is shutting down. Try again shortly."];
      if (code === "model_unavailable") return ["Model unavailable", detail || "The server could not load its model."];
      return ["Server busy", detail || "The server is busy with other images. Try again in a moment."];
    default:
      if (err.status >= 500) {
        return ["Server error", detail || `The server failed to process the image (HTTP ${err.status}).`];
      }
      return ["Request failed", detail || `The server answered HTTP ${err.status}.`];
  }
}

export function clearError() {
  clearInterval(state.retryTimer);
  state.retryTimer = null;
  els.error.hidden = true;
  els.retry.hidden = true;
  els.retry.onclick = null;
}

export function showError(err, retry) {
  clearError();
  const [title, detail] = describeError(err);
  els.errorTitle.textContent = title;
  els.errorDetail.textContent = detail;
  els.error.dataset.status = String(err.status);
  els.error.hidden = false;
  setStatus("");

  if (err.status === 401) {
    state.pendingAfterKey = retry;
    showKeyForm(Boolean(getKey()));
    return;
  }
  // Retrying only helps when the server or the network was the problem, not the file.
  const transient =
    (err.status === 0 || err.status === 429 || err.status >= 500) && err.code !== "model_unavailable";
  if (!retry || !transient) return;
  els.retry.hidden = false;
  els.retry.onclick = () => {
    clearError();
    retry();
  };
  let wait = err.status === 503 ? (err.retryAfter ?? 0) : 0;
  if (wait > 0) {
    const tick = () => {
      els.retry.textContent = wait > 0 ? `Try again (${wait} s)` : "Try again";
      if (wait <= 0) clearInterval(state.retryTimer);
      wait -= 1;
    };
    tick();
    state.retryTimer = setInterval(tick, 1000);
  } else {
    els.retry.textContent = "Try again";
  }
}

export function showKeyForm(rejected) {
  els.keyForm.hidden = false;
  els.keyText.textContent = rejected
    ? "That key was not accepted. Enter another one; it stays in this tab only."
    : "This server asks for an API key. It is kept in this tab only (session storage) and sent as a Bearer token.";
  if (rejected) els.keyInput.value = "";
  els.keyInput.focus();
}

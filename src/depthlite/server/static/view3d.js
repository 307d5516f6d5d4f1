// depthlite web UI: the 3D view. The server's point cloud (format=ply: metres with the
// calibration's known points, else relative units) drawn with three.js, which is vendored in
// /static/vendor/three and imported only when this view opens. Orbit, zoom and pan with the
// mouse, touch or keyboard; point size; "Download PLY" saves the very bytes on screen.

import { ApiError, depthRequest } from "./api.js";
import { DOWNLOAD_NAMES, EVENTS, els, formatBytes, on, saveBlob, state } from "./dom.js";
import { showError } from "./errors.js";
import { activeCalibration } from "./calibrate.js";
import { currentKind } from "./values.js";

const MAX_POINTS = 400_000; // a stride keeps the cloud smooth to orbit on an integrated GPU
const KEY_ANGLE = Math.PI / 36; // 5 degrees per arrow key press

let viewer = null; // {THREE, renderer, scene, camera, controls, points, home}
let viewerFailed = null;
let shown = null; // {key, blob, info}
let seq = 0;

function setInfo(text) {
  els.view3dInfo.textContent = text;
}

/** The query of the PLY request for the current image, settings and calibration. */
function plyQuery() {
  const { naturalWidth: w, naturalHeight: h } = els.depthImg;
  const stride = Math.max(1, Math.ceil(Math.sqrt((w * h) / MAX_POINTS)));
  const extra = [["stride", String(stride)]];
  const cal = activeCalibration();
  for (const p of cal?.known || []) extra.push(["known", `${p.x},${p.y}=${p.distance}`]);
  if (cal && cal.requestedFit !== "auto") extra.push(["fit", cal.requestedFit]);
  const fov = Number(els.fov.value);
  if (els.fov.value.trim() && Number.isFinite(fov) && fov > 0 && fov < 180) extra.push(["fov", String(fov)]);
  return { extra, stride, metres: Boolean(cal) || currentKind() === "metric_depth" };
}

/** The header of a PLY file: {vertices, comments, format}. */
function plyHeader(buffer) {
  const head = new TextDecoder("latin1").decode(new Uint8Array(buffer, 0, Math.min(buffer.byteLength, 4096)));
  const end = head.indexOf("end_header");
  if (!head.startsWith("ply") || end < 0) throw new ApiError(500, "bad_response", "The server’s point cloud is not a PLY file.");
  const lines = head.slice(0, end).split(/\r?\n/);
  const vertex = lines.find((l) => l.startsWith("element vertex "));
  return {
    vertices: vertex ? Number(vertex.split(" ")[2]) : 0,
    comments: lines.filter((l) => l.startsWith("comment ")).map((l) => l.slice(8)),
    format: (lines.find((l) => l.startsWith("format ")) || "").slice(7),
  };
}

async function createViewer() {
  const THREE = await import("three");
  const { OrbitControls } = await import("three/addons/controls/OrbitControls.js");
  const { PLYLoader } = await import("three/addons/loaders/PLYLoader.js");
  let renderer;
  try {
    // preserveDrawingBuffer: the picture stays readable after a frame (screenshots, tests).
    renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  } catch {
    throw new Error("This browser cannot draw 3D here (WebGL is off or unavailable). Download the PLY and open it in MeshLab, Blender or Open3D.");
  }
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  renderer.setClearColor(new THREE.Color(getComputedStyle(els.view3dHost).getPropertyValue("--view3d-bg").trim() || "#202027"));
  renderer.domElement.setAttribute("aria-hidden", "true"); // the host element is the labelled widget
  els.view3dHost.append(renderer.domElement);
  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(50, 1, 0.01, 1000);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.addEventListener("change", () => draw());
  const v = { THREE, PLYLoader, renderer, scene, camera, controls, points: null, home: null };
  new ResizeObserver(() => resize(v)).observe(els.view3dHost);
  return v;
}

function resize(v) {
  const { clientWidth: w, clientHeight: h } = els.view3dHost;
  if (!w || !h) return;
  v.renderer.setSize(w, h, false);
  v.camera.aspect = w / h;
  v.camera.updateProjectionMatrix();
  draw();
}

function draw() {
  if (viewer?.points) viewer.renderer.render(viewer.scene, viewer.camera);
}

// The middle 96 % of the points along each axis (the cloud's frame, before turning it):
// a few far points (what is left of the sky) must not shrink the rest to a speck.
function robustBox(THREE, pos) {
  const step = Math.max(1, Math.floor(pos.count / 4000));
  const min = new THREE.Vector3();
  const max = new THREE.Vector3();
  for (let axis = 0; axis < 3; axis += 1) {
    const values = [];
    for (let i = 0; i < pos.count; i += step) values.push(pos.getComponent(i, axis));
    values.sort((a, b) => a - b);
    min.setComponent(axis, values[Math.floor(values.length * 0.02)]);
    max.setComponent(axis, values[Math.min(values.length - 1, Math.floor(values.length * 0.98))]);
  }
  return new THREE.Box3(min, max);
}

// The cloud's camera sits at the origin looking along +z (y down, as image rows) or -z (y up):
// turn the first into the second so "up" is up, then start a little to the side of the
// photo's own viewpoint, where the depth shows.
function frame(v, geometry) {
  const { THREE } = v;
  const box = robustBox(THREE, geometry.getAttribute("position"));
  const forward = box.getCenter(new THREE.Vector3()).z > 0;
  v.points.rotation.set(forward ? Math.PI : 0, 0, 0);
  v.points.updateMatrixWorld();
  const target = v.points.localToWorld(box.getCenter(new THREE.Vector3()));
  const radius = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 1e-6);
  const offset = new THREE.Vector3(0, 0, 0).sub(target);
  if (offset.length() < radius * 0.5) offset.set(0, 0, radius);
  const spherical = new THREE.Spherical().setFromVector3(offset);
  spherical.theta += Math.PI / 7;
  spherical.phi -= Math.PI / 14;
  // Far enough back for the bulk of the cloud to fit the narrower field of view.
  const aspect = Math.max(els.view3dHost.clientWidth, 1) / Math.max(els.view3dHost.clientHeight, 1);
  const half = THREE.MathUtils.degToRad(v.camera.fov / 2);
  const narrow = aspect >= 1 ? half : Math.atan(Math.tan(half) * aspect);
  spherical.radius = Math.max(spherical.radius, 0.8 * radius / Math.sin(narrow));
  // Near and far planes from the whole cloud, so zooming out never clips its outliers.
  geometry.computeBoundingSphere();
  const whole = geometry.boundingSphere.radius + geometry.boundingSphere.center.length();
  v.camera.near = radius / 1000;
  v.camera.far = Math.max(whole, radius) * 20;
  v.camera.updateProjectionMatrix();
  v.home = { target, position: new THREE.Vector3().setFromSpherical(spherical).add(target) };
  resetView();
}

export function resetView() {
  if (!viewer?.home) return;
  viewer.controls.target.copy(viewer.home.target);
  viewer.camera.position.copy(viewer.home.position);
  viewer.controls.update();
  draw();
}

function clearCloud(v) {
  if (!v?.points) return;
  v.scene.remove(v.points);
  v.points.geometry.dispose();
  v.points.material.dispose();
  v.points = null;
  v.renderer.clear();
}

function showCloud(v, buffer) {
  const geometry = new v.PLYLoader().parse(buffer);
  clearCloud(v);
  const material = new v.THREE.PointsMaterial({
    size: pointSize(),
    sizeAttenuation: false, // the slider sets pixels on screen, the same near and far
    vertexColors: geometry.hasAttribute("color"),
  });
  v.points = new v.THREE.Points(geometry, material);
  v.scene.add(v.points);
  frame(v, geometry);
  resize(v);
}

function pointSize() {
  return Number(els.pointSize.value) * (window.devicePixelRatio || 1);
}

function describe(info, query, blob) {
  // The file says what its numbers are ("units: metres" or "units: relative units (...)").
  const stated = info.comments.find((c) => c.startsWith("units:"));
  const metres = stated ? /^units:\s*metres/.test(stated) : query.metres;
  const unit = metres ? "metres" : "relative units";
  const calibrate = unit === "relative units" ? "; calibrate for metres" : "";
  const stride = query.stride > 1 ? ` (one pixel in ${query.stride} × ${query.stride})` : "";
  return `${info.vertices.toLocaleString("en")} points${stride} in ${unit}${calibrate} · ${formatBytes(blob.size)} PLY`;
}

/** Show the point cloud of the current image and calibration, fetching it if needed. */
export async function showView3d() {
  if (!state.file || !state.depthBlob) {
    setInfo("Choose an image first: its point cloud appears here.");
    return;
  }
  const query = plyQuery();
  const key = `ply:${els.resize.value}:${els.model.value}:${JSON.stringify(query.extra)}`;
  if (shown?.key === key && viewer?.points) {
    resize(viewer);
    return;
  }
  const mine = ++seq;
  const file = state.file;
  els.view3dHost.setAttribute("aria-busy", "true");
  els.plyDownload.disabled = true;
  setInfo("Building the point cloud…");
  try {
    if (viewerFailed) throw viewerFailed;
    viewer ??= await createViewer().catch((err) => {
      viewerFailed = err;
      throw err;
    });
    let blob = state.extras.get(key);
    if (!blob) {
      const res = await depthRequest("ply", { extra: query.extra });
      blob = await res.blob();
      if (state.file !== file) return;
      state.extras.set(key, blob);
    }
    if (mine !== seq) return;
    const buffer = await blob.arrayBuffer();
    const info = plyHeader(buffer);
    showCloud(viewer, buffer);
    shown = { key, blob, info };
    els.plyDownload.disabled = false;
    els.view3dHost.dataset.points = String(info.vertices);
    setInfo(describe(info, query, blob));
  } catch (err) {
    if (mine !== seq) return;
    if (err instanceof ApiError) {
      setInfo("The point cloud could not be made.");
      showError(err, showView3d);
    } else {
      setInfo(err?.message || "The 3D view could not start.");
    }
  } finally {
    if (mine === seq) els.view3dHost.removeAttribute("aria-busy");
  }
}

function orbit(dTheta, dPhi, zoom) {
  const { THREE, camera, controls } = viewer;
  const offset = camera.position.clone().sub(controls.target);
  const s = new THREE.Spherical().setFromVector3(offset);
  s.theta += dTheta;
  s.phi = Math.min(Math.PI - 1e-3, Math.max(1e-3, s.phi + dPhi));
  s.radius *= zoom;
  camera.position.copy(controls.target).add(new THREE.Vector3().setFromSpherical(s));
  controls.update();
}

function pan(dx, dy) {
  const { THREE, camera, controls } = viewer;
  const distance = camera.position.distanceTo(controls.target) * 0.05;
  const move = new THREE.Vector3().setFromMatrixColumn(camera.matrix, 0).multiplyScalar(dx * distance);
  move.add(new THREE.Vector3().setFromMatrixColumn(camera.matrix, 1).multiplyScalar(dy * distance));
  camera.position.add(move);
  controls.target.add(move);
  controls.update();
}

const KEYS = {
  ArrowLeft: [-1, 0],
  ArrowRight: [1, 0],
  ArrowUp: [0, -1],
  ArrowDown: [0, 1],
};

function onKey(event) {
  if (!viewer?.points) return;
  const dir = KEYS[event.key];
  if (dir && event.shiftKey) pan(-dir[0], -dir[1]);
  else if (dir) orbit(-dir[0] * KEY_ANGLE, dir[1] * KEY_ANGLE, 1);
  else if (event.key === "+" || event.key === "=") orbit(0, 0, 0.85);
  else if (event.key === "-" || event.key === "_") orbit(0, 0, 1 / 0.85);
  else if (event.key === "0" || event.key === "Home") resetView();
  else return;
  event.preventDefault();
}

function setPointSize() {
  const value = Number(els.pointSize.value);
  els.pointSize.setAttribute("aria-valuetext", `${value} pixel${value === 1 ? "" : "s"}`);
  if (!viewer?.points) return;
  viewer.points.material.size = pointSize();
  draw();
}

function visible() {
  return !els.view3d.hidden;
}

els.view3dHost.addEventListener("keydown", onKey);
els.view3dReset.addEventListener("click", resetView);
els.pointSize.addEventListener("input", setPointSize);
els.fov.addEventListener("change", () => visible() && showView3d());
els.plyDownload.addEventListener("click", () => {
  if (shown) saveBlob(shown.blob, DOWNLOAD_NAMES.ply(state.stem));
});
on(EVENTS.image, () => {
  seq += 1;
  shown = null;
  clearCloud(viewer);
  els.plyDownload.disabled = true;
  delete els.view3dHost.dataset.points;
  setInfo("");
});
on(EVENTS.depth, () => {
  // Until the server offers point clouds (format=ply), there is no 3D view to choose.
  const formats = Array.isArray(state.models?.formats) ? state.models.formats : [];
  els.view3dOption.hidden = !formats.includes("ply");
  if (visible()) showView3d();
});
on(EVENTS.calibration, () => visible() && showView3d());

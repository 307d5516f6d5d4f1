"""Issue 13, requirement 1: the latency of one request, stage by stage, exact and fast.

    python benchmarks/pipeline.py [--repeats 15] [--configs ort-int8-keep,ov-int8-keep,...]
                                  [--no-agreement] [--threads N] [--bands auto|on|off]

For each configuration (backend, precision, resize) and preprocess path (exact, the default;
fast, ``fast_preprocess=True``): the network alone on its input, and the whole pipeline a user
waits for, as ``depthlite bench``'s ``pipe`` column measures it (1920x1080 JPEG bytes in, colour
PNG bytes out), with the median of every stage of that pipeline. Network and pipeline runs are
alternated, so a drift of the machine affects both alike. Synthetic weights of the official
MiDaS small layout (as ``depthlite bench --synthetic``: latency does not depend on the values).

Then the fast path's deviation from the exact one on real photos (scikit-image's astronaut,
chelsea, coffee and the Middlebury motorcycle, as JPEG bytes at their own size and scaled up to
1920 wide, where the reduced JPEG decoding applies): the mean difference of the network input
in 8-bit levels (independent of the weights), AbsRel after scale-and-shift alignment
(``depthlite.metrics.agreement``, as ``depthlite quantize`` reports) and the largest absolute
difference after that alignment, as a share of the exact map's range; with INT8 against FP32
on the same photos and weights for scale (random weights exaggerate both).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthlite import parallel
from depthlite.bench.runner import (
    BenchOptions,
    _available,
    _model_files,
    _synthetic_checkpoint,
    machine,
    natural_looking_image,
)
from depthlite.colorize import normalize_minmax, palette
from depthlite.estimator import DepthEstimator
from depthlite.imageio import load_image
from depthlite.imageio.png import encode_indexed
from depthlite.imageio.reduced import load_reduced
from depthlite.metrics import agreement
from depthlite.transforms import InputPolicy, preprocess
from depthlite.zoo import get_card

MODEL = "midas_v21_small_256"
CONFIGS = {
    "ort-fp32-keep": ("onnxruntime", "fp32", "keep_aspect"),
    "ort-fp32-square": ("onnxruntime", "fp32", "square"),
    "ort-int8-keep": ("onnxruntime", "int8", "keep_aspect"),
    "ort-int8-square": ("onnxruntime", "int8", "square"),
    "ov-int8-keep": ("openvino", "int8", "keep_aspect"),
    "ov-bf16-square": ("openvino", "bf16", "square"),
}
STAGES = ("decode", "preprocess", "inference", "postprocess", "colour", "png")


def _one_request(est: DepthEstimator, data: bytes) -> dict[str, float]:
    """JPEG bytes -> colour PNG bytes, as ``predict`` + ``encode(["color"])``; ms per stage."""
    start = time.perf_counter()
    prepared = est.prepare(data)
    result = est.complete(prepared, est.run_network(prepared))
    t0 = time.perf_counter()
    gray = normalize_minmax(result.display_depth, bits=1)
    t1 = time.perf_counter()
    encode_indexed(gray, palette("inferno"))
    t2 = time.perf_counter()
    stages = dict(result.timings)
    stages.update(colour=(t1 - t0) * 1e3, png=(t2 - t1) * 1e3, total=(t2 - start) * 1e3)
    return stages


def _measure(est: DepthEstimator, data: bytes, repeats: int) -> dict[str, Any]:
    x = est.prepare(data).network_input
    for _ in range(3):  # warm-up: the first runs of a shape are slow
        est.infer(x)
        _one_request(est, data)
    network, runs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        est.infer(x)
        network.append((time.perf_counter() - start) * 1e3)
        runs.append(_one_request(est, data))
    med = {k: statistics.median(r[k] for r in runs) for k in (*STAGES, "total")}
    return {"input": tuple(x.shape[2:]), "network": statistics.median(network), **med}


def _photos() -> dict[str, np.ndarray]:
    from skimage import data as skdata

    photos = {
        "astronaut": skdata.astronaut(),
        "chelsea": skdata.chelsea(),
        "coffee": skdata.coffee(),
        "motorcycle": skdata.stereo_motorcycle()[0],
    }
    return {k: np.ascontiguousarray(v[..., :3]) for k, v in photos.items()}


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


def _input_levels(data: bytes) -> float:
    """Mean |fast - exact| of the network input, in 8-bit levels (no normalisation)."""
    policy = InputPolicy.for_card(get_card(MODEL), "keep_aspect", normalize=False)
    exact = preprocess(load_image(data), policy)
    reduced, _ = load_reduced(data, policy.network_size)
    return float(np.abs(preprocess(reduced, policy, fast=True) - exact).mean() * 255)


def _deviation(files: dict[str, Path], threads: int) -> list[tuple[str, ...]]:
    """Per photo: the fast path against the exact one (input levels, AbsRel, max abs after
    alignment / range), and INT8 against FP32 (AbsRel), both with the same weights."""

    def make(precision: str, fast: bool = False) -> DepthEstimator:
        return DepthEstimator(MODEL, precision=precision, weights=files[precision],
                              threads=threads, progress=False, fast_preprocess=fast)  # fmt: skip

    exact, fast, int8 = make("fp32"), make("fp32", True), make("int8")
    rows = []
    for name, rgb in _photos().items():
        scale = 1920 / rgb.shape[1]
        big = cv2.resize(rgb, (1920, round(rgb.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)
        for label, image in (("own", rgb), ("1920w", big)):
            data = _jpeg(image)
            ref, cand = exact.predict(data).depth, fast.predict(data).depth
            score = agreement(cand, ref)
            aligned = score.scale * cand.astype(np.float64) + score.shift
            max_abs = float(np.abs(aligned - ref).max() / np.ptp(ref))
            q8 = agreement(int8.predict(data).depth, ref).absrel
            size = f"{label} {image.shape[1]}x{image.shape[0]}"
            rows.append((name, size, f"{_input_levels(data):.2f}", f"{score.absrel:.4f}",
                         f"{max_abs:.4f}", f"{q8:.4f}"))  # fmt: skip
    return rows


def _print_machine() -> None:
    info = machine()
    print(f"machine: {info['cpu']}, {info['logical_cpus']} logical CPUs, flags "
          f"{' '.join(info['cpu_flags']) or '-'}; onnxruntime {info['onnxruntime']}")  # fmt: skip
    with open("/proc/loadavg", encoding="ascii") as f:
        print(f"load average: {' '.join(f.read().split()[:3])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated, of: "
                    + ", ".join(CONFIGS))  # fmt: skip
    ap.add_argument("--no-agreement", action="store_true", help="skip the deviation table")
    ap.add_argument("--bands", choices=("auto", "on", "off"), default="auto",
                    help="row bands on the helper pool: auto (when the load average leaves a "
                    "core idle, the library's rule), or forced on / off for an A/B")  # fmt: skip
    args = ap.parse_args()
    if args.bands != "auto":
        forced = args.bands == "on"
        parallel.idle_core = lambda: forced
    _print_machine()
    with tempfile.TemporaryDirectory(prefix="depthlite-pipeline-") as tmp:
        work = Path(tmp)
        opts = BenchOptions(("onnxruntime", "openvino"), ("fp32", "int8"), synthetic=True)
        files = _model_files(opts, _synthetic_checkpoint(MODEL, work))
        data = _jpeg(natural_looking_image(1080, 1920))
        head = f"{'config':17} {'path':5} {'input':>8} {'net':>6} {'pipe':>6} {'ratio':>5}"
        print(head + "".join(f" {s[:7]:>7}" for s in STAGES) + "   (ms, medians)")
        for key in args.configs.split(","):
            backend, precision, resize = CONFIGS[key]
            reason = _available(backend, precision)
            if reason is not None:
                print(f"{key:17} skipped: {reason}")
                continue
            for fast in (False, True):
                est = DepthEstimator(MODEL, backend, precision, resize=resize,
                                     threads=args.threads, weights=files[precision],
                                     progress=False, fast_preprocess=fast)  # fmt: skip
                m = _measure(est, data, args.repeats)
                size = "x".join(map(str, m["input"]))
                print(f"{key:17} {'fast' if fast else 'exact':5} {size:>8} {m['network']:6.1f} "
                      f"{m['total']:6.1f} {m['total'] / m['network']:5.2f}"
                      + "".join(f" {m[s]:7.2f}" for s in STAGES))  # fmt: skip
                est.close()
        if not args.no_agreement:
            print("\nfast vs exact (ORT fp32), and int8 vs fp32 for scale; synthetic weights")
            print(f"  {'photo':11} {'size':15} {'input lv':>8} {'AbsRel':>7} {'max/rng':>7} "
                  f"{'int8 AbsRel':>11}")  # fmt: skip
            for name, size, *values in _deviation(files, args.threads or 1):
                print(f"  {name:11} {size:15} {values[0]:>8} {values[1]:>7} {values[2]:>7} "
                      f"{values[3]:>11}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Issue 13, requirement 2: images/s of the whole pipeline at 1 core against every core.

    python benchmarks/throughput.py [--images 24] [--rounds 3] [--precision fp32,int8]
        [--backend onnxruntime,openvino] [--layouts 1:1,auto]

Makes ``--images`` 1920x1080 JPEGs (``natural_looking_image``, a different crop each), and
synthetic MiDaS small weights (converted and quantized like the real ones: the same graph,
so the same speed). Each layout ``THREADS:WORKERS`` ("auto": what ``depthlite
predict`` picks for many images here; "1cpu": ``1:1`` in a process whose CPU affinity is one
core, so nothing of it can run on another) runs in its own process, the rounds alternating the
layouts; a process loads the model, warms up on one image, then times the colour PNGs of all
images (decode to written file, ``depthlite.pipeline.depth_files`` as ``predict`` runs it).
Printed: images/s (median over rounds), each layout's ratio to the first, CPU time per image
and cores kept busy (CPU time / wall time), and peak RSS (VmHWM) of the process; the machine
(CPU model, vector flags, load average) first. ``1:1`` is the sequential loop of one single-threaded
session: the 1-core baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2


def _machine() -> str:
    model, flags = "?", set()
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    wanted = sorted(f for f in flags if f == "avx2" or f.startswith(("avx512", "amx")))
    load = os.getloadavg()
    return (
        f"{model}, {len(os.sched_getaffinity(0))} cores, flags: {' '.join(wanted) or 'none'}; "
        f"load average {load[0]:.1f}"
    )


def _images(folder: Path, count: int) -> list[Path]:
    from depthlite.bench.runner import PHOTO_SIZE, natural_looking_image

    height, width = PHOTO_SIZE
    big = natural_looking_image(height + count * 7, width + count * 11)
    paths = []
    for index in range(count):
        crop = big[index * 7 : index * 7 + height, index * 11 : index * 11 + width]
        path = folder / f"photo_{index:03d}.jpg"
        cv2.imwrite(
            str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        paths.append(path)
    return paths


def _model_file(precision: str, work: Path) -> Path:
    from depthlite.bench.runner import BenchOptions, _model_files, _synthetic_checkpoint

    opts = BenchOptions(backends=["onnxruntime"], precisions=[precision], synthetic=True)
    return _model_files(opts, _synthetic_checkpoint(opts.model, work))[precision]


PINNED = "1cpu"


def _layout(text: str, count: int) -> Any:
    from depthlite.pipeline import Layout, plan_layout

    if text == PINNED:
        return Layout(1, 1)
    if text == "auto":
        return plan_layout(None, None, count)
    threads, workers = (int(part) for part in text.split(":"))
    return Layout(threads, workers)


def child(config: dict[str, Any]) -> None:
    """One timed run, in this process; prints one JSON line."""
    if config["layout"] == PINNED:  # before anything starts a thread
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from depthlite.estimator import DepthEstimator
    from depthlite.imageio import OutputRequest
    from depthlite.pipeline import ImageTask, depth_files

    paths = [Path(p) for p in config["images"]]
    layout = _layout(config["layout"], len(paths))
    est = DepthEstimator(
        backend=config["backend"], precision=config["precision"], resize="keep_aspect",
        threads=layout.threads, weights=config["weights"], progress=False,
    )  # fmt: skip
    est.load()
    est.predict(paths[0])  # per-shape set-up of the session is not what is measured
    out = Path(config["out"])
    tasks = [ImageTask(str(p), p, out, Path(p.stem)) for p in paths]
    request = OutputRequest(formats=("color",))
    start, cpu = time.perf_counter(), _cpu_seconds()
    with depth_files(est, tasks, request, layout) as outcomes:
        failed = [str(o.error) for o in outcomes if o.error is not None]
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    if failed:
        raise SystemExit(f"failed: {failed[0]}")
    with open("/proc/self/status") as f:
        hwm = int(next(line.split()[1] for line in f if line.startswith("VmHWM")))
    print(json.dumps({"seconds": seconds, "cpu": cpu, "images": len(paths), "hwm_mb": hwm / 1024}))


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _run_child(config: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _configurations(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [(b, p) for b in args.backend.split(",") for p in args.precision.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--precision", default="fp32,int8")
    parser.add_argument("--layouts", default="1:1,auto", help="THREADS:WORKERS,...")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    print(f"machine: {_machine()}", flush=True)
    layouts = args.layouts.split(",")
    with tempfile.TemporaryDirectory(prefix="depthlite-throughput-") as tmp:
        work = Path(tmp)
        (work / "out").mkdir()
        images = [str(p) for p in _images(work, args.images)]
        for backend, precision in _configurations(args):
            weights = str(_model_file(precision, work))
            runs: dict[str, list[dict[str, Any]]] = {layout: [] for layout in layouts}
            for _ in range(args.rounds):
                for layout in layouts:
                    config = {
                        "backend": backend, "precision": precision, "weights": weights,
                        "layout": layout, "images": images, "out": str(work / "out"),
                    }  # fmt: skip
                    runs[layout].append(run := _run_child(config))
                    rate = run["images"] / run["seconds"]
                    print(f"  ({backend} {precision} {layout}: {rate:.2f} images/s)", flush=True)
            _print(backend, precision, layouts, runs)


def _print(
    backend: str, precision: str, layouts: list[str], runs: dict[str, list[dict[str, Any]]]
) -> None:
    rates = {name: [r["images"] / r["seconds"] for r in rs] for name, rs in runs.items()}
    base = statistics.median(rates[layouts[0]])
    print(f"{backend} {precision} keep_aspect, whole pipeline (1080p JPEG -> colour PNG):")
    for name in layouts:
        rate = statistics.median(rates[name])
        hwm = max(r["hwm_mb"] for r in runs[name])
        spread = ", ".join(f"{v:.2f}" for v in rates[name])
        # CPU per image shows what a layout costs besides the work; busy cores = cpu / wall.
        cpu = statistics.median(r["cpu"] / r["images"] * 1000 for r in runs[name])
        busy = statistics.median(r["cpu"] / r["seconds"] for r in runs[name])
        print(
            f"  {name:8s} {rate:6.2f} images/s ({spread})  x{rate / base:.2f}  "
            f"CPU {cpu:.0f} ms/image, {busy:.2f} cores busy  peak RSS {hwm:.0f} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()

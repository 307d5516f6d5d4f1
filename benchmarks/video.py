"""Issue 5's two measurements: flicker of the temporal normaliser, and video throughput.

    python benchmarks/video.py [--backend onnxruntime] [--precision fp32] [--seconds 10]

1. Flicker: the generated depth clip of ``depthlite.bench.clips`` (slow pan, outliers, a scene
   cut) scaled per frame (official) and by the temporal normaliser; mean absolute
   frame-to-frame change of the colour frames (the cut itself not counted), and frames until
   the mapping has re-adapted after the cut.
2. Throughput: a generated 640x480 clip with audio through ``depthlite video`` (the CLI in a
   child process; its frames/s is the frame loop's, after the model is loaded, and the wall
   time is reported too), against the network alone on the same frame size, same backend and
   precision, measured alternately in the same run (``--rounds`` times each; medians).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from depthlite.bench.clips import depth_clip, flicker, readaptation
from depthlite.estimator import DepthEstimator
from depthlite.normalize import NormalizerOptions, TemporalNormalizer, scale_levels
from depthlite.transforms import preprocess
from depthlite.video import probe
from depthlite.video.ffmpeg import FrameReader, ffmpeg_executable

SIZE = (640, 480)
FPS = 30


def measure_flicker() -> None:
    clip = depth_clip()
    results = {}
    for name, options in (
        ("per-frame", NormalizerOptions(mode="per-frame")),
        ("temporal", NormalizerOptions()),
    ):
        norm = TemporalNormalizer(options)
        levels, ranges = [], []
        for depth in clip.frames:
            frame = norm.update(depth)
            ranges.append((frame.lo, frame.hi))
            levels.append(scale_levels(depth, frame.lo, frame.hi, 1))
        settled = readaptation(
            ranges, clip, lambda d: tuple(float(v) for v in np.percentile(d, (2, 98)))
        )
        results[name] = (flicker(levels, "inferno", (clip.cut,)), settled, norm.cuts)
    print(f"flicker clip: {len(clip.frames)} frames, cut at frame {clip.cut}")
    for name, (value, settled, cuts) in results.items():
        print(f"  {name:9s} flicker {value:6.2f} / 255   cuts {cuts}   re-adapted after {settled}")
    ratio = results["per-frame"][0] / results["temporal"][0]
    print(f"  per-frame / temporal flicker: {ratio:.1f}x (target >= 3x)")


def make_clip(path: Path, seconds: int) -> None:
    args = [ffmpeg_executable(), "-hide_banner", "-v", "error", "-y", "-f", "lavfi"]
    args += ["-i", f"testsrc2=size={SIZE[0]}x{SIZE[1]}:rate={FPS}:duration={seconds}"]
    args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    args += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)]
    subprocess.run(args, check=True)


def _first_frame(clip: Path) -> np.ndarray:
    reader = FrameReader(clip, probe(clip))
    frame = reader.read()
    reader.close()
    assert frame is not None
    return frame


def network_fps(est: DepthEstimator, x: np.ndarray, runs: int, callers: int) -> float:
    """Frames/s of the network alone: ``callers`` threads each running ``runs`` inferences."""
    est.infer(x)

    def loop() -> None:
        for _ in range(runs):
            est.infer(x)

    threads = [threading.Thread(target=loop) for _ in range(callers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return runs * callers / (time.perf_counter() - start)


def video_fps(
    clip: Path, out: Path, weights: Path, args: argparse.Namespace
) -> tuple[float, float]:
    command = [sys.executable, "-m", "depthlite.cli.main", "video", str(clip), "-o", str(out)]
    command += ["--weights", str(weights), "--backend", args.backend]
    command += ["--precision", args.precision]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    match = re.search(r"(\d+) frames -> .*, ([\d.]+) frames/s", done.stderr)
    assert match, done.stderr
    return float(match.group(2)), int(match.group(1)) / wall


def measure_throughput(args: argparse.Namespace, work: Path) -> None:
    from depthlite.models.synthetic import synthetic_checkpoint
    from depthlite.runtime.base import default_threads

    checkpoint = synthetic_checkpoint(work / "synthetic_midas_v21_small_256.pt")
    cores = default_threads()
    # The network's best throughput: all cores on each frame, or one frame per core.
    setups = {f"{cores} threads x 1 caller": (cores, 1), f"1 thread x {cores} callers": (1, cores)}
    estimators = {}
    for name, (threads, _) in setups.items():
        est = DepthEstimator(
            weights=checkpoint, backend=args.backend, precision=args.precision, threads=threads
        )
        est.load()
        estimators[name] = est
    weights_file = next(iter(estimators.values())).model_file.path  # no re-conversion
    clip = work / "clip.mp4"
    make_clip(clip, args.seconds)
    frames = args.seconds * FPS
    x = preprocess(_first_frame(clip), next(iter(estimators.values())).input_policy())
    net: dict[str, list[float]] = {name: [] for name in setups}
    loop, wall = [], []
    for _ in range(args.rounds):
        for name, (_, callers) in setups.items():
            net[name].append(network_fps(estimators[name], x, frames // callers // 2, callers))
        loop_fps, wall_fps = video_fps(clip, work / "depth.mp4", weights_file, args)
        loop.append(loop_fps)
        wall.append(wall_fps)
    best_name = max(net, key=lambda name: statistics.median(net[name]))
    best = statistics.median(net[best_name])
    med_loop = statistics.median(loop)
    print(
        f"throughput: {args.backend} {args.precision}, {SIZE[0]}x{SIZE[1]} clip ({x.shape[2]}x"
        f"{x.shape[3]} network input), {frames} frames, audio; {args.rounds} alternating rounds"
    )
    for name, values in net.items():
        print(
            f"  network only, {name:22s} {statistics.median(values):6.1f} frames/s   "
            f"rounds {_fmt(values)}"
        )
    print(f"  depthlite video (frame loop)          {med_loop:6.1f} frames/s   rounds {_fmt(loop)}")
    print(
        f"  depthlite video (wall clock)          {statistics.median(wall):6.1f} frames/s   "
        f"rounds {_fmt(wall)}  (process start, model load, encode to the end)"
    )
    print(f"  video / best network-only ({best_name}): {med_loop / best:.2f}x (target >= 0.8x)")


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    measure_flicker()
    if not args.skip_throughput:
        with tempfile.TemporaryDirectory() as tmp:
            measure_throughput(args, Path(tmp))


if __name__ == "__main__":
    main()

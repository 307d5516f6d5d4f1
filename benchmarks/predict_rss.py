"""Peak RSS (VmHWM) and wall time of `depthlite predict` on the bench's 1920x1080 JPEG.

    DEPTHLITE_HOME=/tmp/bench-home python benchmarks/predict_rss.py MODEL fp32,int8 [BACKEND] [RUNS]

Generated weights of the official layout (as `depthlite bench --synthetic`); conversions and
quantizations are cached in DEPTHLITE_HOME, so the first run of a model makes them (and peaks
higher: not a figure to quote) and later runs measure `predict` alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from depthlite.bench.runner import (
    _RSS_WRAPPER,
    PHOTO_SIZE,
    BenchOptions,
    _model_files,
    _synthetic_checkpoint,
    natural_looking_image,
)


def main() -> None:
    model, precisions = sys.argv[1], sys.argv[2].split(",")
    backend = sys.argv[3] if len(sys.argv) > 3 else "onnxruntime"
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    work = Path(tempfile.gettempdir()) / "depthlite-predict-rss"
    work.mkdir(exist_ok=True)
    checkpoint = _synthetic_checkpoint(model, work)
    opts = BenchOptions(backends=[backend], precisions=precisions, model=model)
    files = _model_files(opts, checkpoint)
    photo = work / "photo1080.jpg"
    if not photo.exists():
        rgb = natural_looking_image(*PHOTO_SIZE)
        cv2.imwrite(str(photo), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    for precision in precisions:
        for run in range(runs):
            out = Path(tempfile.mkdtemp())
            env = dict(os.environ, DEPTHLITE_BENCH_RSS=str(out / "rss"))
            cmd = [sys.executable, "-c", _RSS_WRAPPER, "predict", str(photo), "-o", str(out),
                   "--model", model, "--backend", backend, "--precision", precision,
                   "--weights", str(files[precision]), "-q"]  # fmt: skip
            start = time.perf_counter()
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - start
            if done.returncode:
                sys.exit(done.stderr[-2000:])
            peak = int((out / "rss").read_text()) / 1024
            print(f"{model} {backend} {precision} run {run}: {peak:.1f} MiB, {wall:.2f} s")


if __name__ == "__main__":
    main()

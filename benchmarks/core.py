"""Core benchmark: network latency, torch eager (the seed's way) vs ONNX Runtime, and the peak
RSS of ``depthlite predict`` on a 1920x1080 JPEG.

    python benchmarks/core.py --threads 2 --repeats 50

Weights are synthetic (official layout, deterministic values): latency and memory do not depend
on the values, and the official files cannot be downloaded everywhere.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np


def interleaved_ms(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 5, block: int = 5
) -> dict[str, tuple[float, float]]:
    """(median, p95) wall time in ms of each function, timed in alternating blocks.

    Alternating keeps slow drifts of a shared machine (other tenants, thermal) from landing on
    one side of the ratio.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    while min(len(v) for v in samples.values()) < repeats:
        for name, fn in fns.items():
            for _ in range(block):
                start = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - start) * 1000.0)
    result = {}
    for name, values in samples.items():
        values.sort()
        result[name] = (statistics.median(values), values[int(0.95 * (len(values) - 1))])
    return result


def natural_looking_image(height: int, width: int) -> np.ndarray:
    """Smooth structure plus texture, so JPEG size and decode cost resemble a photo."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 97 + yy / 61)], axis=-1)
    noise = cv2.GaussianBlur(rng.random((height, width, 3), dtype=np.float32), (0, 0), 3)
    return np.clip((0.7 * base + 0.3 * noise) * 255, 0, 255).astype(np.uint8)


# Runs the CLI and reports the kernel's high-water mark of this process image (VmHWM). The
# rusage of a child is no good here: it counts the forked copy of this torch-laden parent.
_RSS_WRAPPER = """
import atexit, os, sys
def report():
    with open("/proc/self/status") as f:
        hwm = next(line.split()[1] for line in f if line.startswith("VmHWM"))
    with open(os.environ["DEPTHLITE_BENCH_RSS"], "w") as out:
        out.write(hwm)
atexit.register(report)
from depthlite.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def peak_rss_mb(cli_args: list[str], env: dict[str, str]) -> float:
    """Peak resident set size of one ``depthlite`` CLI run, in MB."""
    with tempfile.NamedTemporaryFile(suffix=".rss") as report:
        env = {**os.environ, **env, "DEPTHLITE_BENCH_RSS": report.name}
        subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *cli_args], env=env, check=True)
        return int(Path(report.name).read_text()) / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    import torch

    from depthlite.models.checkpoint import load_state_dict
    from depthlite.models.convert import convert_checkpoint
    from depthlite.models.midas_small import build_model
    from depthlite.models.synthetic import synthetic_checkpoint
    from depthlite.runtime.onnx import OnnxRuntimeBackend
    from depthlite.specs import get_spec

    spec = get_spec("midas_v21_small_256")
    work = Path(tempfile.mkdtemp(prefix="depthlite-bench-"))
    ckpt = synthetic_checkpoint(work / "midas_v21_small_256.pt")
    onnx_path = convert_checkpoint(ckpt, work / "model.onnx", spec)

    x = np.random.default_rng(0).uniform(-2, 2, (1, 3, 256, 256)).astype(np.float32)
    torch.set_num_threads(args.threads)
    model = build_model(spec.architecture, load_state_dict(ckpt))
    xt = torch.from_numpy(x)

    def seed_way() -> object:
        with torch.no_grad():  # the seed: eager, no_grad, one global model
            return model(xt)

    ort_backend = OnnxRuntimeBackend(onnx_path, spec, threads=args.threads)
    timed = interleaved_ms(
        {
            "torch eager no_grad (baseline)": seed_way,
            "onnxruntime fp32": lambda: ort_backend.run(x),
        },
        args.repeats,
    )
    rows = [(name, med, p95) for name, (med, p95) in timed.items()]
    base = rows[0][1]

    photo = work / "photo_1920x1080.jpg"
    cv2.imwrite(str(photo), natural_looking_image(1080, 1920)[..., ::-1])
    cli = ["predict", str(photo), "--weights", str(onnx_path), "-o", str(work / "out"), "-q"]
    env = {"DEPTHLITE_HOME": str(work / "home")}
    rss_first = peak_rss_mb(cli, env)  # optimises the graph and caches the result
    rss = statistics.median(peak_rss_mb(cli, env) for _ in range(3))

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"onnxruntime {__import__('onnxruntime').__version__}"
    )
    print(f"network 1x3x256x256, {args.threads} threads, {args.repeats} runs after 5 warm-up")
    print(f"{'backend':<34}{'median ms':>10}{'p95 ms':>10}{'x baseline':>12}")
    for name, med, p95 in rows:
        print(f"{name:<34}{med:>10.2f}{p95:>10.2f}{med / base:>12.2f}")
    print(
        "peak RSS of `depthlite predict` on a 1920x1080 JPEG (onnxruntime fp32): "
        f"{rss:.0f} MB (median of 3; first run, which optimises and caches the graph: "
        f"{rss_first:.0f} MB)"
    )


if __name__ == "__main__":
    main()

"""Orchestration: prepare model files, run every configuration in its own process, collect."""

from __future__ import annotations

import compileall
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthlite.bench.compare import run_peers, summary
from depthlite.bench.worker import WorkerConfig
from depthlite.errors import BackendUnavailableError
from depthlite.options import BACKEND_PRECISIONS, RESIZE_MODES
from depthlite.runtime.base import default_threads
from depthlite.transforms import network_size
from depthlite.zoo import DEFAULT_MODEL, get_card
from depthlite.zoo.cards import ModelCard

__all__ = ["BenchOptions", "natural_looking_image", "run_bench"]

logger = logging.getLogger(__name__)

PHOTO_SIZE = (1080, 1920)  # height, width: the "1920x1080 photo" of every target

# Runs the CLI and reports the kernel's high-water mark of the process image (VmHWM). A child's
# rusage is no good: it counts the forked copy of the parent before exec.
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


@dataclass
class BenchOptions:
    backends: Sequence[str]
    precisions: Sequence[str]
    resizes: Sequence[str] = RESIZE_MODES
    repeats: int = 30
    threads: int = field(default_factory=default_threads)
    model: str = DEFAULT_MODEL
    weights: Path | None = None  # a .pt checkpoint; None: the cached/downloaded official one
    synthetic: bool = False
    offline: bool | None = None
    peers: bool = False  # also time what a user would run instead (bench/peers.py)


def natural_looking_image(height: int, width: int) -> np.ndarray:
    """Smooth structure plus texture, so JPEG size and decode cost resemble a photo."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 97 + yy / 61)], axis=-1)
    noise = cv2.GaussianBlur(rng.random((height, width, 3), dtype=np.float32), (0, 0), 3)
    return np.clip((0.7 * base + 0.3 * noise) * 255, 0, 255).astype(np.uint8)


def baseline_input(card: ModelCard) -> tuple[int, int]:
    """The original code's usual network input: its square size for MiDaS (the seed's 256x256
    for small), and a 640x480 photo's keep-aspect input for Depth Anything (518x686)."""
    pre = card.preprocess
    if pre.resize_rule == "lower_bound":
        return network_size(480, 640, pre.size, pre.multiple_of, "keep_aspect", rule="lower_bound")
    return pre.size, pre.size


def _checkpoint(opts: BenchOptions, work: Path) -> Path:
    from depthlite import hub

    if opts.synthetic:
        return _synthetic_checkpoint(get_card(opts.model).name, work)
    return hub.resolve_checkpoint(get_card(opts.model), weights=opts.weights, offline=opts.offline)


def _synthetic_checkpoint(model: str, work: Path) -> Path:
    """The synthetic checkpoint, byte for byte the same in every run.

    ``torch.save`` to a path names the archive inside after the file, and
    ``synthetic_checkpoint`` saves through a randomly named temporary file: each run's
    checkpoint then hashed differently and every conversion and quantization (minutes, and
    14 GB for Depth Anything V2 Small's calibration) was made again instead of taken from the
    cache. Saved through a file object the archive is always called ``archive``.
    """
    import torch

    from depthlite.models.synthetic import synthetic_state_dict

    path = work / f"synthetic_{model}.pt"
    with open(path, "wb") as f:
        torch.save(synthetic_state_dict(model), f)
    return path


def _model_files(opts: BenchOptions, checkpoint: Path) -> dict[str, Path]:
    """precision -> file, made (converted, quantized) before anything is timed."""
    from depthlite.zoo.resolver import ensure_converted, ensure_quantized

    card = get_card(opts.model)
    fp32, _ = ensure_converted(card, checkpoint)
    files = {"fp32": fp32, "bf16": fp32, "checkpoint": checkpoint}
    if "int8" in opts.precisions:
        files["int8"], _ = ensure_quantized(card, fp32)
    return files


def _available(backend: str, precision: str) -> str | None:
    """None when the configuration can run here, else the reason it cannot."""
    if precision not in BACKEND_PRECISIONS[backend]:
        return "not offered by this backend"
    try:
        from depthlite.runtime.base import load_backend_class

        load_backend_class(backend)
    except BackendUnavailableError as exc:
        return str(exc)
    if backend == "openvino" and precision == "bf16":
        from depthlite.runtime.openvino import bf16_supported

        if not bf16_supported():
            return "this CPU has no native BF16 (AVX512_BF16 or AMX)"
    return None


def _run_worker(cfg: WorkerConfig, env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "depthlite.bench.worker", json.dumps(asdict(cfg))]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench worker failed for {cfg}: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "unknown error"


def _cli_run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one ``depthlite`` CLI process."""
    with tempfile.NamedTemporaryFile(suffix=".rss") as report:
        run_env = {**env, "DEPTHLITE_BENCH_RSS": report.name}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *args], env=run_env, check=True)
        wall = time.perf_counter() - start
        return wall, int(Path(report.name).read_text()) / 1024.0


def installed_bytecode() -> bool:
    """Compile depthlite's modules as ``pip install`` does; False if that was not possible.

    A cold start of an installed package reads compiled bytecode. An editable install under
    ``PYTHONDONTWRITEBYTECODE=1`` (set on the machines these figures came from) would
    instead compile every module from source on every start: 60-70 ms of MiDaS small's
    0.4 s, a cost no installed copy pays (docs/benchmarks.md, session 9). Python reads
    bytecode that exists even with that variable set.
    """
    package = Path(__file__).resolve().parents[1]
    return bool(compileall.compile_dir(package, quiet=1, workers=1))


def _cold_start(cfg: WorkerConfig, env: dict[str, str], out: Path) -> dict[str, float]:
    args = [
        "predict", cfg.image, "--model", cfg.model, "--weights", cfg.weights,
        "--backend", cfg.backend,
        "--precision", cfg.precision, "--resize", cfg.resize, "--threads", str(cfg.threads),
        "-o", str(out), "-q",
    ]  # fmt: skip
    first_wall, first_rss = _cli_run(args, env)  # fills the per-machine optimised-graph cache
    wall, rss = _cli_run(args, env)
    return {
        "cold_start_s": wall,
        "predict_peak_rss_mb": rss,
        "first_run_s": first_wall,
        "first_run_peak_rss_mb": first_rss,
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import onnxruntime

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            lines = f.readlines()
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu
        )
        flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    except OSError:
        flags = []
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return {
        "cpu": cpu,
        "cpu_flags": [flag for flag in wanted if flag in flags],
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "platform": platform.platform(),
    }


def _measure_rows(
    opts: BenchOptions,
    config: Callable[[str, str, str], WorkerConfig],
    env: dict[str, str],
    work: Path,
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One row per backend, precision and resize: measured, skipped (and why) or failed."""
    rows: list[dict[str, Any]] = []
    for backend in opts.backends:
        for precision in opts.precisions:
            reason = _available(backend, precision)
            if reason is not None:
                rows.append({"backend": backend, "precision": precision, "skipped": reason})
                continue
            for resize in opts.resizes:
                progress(f"{backend} {precision} {resize}")
                cfg = config(backend, precision, resize)
                try:
                    row = _run_worker(cfg, env)
                    row.update(_cold_start(cfg, env, work / "out"))
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    # One configuration the runtime cannot run (say, a compiler error) is
                    # a result to report, not a reason to lose the others.
                    reason = f"failed: {_last_line(str(exc))}"
                    progress(f"{backend} {precision} {resize} {reason}")
                    rows.append({"backend": backend, "precision": precision,
                                 "resize": resize, "skipped": reason,
                                 "error": str(exc)[-4000:]})  # fmt: skip
                    continue
                row.update(backend=backend, precision=precision, resize=resize)
                rows.append(row)
    return rows


def run_bench(opts: BenchOptions, progress: Callable[[str], None] = logger.info) -> dict[str, Any]:
    """Measure everything; returns a JSON-ready report."""
    with tempfile.TemporaryDirectory(prefix="depthlite-bench-") as tmp:
        work = Path(tmp)
        photo = work / "photo_1920x1080.jpg"
        cv2.imwrite(str(photo), natural_looking_image(*PHOTO_SIZE)[..., ::-1])
        progress("preparing model files (convert, quantize)")
        files = _model_files(opts, _checkpoint(opts, work))
        env = {**os.environ, "DEPTHLITE_HOME": os.environ.get("DEPTHLITE_HOME", str(work / "home"))}
        bytecode = installed_bytecode()
        if not bytecode:
            progress("could not compile depthlite's bytecode: cold starts include compiling it")
        callers = max(2, opts.threads)
        card = get_card(opts.model)
        base_input = baseline_input(card)

        def config(
            backend: str, precision: str, resize: str, baseline: bool = False
        ) -> WorkerConfig:
            weights = files["checkpoint"] if backend == "torch" else files[precision]
            reference = str(files["fp32"]) if precision != "fp32" else None
            return WorkerConfig(backend, precision, resize, str(weights), str(photo),
                                opts.threads, opts.repeats, callers, baseline,
                                reference, card.name, base_input)  # fmt: skip

        size = "x".join(map(str, base_input))
        progress(f"{card.name} baseline: torch eager, no_grad, {size} (the original code's way)")
        baseline = [_run_worker(config("torch", "fp32", "square", True), env)]
        rows = _measure_rows(opts, config, env, work, progress)
        peers = _peers(opts, card, lambda p: replace(config("torch", "fp32", "keep_aspect"),
                                                      peer=p), env, progress)  # fmt: skip
        # Measured again at the end: the reference for ratios is the median of both runs,
        # so a drift of the machine during the run does not favour either side.
        baseline.append(_run_worker(config("torch", "fp32", "square", True), env))
    base_ms = float(np.median([b["network"]["median_ms"] for b in baseline]))
    report = {"machine": machine(), "options": _options_dict(opts), "baseline_network_ms": base_ms,
              "baseline_input": list(base_input), "baseline_runs": baseline,
              "rows": rows, "bytecode_compiled": bytecode}  # fmt: skip
    if peers is not None:
        report["peers"] = peers
        report["peer_summary"] = summary(rows, peers, list(base_input))
    return report


def _peers(
    opts: BenchOptions,
    card: ModelCard,
    make: Callable[[str], WorkerConfig],
    env: dict[str, str],
    progress: Callable[[str], None],
) -> list[dict[str, Any]] | None:
    """The peer rows (each peer in its own worker, like the configurations), if asked for."""
    if not opts.peers:
        return None
    return run_peers(card, make, lambda cfg: _run_worker(cfg, env), progress)


def _options_dict(opts: BenchOptions) -> dict[str, Any]:
    data = asdict(opts)
    data["weights"] = str(opts.weights) if opts.weights else None
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

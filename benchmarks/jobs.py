"""Issue 6's measurement: 200 images through ``depthlite batch``, embedded vs Celery workers.

    python benchmarks/jobs.py [--images 200] [--size 640x480] [--chunk 8] [--rounds 2]

Starts its own ``redis-server`` on a free port and ``depthlite worker`` processes (synthetic
weights, converted once). Modes, alternated ``--rounds`` times (medians):

* local: ``depthlite batch --local`` (the model in the batch process, all cores);
* 1 worker (all cores per frame) and 2 workers (one thread each), through Redis.

Wall time of the ``batch`` command only (workers are started and warmed before). The broker
overhead per job is measured apart: ``--overhead-jobs`` jobs of one 32x32 image each through
one worker, minus the same images' compute time in the local mode.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

CLI = [sys.executable, "-m", "depthlite.cli.main"]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _photos(folder: Path, count: int, size: tuple[int, int]) -> Path:
    folder.mkdir(parents=True)
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    for index in range(count):
        rng = np.random.default_rng(index)
        base = np.stack([xs / width, ys / height, (xs + ys) / (width + height)], -1) * 200
        image = (base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)
        cv2.circle(
            image, (int(rng.integers(width)), int(rng.integers(height))), 60, (30, 90, 200), -1
        )
        cv2.imwrite(str(folder / f"photo{index:04d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return folder


class Cluster:
    """redis-server plus worker processes, all stopped at the end."""

    def __init__(self, work: Path, weights: Path) -> None:
        self.work, self.weights = work, weights
        port = _port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DEPTHLITE_")}
        self.env.update(
            DEPTHLITE_QUEUE=f"redis://127.0.0.1:{port}/0",
            DEPTHLITE_STORE=str(work / "store"),
            DEPTHLITE_HOME=str(work / "home"),
            DEPTHLITE_OFFLINE="1",
        )
        self.workers: list[subprocess.Popen[bytes]] = []
        time.sleep(0.5)

    def start_workers(self, count: int, threads: int) -> None:
        self.stop_workers()
        for index in range(count):
            log = self.work / f"worker{index}.log"
            with log.open("wb") as out:
                command = [
                    *CLI,
                    "worker",
                    "--weights",
                    str(self.weights),
                    "--threads",
                    str(threads),
                ]
                self.workers.append(subprocess.Popen(command, stdout=out, stderr=out, env=self.env))
            while b"ready." not in log.read_bytes():
                time.sleep(0.1)

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            proc.wait(timeout=30)
        self.workers = []

    def close(self) -> None:
        self.stop_workers()
        self.redis.terminate()
        self.redis.wait(timeout=10)


def batch(cluster: Cluster, inputs: Path, out: Path, *extra: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(
        [*CLI, "batch", str(inputs), "-o", str(out), "-q", *extra], check=True, env=cluster.env
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--overhead-jobs", type=int, default=40)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        from depthlite import DepthEstimator
        from depthlite.models.synthetic import synthetic_checkpoint

        est = DepthEstimator(weights=synthetic_checkpoint(work / "synthetic.pt"))
        weights = est.model_file.path
        photos = _photos(work / "photos", args.images, size)  # type: ignore[arg-type]
        tiny = _photos(work / "tiny", args.overhead_jobs, (32, 32))
        cluster = Cluster(work, weights)
        try:
            run(cluster, photos, tiny, weights, args)
        finally:
            cluster.close()


def run(
    cluster: Cluster, photos: Path, tiny: Path, weights: Path, args: argparse.Namespace
) -> None:
    local_args = ("--local", "--weights", str(weights))
    times: dict[str, list[float]] = {
        "local (embedded)": [],
        "1 worker x 2 threads": [],
        "2 workers x 1 thread": [],
    }
    for _ in range(args.rounds):
        times["local (embedded)"].append(batch(cluster, photos, cluster.work / "o", *local_args))
        cluster.start_workers(1, threads=2)
        times["1 worker x 2 threads"].append(
            batch(cluster, photos, cluster.work / "o", "--chunk", str(args.chunk))
        )
        cluster.start_workers(2, threads=1)
        times["2 workers x 1 thread"].append(
            batch(cluster, photos, cluster.work / "o", "--chunk", str(args.chunk))
        )
    cluster.start_workers(1, threads=2)
    trip, compute = job_overhead(cluster, tiny, weights)
    base = statistics.median(times["local (embedded)"])
    print(
        f"{args.images} images {args.size} JPEG -> colour PNG, chunks of {args.chunk}; "
        f"{args.rounds} rounds, medians of the batch command's wall time"
    )
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:22s} {median:6.1f} s  {args.images / median:5.1f} img/s  "
            f"{1000 * median / args.images:6.1f} ms/img  x{base / median:.2f} vs local   "
            f"rounds {' '.join(f'{v:.1f}' for v in values)}"
        )
    print(
        f"one-image jobs (32x32) sent one after another to 1 worker: round trip {trip:.1f} ms "
        f"(median of {args.overhead_jobs}); the same image's compute here {compute:.1f} ms; "
        f"queue overhead per job ~{trip - compute:.1f} ms"
    )


def job_overhead(cluster: Cluster, tiny: Path, weights: Path) -> tuple[float, float]:
    """Median round trip of a one-image job through Redis and a worker, and its compute."""
    from celery.result import AsyncResult

    from depthlite import DepthEstimator
    from depthlite.imageio import encode_outputs
    from depthlite.jobs.celery_app import make_celery
    from depthlite.jobs.protocol import TASK_NAME, QueueConfig, job_payload
    from depthlite.jobs.shared import open_store
    from depthlite.jobs.spec import JobSpec

    config = QueueConfig(cluster.env["DEPTHLITE_QUEUE"], cluster.env["DEPTHLITE_STORE"])
    celery, store = make_celery(config), open_store(config.store)
    trips = []
    for index, path in enumerate(sorted(tiny.iterdir())):
        named = path.with_name(f"000000_{path.name}")
        shutil.copyfile(path, named)
        payload = job_payload(f"tiny-{index}", JobSpec(), [named], store)
        named.unlink()
        start = time.perf_counter()
        celery.send_task(TASK_NAME, args=[payload], task_id=f"tiny-{index}")
        AsyncResult(f"tiny-{index}", app=celery).get(timeout=60)
        trips.append((time.perf_counter() - start) * 1000)
    est = DepthEstimator(weights=weights, threads=2)
    computes = []
    for path in sorted(tiny.iterdir()):
        start = time.perf_counter()
        result = est.predict(path)
        encode_outputs(result.depth, result.image, ["color"])
        computes.append((time.perf_counter() - start) * 1000)
    return statistics.median(trips), statistics.median(computes[1:])


if __name__ == "__main__":
    main()

"""--workers, and the estimator a layout of workers needs: shared by predict and batch."""

from __future__ import annotations

import argparse

from depthlite.cli.common import build_estimator, positive_int
from depthlite.estimator import DepthEstimator
from depthlite.pipeline import Layout

__all__ = ["add_workers_option", "estimator_for"]


def add_workers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="images processed at once, their stages overlapped (default for several inputs: "
        "one per core, each on one intra-op thread; with --threads, cores / threads); "
        "1: one image after another",
    )


def estimator_for(est: DepthEstimator, args: argparse.Namespace, layout: Layout) -> DepthEstimator:
    """``est`` with the layout's intra-op threads (built again if they differ; not loaded)."""
    if layout.threads == est.threads:
        return est
    options = argparse.Namespace(**{**vars(args), "threads": layout.threads})
    return build_estimator(options, progress=est.progress)

"""``depthlite bench``: measure every available backend and precision on this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthlite.cli.common import comma_list, positive_int
from depthlite.errors import EXIT_OK
from depthlite.specs import BACKENDS, DEFAULT_MODEL, PRECISIONS, RESIZE_MODES

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "bench",
        help="measure latency, throughput, memory and cold start per backend and precision",
        description="Each configuration runs in its own process. The baseline, the seed's way "
        "(torch eager, no_grad, 256x256), is measured in the same run, before and after.",
    )
    p.add_argument(
        "--backends", type=comma_list(BACKENDS, "backend"), default=BACKENDS, metavar="LIST"
    )
    p.add_argument(
        "--precisions", type=comma_list(PRECISIONS, "precision"), default=PRECISIONS, metavar="LIST"
    )
    p.add_argument(
        "--resize",
        type=comma_list(RESIZE_MODES, "resize mode"),
        default=RESIZE_MODES,
        metavar="LIST",
        help="network input policies to measure (square: 256x256; keep_aspect: the 1920x1080 "
        "photo's 128x256)",
    )
    p.add_argument("--repeats", type=positive_int, default=30, help="timed runs per measurement")
    p.add_argument("--threads", type=positive_int, help="intra-op threads (default: cores)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--weights", type=Path, metavar="PT", help="checkpoint to benchmark")
    p.add_argument("--synthetic", action="store_true",
                   help="generated weights in the official layout (no download needed; latency "
                   "and memory do not depend on the values)")  # fmt: skip
    p.add_argument("--offline", action="store_true", default=None, help="never download")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--plot", type=Path, metavar="PNG", help="also draw a chart (needs matplotlib)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from depthlite.bench.report import format_table, write_json, write_plot
    from depthlite.bench.runner import BenchOptions, run_bench

    opts = BenchOptions(backends=args.backends, precisions=args.precisions, resizes=args.resize,
                        repeats=args.repeats, model=args.model, weights=args.weights,
                        synthetic=args.synthetic, offline=args.offline)  # fmt: skip
    if args.threads:
        opts.threads = args.threads
    report = run_bench(opts, progress=lambda msg: print(f"bench: {msg}", file=sys.stderr))
    print(format_table(report))
    if args.json:
        write_json(report, args.json)
    if args.plot:
        write_plot(report, args.plot)
    return EXIT_OK

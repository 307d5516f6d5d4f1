"""``depthlite bench``: measure every available backend and precision on this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthlite.cli.common import comma_list, positive_int
from depthlite.errors import EXIT_OK, InvalidOptionError
from depthlite.options import BACKENDS, PRECISIONS, RESIZE_MODES
from depthlite.zoo import DEFAULT_MODEL, available_models, get_card

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
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME|all",
        help=f"model to measure, or all of them one after another (default {DEFAULT_MODEL})",
    )
    p.add_argument("--weights", type=Path, metavar="PT", help="checkpoint to benchmark")
    p.add_argument("--synthetic", action="store_true",
                   help="generated weights in the official layout (no download needed; latency "
                   "and memory do not depend on the values)")  # fmt: skip
    p.add_argument("--offline", action="store_true", default=None, help="never download")
    p.add_argument("--peers", action="store_true",
                   help="also time what a user would run instead, on the same photo and weights: "
                   "the original code's way (torch eager) and Hugging Face transformers (DPT, "
                   "Depth Anything V2; needs depthlite[peers])")  # fmt: skip
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--plot", type=Path, metavar="PNG", help="also draw a chart (needs matplotlib)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from depthlite.bench.report import format_table, write_json, write_plot
    from depthlite.bench.runner import BenchOptions, run_bench

    models = available_models() if args.model == "all" else [get_card(args.model).name]
    if args.weights and len(models) > 1:
        raise InvalidOptionError("--weights is one model's file: name that model with --model")
    reports = []
    for model in models:
        opts = BenchOptions(backends=args.backends, precisions=args.precisions,
                            resizes=args.resize, repeats=args.repeats, model=model,
                            weights=args.weights, synthetic=args.synthetic,
                            offline=args.offline, peers=args.peers)  # fmt: skip
        if args.threads:
            opts.threads = args.threads
        report = run_bench(opts, progress=lambda msg: print(f"bench: {msg}", file=sys.stderr))
        print(format_table(report), flush=True)
        reports.append(report)
    if args.json:
        write_json(reports[0] if len(reports) == 1 else {"models": reports}, args.json)
    if args.plot:
        write_plot(reports[0], args.plot)
    return EXIT_OK

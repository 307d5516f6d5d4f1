"""Model management: ``depthlite models``, ``download`` and ``convert``."""

from __future__ import annotations

import argparse
from pathlib import Path

from depthlite import hub
from depthlite.cli.common import add_model_options
from depthlite.errors import EXIT_OK, BackendUnavailableError
from depthlite.modelfiles import (
    ensure_converted,
    ensure_quantized,
    resolve_model_file,
    torch_available,
)
from depthlite.specs import DEFAULT_MODEL, MODELS, get_spec

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("models", help="list known models and what is cached")
    p.set_defaults(handler=run_models)

    p = sub.add_parser(
        "download",
        help="fetch a model's official checkpoint into the cache",
        description="Download and verify the official checkpoint (and with --official-onnx the "
        "official ONNX export). Cache: $DEPTHLITE_HOME or the user cache folder.",
    )
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL, help=f"default {DEFAULT_MODEL}")
    p.add_argument("--official-onnx", action="store_true", help="also fetch the official ONNX file")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_download)

    p = sub.add_parser(
        "convert",
        help="convert the official checkpoint to a dynamic-size ONNX model (needs torch)",
        description="Export the checkpoint to ONNX with dynamic height and width, verify it "
        "against the torch model, and cache it keyed by the checkpoint's SHA-256.",
    )
    add_model_options(p, runtime=False)
    p.add_argument("--force", action="store_true", help="convert again even if cached")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_convert)
    _register_quantize(sub)


def _register_quantize(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "quantize",
        help="make a static INT8 model (QDQ, per-channel) from the FP32 ONNX model",
        description="Calibrate on a folder of photos (default: scikit-image's bundled photos), "
        "cache the INT8 model keyed by its source and calibration set, and report its agreement "
        "with FP32 on photos the calibration never saw (AbsRel and delta<1.25 after "
        "least-squares scale and shift).",
    )
    add_model_options(p, runtime=False)
    p.add_argument("--calibration", type=Path, metavar="DIR", help="folder of calibration photos")
    p.add_argument("--force", action="store_true", help="quantize again even if cached")
    p.add_argument("--no-eval", action="store_true", help="skip the agreement report")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the path")
    p.set_defaults(handler=run_quantize)


def _size(num: int | None) -> str:
    return "-" if num is None else f"{num / 1e6:.1f} MB"


def run_models(args: argparse.Namespace) -> int:
    print(f"cache: {hub.cache_dir()}")
    for spec in MODELS.values():
        default = " (default)" if spec.name == DEFAULT_MODEL else ""
        print(f"\n{spec.name}{default}\n  {spec.description}")
        print(f"  input: {spec.input_size} px, sides multiple of {spec.multiple_of}; {spec.output}")
        for entry in hub.cache_status(spec):
            state = "cached" if entry.size is not None else "not cached"
            print(f"  {entry.kind:<10} {entry.name:<44} {state:<10} {_size(entry.size)}")
    derived = hub.derived_cache_status()
    if derived:
        print("\noptimised for this machine by ONNX Runtime (safe to delete):")
        for entry in derived:
            print(f"  {entry.name:<56} {_size(entry.size)}")
    return EXIT_OK


def run_download(args: argparse.Namespace) -> int:
    spec = get_spec(args.model)
    progress = not args.quiet
    print(hub.resolve_checkpoint(spec, progress=progress, force=args.force))
    if args.official_onnx:
        print(hub.resolve_official_onnx(spec, progress=progress, force=args.force))
    return EXIT_OK


def run_convert(args: argparse.Namespace) -> int:
    spec = get_spec(args.model)
    if not torch_available():
        # Say it before a download is wasted: conversion runs the torch model.
        raise BackendUnavailableError(
            "depthlite convert needs PyTorch: pip install 'depthlite[torch]'"
        )
    checkpoint = hub.resolve_checkpoint(
        spec, weights=args.weights, offline=args.offline, progress=not args.quiet
    )
    print(ensure_converted(spec, checkpoint, force=args.force))
    return EXIT_OK


def run_quantize(args: argparse.Namespace) -> int:
    spec = get_spec(args.model)
    fp32 = resolve_model_file(
        spec, "onnxruntime", weights=args.weights, offline=args.offline, progress=not args.quiet
    )
    int8 = ensure_quantized(spec, fp32.path, calibration=args.calibration, force=args.force)
    print(int8)
    if args.no_eval or args.quiet:
        return EXIT_OK
    from depthlite.estimator import DepthEstimator
    from depthlite.models.quantize import EVALUATION_PHOTOS, evaluate_agreement, sample_photos

    reference = DepthEstimator(spec.name, weights=fp32.path)
    candidate = DepthEstimator(spec.name, weights=int8)
    scores = evaluate_agreement(
        lambda rgb: reference.predict(rgb).depth,
        lambda rgb: candidate.predict(rgb).depth,
        sample_photos(EVALUATION_PHOTOS),
    )
    print("INT8 vs FP32 on photos not used for calibration (after scale-and-shift alignment):")
    for name, score in scores.items():
        print(f"  {name:<18} AbsRel {score.absrel:.4f}   delta<1.25 {score.delta1:.4f}")
    return EXIT_OK

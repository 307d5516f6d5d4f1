"""Model management: ``depthlite models``, ``download``, ``convert`` and ``quantize``."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from depthlite import hub
from depthlite.cli.common import add_model_options
from depthlite.errors import EXIT_OK, BackendUnavailableError, InvalidOptionError
from depthlite.fsutil import make_parent, output_error
from depthlite.zoo import CARDS, DEFAULT_MODEL, get_card
from depthlite.zoo.autoprecision import AUTO_RECIPE, cached_choices
from depthlite.zoo.cards import ModelCard
from depthlite.zoo.derive import derived_files
from depthlite.zoo.resolver import ensure_converted, ensure_quantized, resolve, torch_available

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("models", help="list known models, their licences and what is cached")
    p.add_argument("model", nargs="?", help="one model (default: all)")
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
        "against the torch model, and keep it in the cache (keyed by the checkpoint's SHA-256). "
        "With -o, also write the verified file there, its metadata included.",
    )
    add_model_options(p, runtime=False)
    _add_output_options(p)
    p.set_defaults(handler=run_convert)
    _register_quantize(sub)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, metavar="FILE.onnx", help="also write it here")
    p.add_argument("--force", action="store_true", help="make it again even if cached")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the path")


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
    p.add_argument("--no-eval", action="store_true", help="skip the agreement report")
    _add_output_options(p)
    p.set_defaults(handler=run_quantize)


def _size(num: int | None) -> str:
    return "-" if num is None else f"{num / 1e6:.1f} MB"


def _describe(card: ModelCard) -> None:
    default = " (default)" if card.name == DEFAULT_MODEL else ""
    pre, lic = card.preprocess, card.licence
    print(f"\n{card.name}{default}  [{', '.join(card.aliases)}]\n  {card.description}")
    print(
        f"  {card.params / 1e6:.1f} M params; input {pre.size} px, {pre.resize_rule}, multiple "
        f"of {pre.multiple_of}; output: {card.output.description}"
    )
    use = "commercial use allowed" if lic.commercial else "NON-COMMERCIAL use only"
    print(
        f"  licence {lic.spdx} ({use}): {lic.url}" + (f"\n    note: {lic.note}" if lic.note else "")
    )
    for entry in hub.cache_status(card):
        state = "cached" if entry.size is not None else "not cached"
        print(f"  {entry.kind:<10} {entry.name:<44} {state:<10} {_size(entry.size)}")
    for made in derived_files(card.name):
        if made.recipe == AUTO_RECIPE:
            continue  # a few bytes of JSON: shown as the choice it records, below
        print(
            f"  {made.recipe:<14} {made.output:<40} made from {made.input_name} "
            f"({made.input_sha256[:12]}), {_size(made.output_size)}"
        )
    for source, choice in cached_choices(card.name):
        print(f"  {choice.backend:<14} {source}: {choice.summary()}")


def run_models(args: argparse.Namespace) -> int:
    print(f"cache: {hub.cache_dir()}")
    cards = [get_card(args.model)] if args.model else list(CARDS.values())
    for card in cards:
        _describe(card)
    return EXIT_OK


def run_download(args: argparse.Namespace) -> int:
    card = get_card(args.model)
    progress = not args.quiet
    print(hub.resolve_checkpoint(card, progress=progress, force=args.force))
    if args.official_onnx:
        if card.official_onnx is None:
            raise InvalidOptionError(f"{card.name} has no official ONNX export; use convert")
        print(hub.resolve_official_onnx(card, progress=progress, force=args.force))
    return EXIT_OK


def _publish(path: Path, output: Path | None) -> Path:
    """Copy a verified cache file where the user asked (the cache keeps its own copy)."""
    if output is None:
        return path
    if output.suffix.lower() != ".onnx":
        raise InvalidOptionError(f"-o {output}: name the file with an .onnx extension")
    make_parent(output)
    try:
        shutil.copyfile(path, output)
    except OSError as exc:
        if exc.filename is not None and Path(exc.filename) != output:
            raise  # the cache file could not be read: not the -o path's fault
        raise output_error(output, exc) from exc
    return output


def run_convert(args: argparse.Namespace) -> int:
    card = get_card(args.model)
    if not torch_available():
        # Say it before a download is wasted: conversion runs the torch model.
        raise BackendUnavailableError(
            "depthlite convert needs PyTorch: pip install 'depthlite[torch]'"
        )
    checkpoint = hub.resolve_checkpoint(
        card, weights=args.weights, offline=args.offline, progress=not args.quiet
    )
    path, _ = ensure_converted(card, checkpoint, force=args.force)
    print(_publish(path, args.output))
    return EXIT_OK


def run_quantize(args: argparse.Namespace) -> int:
    card = get_card(args.model)
    # The FP32 ONNX file as OpenVINO would load it: the export, not ORT's CPU-specific graph.
    fp32 = resolve(
        card, "openvino", weights=args.weights, offline=args.offline, progress=not args.quiet
    )
    int8, _ = ensure_quantized(card, fp32.path, calibration=args.calibration, force=args.force)
    print(_publish(int8, args.output))
    if args.no_eval or args.quiet:
        return EXIT_OK
    from depthlite.estimator import DepthEstimator
    from depthlite.models.quantize import EVALUATION_PHOTOS, evaluate_agreement, sample_photos

    reference = DepthEstimator(card.name, weights=fp32.path)
    candidate = DepthEstimator(card.name, weights=int8)
    scores = evaluate_agreement(
        lambda rgb: reference.predict(rgb).depth,
        lambda rgb: candidate.predict(rgb).depth,
        sample_photos(EVALUATION_PHOTOS),
    )
    print("INT8 vs FP32 on photos not used for calibration (after scale-and-shift alignment):")
    for name, score in scores.items():
        print(f"  {name:<18} AbsRel {score.absrel:.4f}   delta<1.25 {score.delta1:.4f}")
    return EXIT_OK

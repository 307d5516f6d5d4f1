"""FP32 ONNX -> static INT8 (QDQ, per-channel weights), calibrated on natural photos.

The default photos come from scikit-image's bundled data (no download): four for calibration
and two others, never seen by the calibrator, to report agreement with FP32.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthlite.errors import (
    BackendUnavailableError,
    ConversionError,
    ImageTooLargeError,
    InputNotFoundError,
)
from depthlite.fsutil import atomic_path
from depthlite.imageio import expand_inputs, load_image
from depthlite.metrics import Agreement, agreement
from depthlite.runtime.attention import HEADS_PREFIX, split_heads
from depthlite.runtime.base import ModelFormat
from depthlite.runtime.metadata import NORMALIZES_INSIDE_KEY, PRECISION_KEY, normalizes_inside
from depthlite.transforms import InputPolicy, preprocess
from depthlite.zoo.architectures import architecture_of
from depthlite.zoo.cards import ModelCard

__all__ = [
    "CALIBRATION_PHOTOS",
    "EVALUATION_PHOTOS",
    "RECIPE_PARAMS",
    "RECIPE_VERSION",
    "Photo",
    "calibration_id",
    "evaluate_agreement",
    "load_photos",
    "quantize_model",
    "sample_photos",
]

logger = logging.getLogger(__name__)

CALIBRATION_PHOTOS = ("astronaut", "chelsea", "coffee", "camera")
EVALUATION_PHOTOS = ("rocket", "motorcycle_left")
DEFAULT_CALIBRATION = "default"
# The quantize recipe, as the derivation key records it.
# 2: nodes that do not depend on the pixels (shape arithmetic, the position embedding's
# resize) stay float, so do LayerNormalization and each architecture's int8_float_ops;
# calibration memory is bounded.
# 3: the maps the banded head reads row by row stay float (see _band_sources).
# 4: attention's products of two activations (q k^T, its softmax, the weighted sum of v) stay
# float (see _attention_products).
# 5: attention computed head by head (runtime/attention.split_heads): one head's scores in
# memory at a time instead of all of them; the same values.
RECIPE_VERSION = 5
RECIPE_PARAMS = {"format": "QDQ", "per_channel": True, "activations": "QUInt8",
                 "weights": "QInt8", "method": "MinMax",
                 "skip": "pixel-independent+band-sources+attention-products",
                 "attention": "per-head",
                 "float_ops": "LayerNormalization+architecture"}  # fmt: skip
# Quantizing LayerNormalization gains nothing (no runtime has an integer kernel for it: it
# runs as dequantize -> float -> quantize) and costs the ViTs most of their agreement.
_FLOAT_OPS = frozenset({"LayerNormalization"})
# The calibrator keeps every intermediate tensor of every calibration input until the end
# (14 GB for Depth Anything V2 Small at 518 px); folding the ranges after each input bounds
# that. ("CalibMaxIntermediateOutputs" would too, but onnxruntime 1.32 drops the batch it
# folds instead of computing it.)
_CALIBRATION_STRIDE = 1
# A map read by this many row gathers is a banded head's source (models/banded.py: two rows
# per band, 8 bands); attention and the position embedding gather from a tensor once or twice.
_BAND_READERS = 4


@dataclass(frozen=True)
class Photo:
    name: str
    rgb: np.ndarray


def _skimage_loaders() -> dict[str, Callable[[], np.ndarray]]:
    try:
        from skimage import data
    except ImportError as exc:
        raise BackendUnavailableError(
            "the default calibration photos come from scikit-image: pip install "
            "'depthlite[quantize]', or pass --calibration DIR with a few of your own photos"
        ) from exc
    return {
        "astronaut": data.astronaut,
        "chelsea": data.chelsea,
        "coffee": data.coffee,
        "camera": data.camera,
        "rocket": data.rocket,
        "motorcycle_left": lambda: data.stereo_motorcycle()[0],
    }


def sample_photos(names: Sequence[str]) -> list[Photo]:
    """scikit-image's bundled photos by name, as RGB uint8."""
    loaders = _skimage_loaders()
    photos = []
    for name in names:
        rgb = np.asarray(loaders[name]())
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        photos.append(Photo(name, np.ascontiguousarray(rgb[..., :3])))
    return photos


def load_photos(folder: Path) -> list[Photo]:
    """The images of a user's calibration folder (unreadable files are skipped, with a log)."""
    items, errors = expand_inputs([str(folder)])
    for error in errors:
        raise InputNotFoundError(f"no calibration images: {error}", str(folder))
    photos = []
    for item in items:
        try:
            photos.append(Photo(item.stem, load_image(item.path or "")))
        except ImageTooLargeError as exc:  # quantize has no --max-pixels: the way out differs
            reason = str(exc.args[0]).partition("; raise it")[0]  # without the source again
            logger.warning(
                "skipping calibration image %s: %s; give a smaller copy", item.source, reason
            )
        except Exception as exc:  # one bad file must not stop the calibration
            logger.warning("skipping calibration image %s: %s", item.source, exc)
    if not photos:
        raise InputNotFoundError("no readable images to calibrate on", str(folder))
    return photos


def calibration_id(folder: Path | None) -> str:
    """A short key of the calibration set, part of the cached file's name."""
    if folder is None:
        return DEFAULT_CALIBRATION
    items, _ = expand_inputs([str(folder)])
    digest = hashlib.sha256()
    for item in sorted(items, key=lambda i: str(i.path)):
        digest.update(str(item.relative).encode())
        digest.update(Path(item.path or "").read_bytes())
    return digest.hexdigest()[:8]


def _network_inputs(
    photos: Sequence[Photo], card: ModelCard, fmt: ModelFormat, normalize: bool
) -> list[np.ndarray]:
    # Both resize modes for dynamic models: activations differ a little with the input size.
    modes = ("square",) if fmt.fixed_size else ("keep_aspect", "square")
    return [
        preprocess(photo.rgb, InputPolicy.for_card(card, mode, normalize=normalize))
        for photo in photos
        for mode in modes
    ]


def _reader(input_name: str, tensors: list[np.ndarray]) -> object:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """The tensors, one range at a time (the strided calibration asks for ranges)."""

        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = iter(tensors)

        def __len__(self) -> int:
            return len(tensors)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._it = iter(tensors[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            tensor = next(self._it, None)
            return None if tensor is None else {input_name: tensor}

    return Reader()


def quantize_model(source: Path, output: Path, card: ModelCard, photos: Sequence[Photo]) -> Path:
    """Write the static INT8 QDQ model of ``source`` to ``output`` (atomically)."""
    try:
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise BackendUnavailableError(
            f"quantizing needs the onnx package ({exc.name}): pip install 'depthlite[quantize]'"
        ) from exc
    from depthlite.runtime.onnx import inspect_model

    input_name, fmt = inspect_model(source)
    float_ops = architecture_of(card).int8_float_ops
    inside = normalizes_inside(card, fmt, source, official=False)
    tensors = _network_inputs(photos, card, fmt, normalize=not inside)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as tmp, atomic_path(output) as final:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        per_head = Path(tmp) / "per-head.onnx"
        graph = per_head if split_heads(source, per_head) else source
        try:
            from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

            # Symbolic shape inference cannot follow the dynamic resizes; ONNX's own can.
            quant_pre_process(str(graph), str(prepared), skip_symbolic_shape=True)
            skipped = _name_nodes_and_find_pixel_independent(prepared)
            quantize_static(
                str(prepared),
                str(quantized),
                _reader(input_name, tensors),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=sorted(
                    (set(QDQRegistry) | set(QLinearOpsRegistry)) - _FLOAT_OPS - float_ops
                ),
                nodes_to_exclude=skipped,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"CalibStridedMinMax": _CALIBRATION_STRIDE},
            )
        except Exception as exc:
            raise ConversionError(f"quantizing {source} failed: {exc}") from exc
        _copy_metadata(source, quantized, {NORMALIZES_INSIDE_KEY: str(inside).lower()})
        os.replace(quantized, final)
    logger.info("quantized %s -> %s on %d photos", source.name, output, len(photos))
    return output


def _name_nodes_and_find_pixel_independent(path: Path) -> list[str]:
    """Name every node of ``path`` (in place) and return the nodes to keep in float.

    Those the pixels do not reach compute shapes (patch grids, resize scales, ranges) or
    tables (the position embedding resized to the grid, the banded head's interpolation
    weights); so do the nodes that combine pixels with such a computed table. Quantizing them
    is never a gain and is wrong: a table rounded to a range calibrated at a few input sizes
    is off at every other size (and OpenVINO cannot compile a quantized interpolation weight).
    The banded head's source maps stay float too (``_band_sources``).
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    stored = {init.name for init in graph.initializer}
    stored.update(o for n in graph.node if n.op_type == "Constant" for o in n.output)
    # Shapes are known without the pixel values: Shape/Size outputs are independent.
    dynamic = {i.name for i in graph.input} - stored
    skipped: list[str] = []
    for index, node in enumerate(graph.node):
        if not node.name:
            node.name = f"depthlite_node_{index}"
        inputs = [i for i in node.input if i]
        if node.op_type in {"Shape", "Size"} or not any(i in dynamic for i in inputs):
            skipped.append(node.name)
            continue
        dynamic.update(node.output)
        if any(i not in dynamic and i not in stored for i in inputs):
            skipped.append(node.name)  # pixels meet a computed table
    skipped.extend(_band_sources(graph))
    skipped.extend(_attention_products(graph, dynamic))
    onnx.save(model, str(path))
    return skipped


def _band_sources(graph: Any) -> list[str]:
    """The nodes whose output the banded head reads row by row (models/banded.py).

    Quantized, such an output is dequantized once per reader: ONNX Runtime gives every reader
    of a DequantizeLinear its own copy of the node, and each copy writes the whole float map
    to gather two rows of it. DPT-Hybrid INT8 at 384x672: 16 copies of a 31.5 MB map, several
    alive at once, the run's peak. Kept float, the map exists once.
    """
    readers: dict[str, int] = {}
    for node in graph.node:
        if node.op_type == "Gather" and node.input:
            readers[node.input[0]] = readers.get(node.input[0], 0) + 1
    return [
        node.name
        for node in graph.node
        if any(readers.get(out, 0) >= _BAND_READERS for out in node.output)
    ]


def _attention_products(graph: Any, dynamic: set[str]) -> list[str]:
    """Attention's MatMuls of two activations (every input depends on the pixels: no weight),
    its Softmax, and the per-head Split and Concat around them (recipe 5).

    Quantized, the scores are uint8 and ONNX Runtime's QLinearSoftmax ran 381 of DPT-Hybrid's
    2,000 ms at 384x672. In float the network is 13-15 % faster (Xeon with AMX, three INT8
    files alternated in one process: median 1611 ms all INT8, 1365-1402 ms float attention)
    at the same peak RSS (404 MiB): the float scores replace the uint8 scores and their
    dequantized copies.
    """
    return [
        node.name
        for node in graph.node
        if node.name.startswith(HEADS_PREFIX)
        or (node.op_type in {"MatMul", "Softmax"} and all(i in dynamic for i in node.input if i))
    ]


def _copy_metadata(source: Path, target: Path, extra: dict[str, str]) -> None:
    """Carry the source's layout metadata over: the quantizer drops custom properties."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    meta.update(extra)
    model = onnx.load(str(target))
    known = {p.key for p in model.metadata_props}
    for key, value in meta.items():
        if key not in known:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    entry = model.metadata_props.add()
    entry.key, entry.value = PRECISION_KEY, "int8"
    onnx.save(model, str(target))


def evaluate_agreement(
    reference: Callable[[np.ndarray], np.ndarray],
    candidate: Callable[[np.ndarray], np.ndarray],
    photos: Sequence[Photo],
) -> dict[str, Agreement]:
    """Per photo: the candidate's depth against the reference's, after scale-and-shift."""
    return {photo.name: agreement(candidate(photo.rgb), reference(photo.rgb)) for photo in photos}

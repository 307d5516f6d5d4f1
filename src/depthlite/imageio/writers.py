"""Write depth maps to disk: colour PNG, 16-bit PNG, npy, PFM, an input | depth preview, and
the outputs in metres and 3-D (metric npy/PFM, PLY point cloud, normals: ``scene.py``).

Output names (``<stem>`` + suffix, :data:`OUTPUT_SUFFIX`): ``_color.png``, ``_depth16.png``,
``.npy`` and ``.pfm`` (the model's raw values), ``_side.png``, ``_metric.npy`` and
``_metric.pfm`` (float32 metres, NaN where none), ``.ply``, ``_normals.png`` (8-bit RGB) and
``_normals.npy`` (float32 H x W x 3); the sidecar ``<stem>.json`` (optional) describes them.

Every file is written atomically (:func:`depthlite.fsutil.atomic_path`), so an interrupted run
never leaves a half-written file under a final name and a re-run can trust whatever outputs
already exist. PNGs come from :mod:`depthlite.imageio.png`: the colour map is stored as a
palette PNG, about 3 times faster to write and smaller than cv2's RGB PNG, with the same pixels.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthlite.colorize import (
    DEFAULT_COLORMAP,
    apply_palette,
    colormap_id,
    display_depth,
    normalize_minmax,
    palette,
)
from depthlite.errors import InvalidOptionError
from depthlite.fsutil import atomic_path
from depthlite.geometry.intrinsics import CameraSpec, ExifFocal
from depthlite.imageio.depthfile import DepthInfo, level_range, png16_text, sidecar_bytes
from depthlite.imageio.encode import to_uint8
from depthlite.imageio.png import encode_gray, encode_indexed, encode_rgb
from depthlite.imageio.scene import Scene, metric_unavailable
from depthlite.options import check_choice

__all__ = [
    "CAMERA_FORMATS",
    "METRIC_FORMATS",
    "OUTPUT_FORMATS",
    "OUTPUT_SUFFIX",
    "SIDECAR",
    "SIDECAR_SUFFIX",
    "atomic_write_bytes",
    "check_formats",
    "check_outputs",
    "encode_outputs",
    "file_suffix",
    "output_path",
    "read_pfm",
    "side_by_side",
    "to_png16",
    "write_encoded",
    "write_outputs",
    "write_pfm",
]

logger = logging.getLogger(__name__)

# The single source of truth for output names; inputs.py skips files ending with these when it
# expands a folder, so re-running over a folder never processes its own outputs.
OUTPUT_SUFFIX: dict[str, str] = {
    "color": "_color.png",
    "png16": "_depth16.png",
    "npy": ".npy",
    "pfm": ".pfm",
    "side": "_side.png",
    "metric": "_metric.npy",
    "metric_pfm": "_metric.pfm",
    "ply": ".ply",
    "normals": "_normals.png",
    "normals_npy": "_normals.npy",
}
OUTPUT_FORMATS: tuple[str, ...] = tuple(OUTPUT_SUFFIX)
# Outputs in metres: they need a calibration or a metric model.
METRIC_FORMATS: tuple[str, ...] = ("metric", "metric_pfm")
# Outputs that need the camera's focal length (EXIF, --fov or --focal-px).
CAMERA_FORMATS: tuple[str, ...] = ("ply", "normals", "normals_npy")
# Not a format: the JSON description of one input's files, "<stem>.json".
SIDECAR = "sidecar"
SIDECAR_SUFFIX = ".json"

_PFM_DIMS = re.compile(rb"^(\d+)\s+(\d+)\s*$")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`depthlite.fsutil.atomic_path`)."""
    with atomic_path(Path(path)) as tmp, tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        # Without fsync a power cut after the rename can leave an empty file in its place.
        os.fsync(fh.fileno())


def to_png16(depth: np.ndarray) -> np.ndarray:
    """The official 16-bit depth PNG pixels (``write_depth(bits=2)``)."""
    return normalize_minmax(_check_depth(depth), bits=2)


def _pfm_bytes(depth: np.ndarray) -> bytes:
    arr = np.asarray(depth)
    if arr.ndim == 3 and arr.shape[2] in (1, 3):
        colour = arr.shape[2] == 3
    elif arr.ndim == 2:
        colour = False
    else:
        raise ValueError(f"PFM needs HxW, HxWx1 or HxWx3 data, got shape {arr.shape}")
    height, width = arr.shape[:2]
    # Always little-endian, announced by the negative scale; "%f" matches the official header.
    header = b"PF\n" if colour else b"Pf\n"
    header += b"%d %d\n" % (width, height)
    header += b"%f\n" % -1.0
    return header + np.flipud(arr).astype("<f4").tobytes()


def write_pfm(path: Path, depth: np.ndarray) -> None:
    """Write a PFM exactly as the official ``write_pfm`` lays it out (bottom row first)."""
    atomic_write_bytes(Path(path), _pfm_bytes(depth))


def read_pfm(path: Path) -> np.ndarray:
    """Read a PFM into a float32 array (HxW or HxWx3), top row first; the scale is ignored."""
    with Path(path).open("rb") as fh:
        kind = fh.readline().rstrip()
        if kind not in (b"PF", b"Pf"):
            raise ValueError(f"{path}: not a PFM file")
        dims = _PFM_DIMS.match(fh.readline())
        if dims is None:
            raise ValueError(f"{path}: malformed PFM header")
        width, height = int(dims.group(1)), int(dims.group(2))
        scale = float(fh.readline().strip())
        data = fh.read()
    channels = 3 if kind == b"PF" else 1
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    expected = width * height * channels
    if len(data) != expected * dtype.itemsize:
        raise ValueError(f"{path}: PFM data has {len(data)} bytes, expected {expected * 4}")
    arr = np.frombuffer(data, dtype=dtype).astype(np.float32)
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.ascontiguousarray(np.flipud(arr.reshape(shape)))


def side_by_side(image_rgb: np.ndarray, color_rgb: np.ndarray) -> np.ndarray:
    """The input and its colour map next to each other, as one 8-bit RGB image.

    The colour map is resized (keeping its aspect) if its height differs from the image's.
    """
    image = to_uint8(np.asarray(image_rgb))
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    color = np.asarray(color_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or color.ndim != 3 or color.shape[2] != 3:
        raise ValueError(f"expected RGB images, got shapes {image.shape} and {color.shape}")
    color = to_uint8(color)
    height = image.shape[0]
    if color.shape[0] != height:
        width = max(1, round(color.shape[1] * height / color.shape[0]))
        color = cv2.resize(color, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(np.hstack([image, color]))


def output_path(out_dir: Path, relative: Path, fmt: str) -> Path:
    """Where format ``fmt`` (or :data:`SIDECAR`) of the input with stem ``relative`` goes."""
    relative = Path(relative)
    # Appending, not with_suffix: stems such as "scan.v2" must keep their dots.
    return Path(out_dir) / relative.parent / f"{relative.name}{file_suffix(fmt)}"


def file_suffix(fmt: str) -> str:
    """The file name ending of a format, or of :data:`SIDECAR`."""
    if fmt == SIDECAR:
        return SIDECAR_SUFFIX
    return OUTPUT_SUFFIX[check_choice("output format", fmt, OUTPUT_FORMATS)]


def check_formats(formats: Sequence[str]) -> list[str]:
    """The formats, validated and de-duplicated in order (InvalidOptionError lists the set)."""
    return list(dict.fromkeys(check_choice("output format", f, OUTPUT_FORMATS) for f in formats))


def check_outputs(formats: Sequence[str], info: DepthInfo, *, calibrated: bool = False) -> None:
    """Refuse, before any work, outputs this depth cannot give: metres without a calibration
    (``calibrated``: one will be fitted) or a metric model (MetricUnavailableError)."""
    wanted = [f for f in check_formats(formats) if f in METRIC_FORMATS]
    if wanted and not (info.metric or calibrated):
        raise metric_unavailable(wanted, info.model)


def _check_depth(depth: np.ndarray) -> np.ndarray:
    arr = np.asarray(depth)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"depth must be a non-empty HxW array, got shape {arr.shape}")
    return arr


def _npy_bytes(depth: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(depth, dtype=np.float32))
    return buf.getvalue()


def encode_outputs(
    depth: np.ndarray,
    image_rgb: np.ndarray | None,
    formats: Sequence[str],
    colormap: str = DEFAULT_COLORMAP,
    *,
    near_is_larger: bool | None = None,
    info: DepthInfo | None = None,
    camera: CameraSpec | None = None,
    exif: ExifFocal | None = None,
    stride: int = 1,
    sidecar: bool = False,
    stem: str = "depth",
    source: str | None = None,
) -> dict[str, bytes]:
    """The bytes of each output format, in ``formats`` order (the files' and the API's content).

    ``info`` says what the numbers are (kind, unit, model, calibration); without it,
    ``near_is_larger=False`` means metric depth. Options are validated, and metres checked to
    be available, before anything is encoded. ``image_rgb`` is needed for "side" and "ply";
    ``camera`` and ``exif`` give the focal length of "ply" and the normals; ``stride`` thins the
    PLY. With ``sidecar``, the last entry is :data:`SIDECAR`: the JSON describing the others
    (as files named ``stem`` + suffix); ``source`` names the input in warnings (default: the
    stem). Colour maps and 16-bit PNGs are "near is bright" for every kind
    (``colorize.display_depth``); npy and pfm keep the raw values.
    """
    # Every output derives from the same float32 values the npy/pfm files store; the official
    # 8/16-bit maps are defined on float32 depth, and float64 can round one level differently.
    depth = _check_depth(depth).astype(np.float32, copy=False)
    wanted = check_formats(formats)
    colormap_id(colormap)
    if info is None:
        metric = near_is_larger is False
        info = DepthInfo(kind="metric_depth", unit="m") if metric else DepthInfo()
    check_outputs(wanted, info)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise InvalidOptionError(f"stride must be a whole number >= 1, not {stride!r}")
    for fmt in ("side", "ply"):
        if fmt in wanted and image_rgb is None:
            raise ValueError(f'the "{fmt}" output needs the input image')
    flat = _Maps(depth, info, image_rgb, colormap)
    scene = Scene(depth, info, image_rgb, camera=camera, exif=exif, source=source or stem)
    encoded: dict[str, bytes] = {}
    facts: dict[str, dict[str, Any]] = {}
    for fmt in wanted:
        if fmt in _Maps.FORMATS:
            encoded[fmt], extra = flat.encode(fmt)
        else:
            encoded[fmt], extra = _encode_scene(scene, fmt, stride)
            extra = {**scene.file_facts(fmt), **extra}
        facts[fmt] = {"name": f"{stem}{OUTPUT_SUFFIX[fmt]}", **extra}
    if sidecar:
        needs_camera = any(f in CAMERA_FORMATS for f in wanted)
        intrinsics = scene.intrinsics if needs_camera else None
        encoded[SIDECAR] = sidecar_bytes(info, depth.shape, facts, intrinsics)
    return encoded


class _Maps:
    """The image-shaped outputs of one depth map: the "near is bright" values and their 8-bit
    normalisation are computed at most once, and only when a format needs them."""

    FORMATS = ("color", "png16", "npy", "pfm", "side")

    def __init__(
        self, depth: np.ndarray, info: DepthInfo, image: np.ndarray | None, colormap: str
    ) -> None:
        self.depth, self.info, self.image, self.colormap = depth, info, image, colormap

    @functools.cached_property
    def visual(self) -> np.ndarray:
        return display_depth(self.depth, self.info.near_is_larger)

    @functools.cached_property
    def gray8(self) -> np.ndarray:
        return normalize_minmax(self.visual, bits=1)

    def encode(self, fmt: str) -> tuple[bytes, dict[str, Any]]:
        """The bytes of ``fmt`` and what the sidecar says about them."""
        info, colormap = self.info, self.colormap
        if fmt == "color":
            return encode_indexed(self.gray8, palette(colormap)), {"colormap": colormap}
        if fmt == "png16":
            levels = level_range(self.visual, info.near_is_larger)
            data = encode_gray(to_png16(self.visual), text=png16_text(info, levels))
            return data, {
                "kind": info.kind, "unit": info.unit, "min": levels.lo, "max": levels.hi,
                "mapping": levels.mapping,
            }  # fmt: skip
        if fmt in ("npy", "pfm"):
            data = _npy_bytes(self.depth) if fmt == "npy" else _pfm_bytes(self.depth)
            return data, {"kind": info.kind, "unit": info.unit}
        # side: colorize(depth), reusing the one normalisation.
        color = apply_palette(self.gray8, colormap)
        return encode_rgb(side_by_side(self.image, color)), {"colormap": colormap}  # type: ignore[arg-type]


def _encode_scene(scene: Scene, fmt: str, stride: int) -> tuple[bytes, dict[str, Any]]:
    """The bytes of a metric or 3-D format, and the facts only known once it is made."""
    if fmt == "metric":
        return _npy_bytes(scene.metres()), {}
    if fmt == "metric_pfm":
        return _pfm_bytes(scene.metres()), {}
    if fmt == "ply":
        data, points = scene.ply(stride)
        return data, {"points": points, "stride": stride}
    if fmt == "normals":
        return encode_rgb(scene.normals_png_rgb()), {}
    return _npy_bytes(scene.normals), {}


def write_outputs(  # noqa: PLR0917 - positional signature is the agreed cross-module API
    depth: np.ndarray,
    image_rgb: np.ndarray | None,
    out_dir: Path,
    relative: Path,
    formats: Sequence[str],
    colormap: str = DEFAULT_COLORMAP,
    **options: Any,
) -> list[Path]:
    """Write ``depth`` in each of ``formats``; return the paths written, in ``formats`` order
    (the sidecar, if asked for with ``sidecar=True``, last).

    ``options`` are :func:`encode_outputs`'s keywords (``info``, ``camera``, ...). Everything
    is encoded before the first file is written, so a bad format or colour map never leaves a
    partial set of outputs.
    """
    stem = Path(relative).name
    encoded = encode_outputs(depth, image_rgb, formats, colormap, stem=stem, **options)
    return write_encoded(encoded, out_dir, relative)


def write_encoded(encoded: dict[str, bytes], out_dir: Path, relative: Path) -> list[Path]:
    """Write :func:`encode_outputs`'s result as the files of stem ``relative`` in ``out_dir``."""
    written: list[Path] = []
    for fmt, data in encoded.items():
        path = output_path(out_dir, relative, fmt)
        atomic_write_bytes(path, data)
        logger.debug("wrote %s", path)
        written.append(path)
    return written

"""What a caller wants written for each image, and the one step that makes it.

The CLI (``predict``, ``batch``), the server and the job workers describe their outputs with
an :class:`OutputRequest` and hand each prediction to :func:`render_outputs`, so that known
points, calibrations, intrinsics and sidecars behave the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from depthlite.colorize import DEFAULT_COLORMAP, colormap_id
from depthlite.errors import InvalidOptionError
from depthlite.geometry.calibration import (
    FITS,
    Calibration,
    KnownPoint,
    fit_calibration,
    resolve_fit,
)
from depthlite.geometry.intrinsics import CameraSpec, ExifFocal
from depthlite.imageio.depthfile import DepthInfo
from depthlite.imageio.writers import CAMERA_FORMATS, check_formats, check_outputs, encode_outputs

__all__ = ["OutputRequest", "parse_known", "render_outputs"]


@dataclass(frozen=True)
class OutputRequest:
    """The outputs of each image and how to make them (``formats`` may be empty when only
    the calibration is wanted, e.g. for statistics).

    ``known`` points (two or more) fit a calibration per image; ``calibration`` applies a saved
    one instead (not both). ``camera`` and ``stride`` shape the 3-D outputs. ``sidecar=None``
    writes the JSON sidecar exactly when a 16-bit PNG is among the formats.
    """

    formats: tuple[str, ...] = ("color",)
    colormap: str = DEFAULT_COLORMAP
    known: tuple[KnownPoint, ...] = ()
    fit: str = "auto"
    calibration: Calibration | None = None
    camera: CameraSpec = field(default_factory=CameraSpec)
    stride: int = 1
    sidecar: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", tuple(check_formats(self.formats)))
        object.__setattr__(self, "known", tuple(self.known))
        colormap_id(self.colormap)
        if self.fit not in FITS:
            raise InvalidOptionError(f"invalid fit {self.fit!r}; choose one of: {', '.join(FITS)}")
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or self.stride < 1:
            raise InvalidOptionError(f"stride must be a whole number >= 1, not {self.stride!r}")
        if self.known and self.calibration is not None:
            raise InvalidOptionError("give known points or a saved calibration, not both")
        if len(self.known) == 1:
            raise InvalidOptionError(
                "one known point cannot fix a scale and a shift: give at least two (X,Y=METRES)"
            )

    @property
    def wants_sidecar(self) -> bool:
        return "png16" in self.formats if self.sidecar is None else self.sidecar

    @property
    def needs_exif(self) -> bool:
        """Whether the focal length must come from the image's EXIF (3-D outputs, no flag)."""
        return self.camera.needs_exif and any(f in CAMERA_FORMATS for f in self.formats)

    @property
    def needs_image(self) -> bool:
        return "side" in self.formats or "ply" in self.formats

    def check(self, kind: str, model: str | None) -> None:
        """Refuse, before any image is read, what this model cannot give (InvalidOptionError
        subclasses: a usage error, 422 in the API)."""
        resolve_fit(self.fit, kind)
        if self.calibration is not None and model is not None:
            self.calibration.check_use(model, kind)
        calibrated = self.calibration is not None or bool(self.known)
        check_outputs(self.formats, DepthInfo(kind=kind, model=model), calibrated=calibrated)

    def calibration_for(self, depth: np.ndarray, info: DepthInfo) -> Calibration | None:
        """The saved calibration, or the one the known points fit on ``depth``."""
        if self.calibration is not None:
            return self.calibration
        if not self.known:
            return None
        return fit_calibration(
            depth, info.kind, self.known, fit=self.fit, model=info.model,
            input_size=info.input_size,
        )  # fmt: skip


def render_outputs(
    depth: np.ndarray,
    image_rgb: np.ndarray | None,
    info: DepthInfo,
    request: OutputRequest,
    *,
    exif: ExifFocal | None = None,
    stem: str = "depth",
    source: str | None = None,
) -> tuple[dict[str, bytes], DepthInfo]:
    """The encoded outputs of one prediction, and its facts with the calibration applied.

    Raises :class:`~depthlite.errors.CalibrationError` (an InputError: this image's problem)
    when the known points cannot be fitted here, e.g. outside this image.
    """
    info = info.calibrated(request.calibration_for(depth, info))
    encoded = encode_outputs(
        depth,
        image_rgb if request.needs_image else None,
        request.formats,
        request.colormap,
        info=info,
        camera=request.camera,
        exif=exif,
        stride=request.stride,
        sidecar=request.wants_sidecar,
        stem=stem,
        source=source,
    )
    return encoded, info


def parse_known(texts: Sequence[str]) -> tuple[KnownPoint, ...]:
    """``["412,300=2.5", ...]`` -> known points (CalibrationError on a malformed one)."""
    return tuple(KnownPoint.parse(text) for text in texts)

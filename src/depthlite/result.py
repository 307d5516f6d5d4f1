"""What a prediction gives back: ``DepthResult``, and ``PreparedImage`` between the stages."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from depthlite.colorize import DEFAULT_COLORMAP, colorize, display_depth
from depthlite.geometry.calibration import Calibration, KnownPoint, fit_calibration
from depthlite.geometry.intrinsics import CameraSpec, ExifFocal
from depthlite.imageio import DepthInfo, OutputRequest, encode_outputs, render_outputs
from depthlite.imageio.scene import Scene

__all__ = ["DepthResult", "PreparedImage"]


@dataclass
class DepthResult:
    """One prediction.

    ``depth`` is the model's output at the input resolution: relative inverse depth (MiDaS),
    relative disparity (Depth Anything V2), both larger when nearer, or metric depth in metres
    (larger when farther), as ``kind`` and ``unit`` say. ``network_output`` is the raw output at
    network resolution; ``timings`` are milliseconds per stage (decode, preprocess, inference,
    postprocess). ``calibration`` (set by :meth:`calibrate`) maps ``depth`` to metres;
    ``exif`` holds the image's focal-length facts when ``predict(..., exif=True)`` read them.
    """

    depth: np.ndarray
    network_output: np.ndarray
    image: np.ndarray = field(repr=False)
    timings: dict[str, float]
    model: str
    backend: str
    resize: str
    kind: str = "relative_inverse_depth"
    unit: str | None = None
    calibration: Calibration | None = None
    exif: ExifFocal | None = field(default=None, repr=False)

    @property
    def info(self) -> DepthInfo:
        """What the numbers are: kind, unit, model, calibration, network input size."""
        size = tuple(self.network_output.shape[-2:])
        return DepthInfo(self.kind, self.unit, self.model, self.calibration, size)  # type: ignore[arg-type]

    @property
    def near_is_larger(self) -> bool:
        return self.info.near_is_larger

    @property
    def display_depth(self) -> np.ndarray:
        """The depth with near values larger, for colour maps and 8/16-bit images."""
        return display_depth(self.depth, self.near_is_larger)

    def colorize(self, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
        """The depth as an 8-bit RGB heat map, near is bright (official min/max scaling)."""
        return colorize(self.display_depth, colormap)

    def calibrate(
        self, points: list[KnownPoint] | tuple[KnownPoint, ...], fit: str = "auto"
    ) -> Calibration:
        """Fit (and keep) the calibration that gives these pixels their known distances."""
        info = self.info
        self.calibration = fit_calibration(
            self.depth, self.kind, points, fit=fit, model=self.model, input_size=info.input_size
        )
        return self.calibration

    def metres(self) -> np.ndarray:
        """float32 depth in metres (NaN where none): a metric model's output, or the
        calibrated one; MetricUnavailableError for a relative model without a calibration."""
        return Scene(self.depth, self.info, None).metres()

    def encode(
        self,
        formats: list[str] | tuple[str, ...],
        colormap: str = DEFAULT_COLORMAP,
        *,
        camera: CameraSpec | None = None,
        stride: int = 1,
        sidecar: bool = False,
        stem: str = "depth",
    ) -> dict[str, bytes]:
        """The bytes of each output format (see :func:`depthlite.imageio.encode_outputs`)."""
        return encode_outputs(
            self.depth, self.image, formats, colormap, info=self.info, camera=camera,
            exif=self.exif, stride=stride, sidecar=sidecar, stem=stem,
        )  # fmt: skip

    def render(self, request: OutputRequest, stem: str = "depth") -> dict[str, bytes]:
        """The outputs ``request`` asks for, calibrated as it says (the result keeps the
        calibration); see :func:`depthlite.imageio.render_outputs`."""
        encoded, info = render_outputs(
            self.depth, self.image, self.info, request, exif=self.exif, stem=stem
        )
        self.calibration = info.calibration
        return encoded


@dataclass
class PreparedImage:
    """An image decoded and preprocessed for the network (stage 1 of ``predict``)."""

    image: np.ndarray = field(repr=False)  # the decoded RGB image, at its own size
    network_input: np.ndarray = field(repr=False)  # float32 (1, 3, h, w)
    resize: str  # the resize mode actually used
    timings: dict[str, float]
    exif: ExifFocal | None = None
    # The image's (height, width) at full size: larger than ``image`` after a reduced decode.
    size: tuple[int, int] | None = None

    @property
    def full_size(self) -> tuple[int, int]:
        return self.size or (self.image.shape[0], self.image.shape[1])

    @property
    def has_image(self) -> bool:
        return self.image.size > 0

    def without_image(self) -> PreparedImage:
        """The same, without the decoded photo: for outputs that never show it, so that a
        1080p photo's 6 MB are not held while the network runs (the result's ``image`` is then
        empty)."""
        return replace(self, image=np.empty((0, 0, 3), np.uint8), size=self.full_size)

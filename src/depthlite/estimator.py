"""``DepthEstimator``: one model session and the pipeline around it."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depthlite.colorize import DEFAULT_COLORMAP, colorize, display_depth
from depthlite.errors import BackendUnavailableError
from depthlite.geometry.calibration import Calibration, KnownPoint, fit_calibration
from depthlite.geometry.intrinsics import CameraSpec, ExifFocal
from depthlite.imageio import (
    DEFAULT_MAX_PIXELS,
    DepthInfo,
    ImageSource,
    OutputRequest,
    encode_outputs,
    load_image,
    read_exif_focal,
    render_outputs,
)
from depthlite.imageio.scene import Scene
from depthlite.options import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_PRECISION,
    DEFAULT_RESIZE,
    RESIZE_MODES,
    check_choice,
    check_precision,
)
from depthlite.runtime.base import Backend, load_backend_class
from depthlite.runtime.metadata import check_fits, normalizes_inside
from depthlite.transforms import InputPolicy, postprocess, preprocess
from depthlite.zoo import DEFAULT_MODEL, get_card
from depthlite.zoo.cards import ModelCard
from depthlite.zoo.derive import discard
from depthlite.zoo.resolver import ResolvedFile, resolve

__all__ = ["DepthEstimator", "DepthResult"]

logger = logging.getLogger(__name__)


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


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = (time.perf_counter() - start) * 1000.0


class DepthEstimator:
    """Monocular depth with one model, safe to share between threads.

    The model file is resolved (downloaded, converted) and the runtime session created once, on
    first use or on :meth:`load`, under a lock; ``predict`` may then run from any thread.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        backend: str = DEFAULT_BACKEND,
        precision: str = DEFAULT_PRECISION,
        *,
        resize: str = DEFAULT_RESIZE,
        input_size: int | None = None,
        threads: int | None = None,
        weights: str | Path | None = None,
        offline: bool | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        progress: bool = True,
    ) -> None:
        self.card: ModelCard = get_card(model)
        self.backend_name = check_choice("backend", backend, BACKENDS)
        self.precision = check_precision(self.backend_name, precision)
        self.resize = check_choice("resize", resize, RESIZE_MODES)
        self.input_size = input_size
        InputPolicy.for_card(self.card, self.resize, size=input_size)  # validate it now
        self.threads = threads
        self.weights = weights
        self.offline = offline
        self.max_pixels = max_pixels
        self.progress = progress
        self._lock = threading.Lock()
        self._backend: Backend | None = None
        self._model_file: ResolvedFile | None = None

    @classmethod
    def from_options(cls, options: object, *, progress: bool = True) -> DepthEstimator:
        """An estimator from any object with the constructor's option names as attributes.

        The CLI's parsed arguments and the server's settings share these names; a missing
        attribute takes the constructor's default.
        """
        return cls(
            getattr(options, "model", DEFAULT_MODEL),
            getattr(options, "backend", DEFAULT_BACKEND),
            getattr(options, "precision", DEFAULT_PRECISION),
            resize=getattr(options, "resize", DEFAULT_RESIZE),
            input_size=getattr(options, "input_size", None),
            threads=getattr(options, "threads", None),
            weights=getattr(options, "weights", None),
            offline=getattr(options, "offline", None),
            max_pixels=getattr(options, "max_pixels", DEFAULT_MAX_PIXELS),
            progress=progress,
        )

    def __repr__(self) -> str:
        return (
            f"DepthEstimator(model={self.card.name!r}, backend={self.backend_name!r}, "
            f"precision={self.precision!r}, resize={self.resize!r})"
        )

    @property
    def model_file(self) -> ResolvedFile:
        """The file the session was loaded from (loads the model if needed)."""
        self.load()
        assert self._model_file is not None
        return self._model_file

    def load(self) -> Backend:
        """Resolve the model file and create the session, once; returns the backend."""
        backend = self._backend
        if backend is not None:
            return backend
        with self._lock:
            if self._backend is None:
                resolved, backend = self._open()
                fmt = backend.model_format
                check_fits(
                    self.card, dict(fmt.metadata), fmt.fixed_size, fmt.channels, str(resolved.path)
                )
                self._model_file, self._backend = resolved, backend
                logger.info("loaded %s from %s", self, resolved.path)
                _licence_notice(self.card)
            return self._backend

    def _open(self) -> tuple[ResolvedFile, Backend]:
        cls = load_backend_class(self.backend_name)
        for attempt in range(2):
            resolved = resolve(
                self.card,
                self.backend_name,
                self.precision,
                weights=self.weights,
                offline=self.offline,
                progress=self.progress,
            )
            try:
                return resolved, cls(
                    resolved.path,
                    self.card,
                    self.threads,
                    self.precision,
                    preoptimized=resolved.preoptimized,
                )
            except BackendUnavailableError:
                # A damaged file the resolver made (say, a crash mid-write on another
                # machine's shared cache) is made again once; a user's file is never touched.
                if attempt or not resolved.preoptimized:
                    raise
                discard(resolved.path)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Free the session; a later ``predict`` loads it again."""
        with self._lock:
            if self._backend is not None:
                self._backend.close()
            self._backend = None

    def input_policy(self, resize: str | None = None) -> InputPolicy:
        """How images are prepared for the loaded model file."""
        fmt = self.load().model_format
        mode = check_choice("resize", resize or self.resize, RESIZE_MODES)
        if fmt.fixed_size is not None and mode != "square":
            logger.debug("%s takes a fixed square input: using resize=square", self.model_file.path)
            mode = "square"
        file = self.model_file
        inside = normalizes_inside(self.card, fmt, file.path, official=file.official)
        size = None if fmt.fixed_size is not None else self.input_size
        return InputPolicy.for_card(self.card, mode, normalize=not inside, size=size)

    @property
    def near_is_larger(self) -> bool:
        return self.card.output.near_is_larger

    def postprocess(self, network_output: np.ndarray, height: int, width: int) -> np.ndarray:
        """The network output back at the image's size, by the card's upsampling rule."""
        return postprocess(network_output, height, width, self.card.output.upsampling)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run the network on a preprocessed (1, 3, h, w) float32 tensor."""
        return self.load().run(np.ascontiguousarray(x, dtype=np.float32))

    def predict(
        self,
        image: ImageSource,
        *,
        resize: str | None = None,
        source: str | None = None,
        exif: bool = False,
    ) -> DepthResult:
        """Depth for one image: a path, encoded bytes, an RGB ndarray or a PIL image.

        ``source`` names the input in error messages (default: the path, or ``<bytes>``).
        ``exif``: also read the focal-length facts of a path, bytes or PIL image (for point
        clouds and normals; a header read, skipped by default).
        """
        timings: dict[str, float] = {}
        with _timed(timings, "decode"):
            rgb = load_image(image, max_pixels=self.max_pixels, source=source)
        policy = self.input_policy(resize)
        with _timed(timings, "preprocess"):
            x = preprocess(rgb, policy)
        with _timed(timings, "inference"):
            out = self.infer(x)
        with _timed(timings, "postprocess"):
            depth = self.postprocess(out, rgb.shape[0], rgb.shape[1])
        return DepthResult(
            depth=depth,
            network_output=out[0],
            image=rgb,
            timings=timings,
            model=self.card.name,
            backend=self.backend_name,
            resize=policy.resize,
            kind=self.card.output.kind,
            unit=self.card.output.unit,
            exif=read_exif_focal(image, source) if exif else None,
        )


@functools.cache
def _licence_notice(card: ModelCard) -> None:
    """Once per process and model: a non-commercial licence must not surprise anyone."""
    if not card.licence.commercial:
        logger.warning(
            "%s is licensed %s: non-commercial use only (%s)",
            card.name, card.licence.spdx, card.licence.url,
        )  # fmt: skip

"""``DepthEstimator``: one model session and the pipeline around it."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from depthlite.errors import BackendUnavailableError
from depthlite.imageio import (
    DEFAULT_MAX_PIXELS,
    ImageSource,
    load_image,
    quiet,
    read_exif_focal,
)
from depthlite.imageio.reduced import load_reduced
from depthlite.memory import bound_heap_retention
from depthlite.options import (
    AUTO_PRECISION,
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_PRECISION,
    DEFAULT_RESIZE,
    RESIZE_MODES,
    check_choice,
    check_precision,
)
from depthlite.result import DepthResult, PreparedImage
from depthlite.runtime.base import Backend, load_backend_class
from depthlite.runtime.metadata import check_fits, normalizes_inside
from depthlite.transforms import InputPolicy, postprocess, preprocess
from depthlite.zoo import DEFAULT_MODEL, get_card
from depthlite.zoo.cards import ModelCard
from depthlite.zoo.derive import discard
from depthlite.zoo.resolver import ResolvedFile, resolve

if TYPE_CHECKING:
    from depthlite.zoo.autoprecision import AutoChoice

__all__ = ["DepthEstimator", "DepthResult", "PreparedImage"]

logger = logging.getLogger(__name__)


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
        fast_preprocess: bool = False,
    ) -> None:
        self.card: ModelCard = get_card(model)
        self.backend_name = check_choice("backend", backend, BACKENDS)
        # "auto" until load() measures (or reads the cached choice) and sets what runs.
        self.precision = check_precision(self.backend_name, precision)
        self.auto_choice: AutoChoice | None = None
        self.resize = check_choice("resize", resize, RESIZE_MODES)
        self.input_size = input_size
        InputPolicy.for_card(self.card, self.resize, size=input_size)  # validate it now
        self.threads = threads
        self.weights = weights
        self.offline = offline
        self.max_pixels = max_pixels
        self.progress = progress
        # Off: decode and resize exactly as the original code (bit for bit). On: a JPEG decoded
        # reduced in the DCT domain and the cubic resize in float32 (faster; values differ).
        self.fast_preprocess = bool(fast_preprocess)
        self._lock = threading.Lock()
        # Before the first image is decoded (predict may decode while the model loads): image
        # buffers then come from the heap and are reused (depthlite.memory).
        bound_heap_retention()
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
            fast_preprocess=bool(getattr(options, "fast_preprocess", False)),
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
        if self.precision == AUTO_PRECISION:
            from depthlite.zoo.autoprecision import choose_precision

            self.auto_choice = choose_precision(
                self.card, self.backend_name, weights=self.weights, offline=self.offline,
                progress=self.progress, threads=self.threads,
            )  # fmt: skip
            self.precision = self.auto_choice.precision
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
        prepared = self.prepare(image, resize=resize, source=source, exif=exif)
        return self.complete(prepared, self.run_network(prepared))

    # The three stages of ``predict``, public so that pipelines over many images can overlap
    # them (decode the next image while the network runs on this one).
    def prepare(
        self,
        image: ImageSource,
        *,
        resize: str | None = None,
        source: str | None = None,
        exif: bool = False,
    ) -> PreparedImage:
        """Stage 1 of :meth:`predict`: decode and preprocess (no network)."""
        timings: dict[str, float] = {}
        if self.fast_preprocess:  # the network input size decides how small to decode
            policy = self.input_policy(resize)
            with quiet.one_decode_at_a_time(), _timed(timings, "decode"):
                rgb, size = load_reduced(
                    image, policy.network_size, max_pixels=self.max_pixels, source=source
                )
        else:
            with quiet.one_decode_at_a_time(), _timed(timings, "decode"):
                rgb = load_image(image, max_pixels=self.max_pixels, source=source)
            size = (rgb.shape[0], rgb.shape[1])
            policy = self.input_policy(resize)
        with _timed(timings, "preprocess"):
            x = preprocess(rgb, policy, fast=self.fast_preprocess)
        focal = read_exif_focal(image, source) if exif else None
        return PreparedImage(rgb, x, policy.resize, timings, focal, size)

    def run_network(self, prepared: PreparedImage) -> np.ndarray:
        """Stage 2 of :meth:`predict`: the network on the prepared input."""
        with _timed(prepared.timings, "inference"):
            return self.infer(prepared.network_input)

    def complete(self, prepared: PreparedImage, network_output: np.ndarray) -> DepthResult:
        """Stage 3 of :meth:`predict`: the network output back at the image's size."""
        rgb, size = prepared.image, prepared.full_size
        with _timed(prepared.timings, "postprocess"):
            depth = self.postprocess(network_output, *size)
            if prepared.has_image and rgb.shape[:2] != size:
                # A reduced decode (fast_preprocess): outputs that show the photo (side, ply)
                # need it at the depth's size; bilinear from the reduced pixels.
                rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        return DepthResult(
            depth=depth,
            network_output=network_output[0],
            image=rgb,
            timings=prepared.timings,
            model=self.card.name,
            backend=self.backend_name,
            resize=prepared.resize,
            kind=self.card.output.kind,
            unit=self.card.output.unit,
            exif=prepared.exif,
        )


@functools.cache
def _licence_notice(card: ModelCard) -> None:
    """Once per process and model: a non-commercial licence must not surprise anyone."""
    if not card.licence.commercial:
        logger.warning(
            "%s is licensed %s: non-commercial use only (%s)",
            card.name, card.licence.spdx, card.licence.url,
        )  # fmt: skip

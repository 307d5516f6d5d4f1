"""``DepthEstimator``: one model session and the pipeline around it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depthlite.colorize import DEFAULT_COLORMAP, colorize
from depthlite.imageio import DEFAULT_MAX_PIXELS, ImageSource, load_image
from depthlite.modelfiles import ModelFile, normalizes_inside, resolve_model_file
from depthlite.runtime.base import Backend, load_backend_class
from depthlite.specs import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_MODEL,
    DEFAULT_PRECISION,
    DEFAULT_RESIZE,
    RESIZE_MODES,
    check_choice,
    check_precision,
    get_spec,
)
from depthlite.transforms import InputPolicy, postprocess, preprocess

__all__ = ["DepthEstimator", "DepthResult"]

logger = logging.getLogger(__name__)


@dataclass
class DepthResult:
    """One prediction.

    ``depth`` is relative inverse depth (larger is nearer) at the input resolution;
    ``network_output`` is the raw output at network resolution; ``timings`` are milliseconds
    per stage (decode, preprocess, inference, postprocess).
    """

    depth: np.ndarray
    network_output: np.ndarray
    image: np.ndarray = field(repr=False)
    timings: dict[str, float]
    model: str
    backend: str
    resize: str

    def colorize(self, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
        """The depth as an 8-bit RGB heat map (official min/max scaling)."""
        return colorize(self.depth, colormap)


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
        threads: int | None = None,
        weights: str | Path | None = None,
        offline: bool | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        progress: bool = True,
    ) -> None:
        self.spec = get_spec(model)
        self.backend_name = check_choice("backend", backend, BACKENDS)
        self.precision = check_precision(self.backend_name, precision)
        self.resize = check_choice("resize", resize, RESIZE_MODES)
        self.threads = threads
        self.weights = weights
        self.offline = offline
        self.max_pixels = max_pixels
        self.progress = progress
        self._lock = threading.Lock()
        self._backend: Backend | None = None
        self._model_file: ModelFile | None = None

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
            threads=getattr(options, "threads", None),
            weights=getattr(options, "weights", None),
            offline=getattr(options, "offline", None),
            max_pixels=getattr(options, "max_pixels", DEFAULT_MAX_PIXELS),
            progress=progress,
        )

    def __repr__(self) -> str:
        return (
            f"DepthEstimator(model={self.spec.name!r}, backend={self.backend_name!r}, "
            f"precision={self.precision!r}, resize={self.resize!r})"
        )

    @property
    def model_file(self) -> ModelFile:
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
                cls = load_backend_class(self.backend_name)
                self._model_file = resolve_model_file(
                    self.spec,
                    self.backend_name,
                    self.precision,
                    weights=self.weights,
                    offline=self.offline,
                    progress=self.progress,
                )
                self._backend = cls(self._model_file.path, self.spec, self.threads, self.precision)
                logger.info("loaded %s from %s", self, self._model_file.path)
            return self._backend

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
        inside = normalizes_inside(
            self.spec, fmt, file.path, official=file.origin == "official-onnx"
        )
        return InputPolicy.for_spec(self.spec, mode, normalize=not inside)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run the network on a preprocessed (1, 3, h, w) float32 tensor."""
        return self.load().run(np.ascontiguousarray(x, dtype=np.float32))

    def predict(
        self, image: ImageSource, *, resize: str | None = None, source: str | None = None
    ) -> DepthResult:
        """Depth for one image: a path, encoded bytes, an RGB ndarray or a PIL image.

        ``source`` names the input in error messages (default: the path, or ``<bytes>``).
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
            depth = postprocess(out, rgb.shape[0], rgb.shape[1])
        return DepthResult(
            depth=depth,
            network_output=out[0],
            image=rgb,
            timings=timings,
            model=self.spec.name,
            backend=self.backend_name,
            resize=policy.resize,
        )

"""Many images to depth files, overlapped: ``predict``, ``batch`` and image jobs share this.

``layout.workers`` threads each take the next image through the estimator's three steps:
decode + preprocess (``prepare``), the network (``run_network``), upsample + colour map +
encode + write (``complete`` and the writers). Every heavy step (JPEG decode, cv2 resizes,
ONNX Runtime's Run, zlib) releases the GIL, so while one worker's image is in the network the
other decodes the next or encodes the last, and every core stays busy.

Why one stage of whole images rather than a thread per step (the engine does both): measured
at 2 workers, FP32, the same speed within this machine's noise, but 25-40 MB more peak RSS
(glibc gives each allocating thread its own heap arena and keeps their freed pages) and, in a
server, three pool turns per image instead of one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthlite.errors import InputError
from depthlite.estimator import DepthEstimator
from depthlite.imageio import DepthInfo, ImageSource, OutputRequest, render_outputs, write_encoded
from depthlite.memory import limit_heap_arenas
from depthlite.parallel import bands_stay_on_one_core, one_core_per_image
from depthlite.pipeline.layout import Layout
from depthlite.pipeline.overlap import Overlap, Stage

__all__ = ["ImageTask", "RunFn", "Written", "depth_files", "run_directly"]

RunFn = Callable[..., Any]  # run(fn, *args): where the CPU work happens (a server's pool)


def run_directly(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


@dataclass(frozen=True)
class ImageTask:
    """One image: ``image`` is what to decode (or a callable giving it, e.g. reading stdin);
    ``source`` names it in messages; outputs go to ``out_dir`` as the files of stem
    ``relative``."""

    source: str
    image: ImageSource | Callable[[], ImageSource]
    out_dir: Path
    relative: Path


@dataclass(frozen=True)
class Written:
    paths: list[Path]
    info: DepthInfo  # with the calibration the image's known points fitted, if any


@dataclass(frozen=True)
class _Steps:
    est: DepthEstimator
    request: OutputRequest
    resize: str | None
    run: RunFn
    one_core: bool = False  # no bands across cores (parallel.bands_stay_on_one_core)

    def image(self, task: ImageTask, _: object) -> Written:
        # One ``run`` per image, not per step: a server's pool hands out turns fairly, and
        # three turns per image would triple a job's wait behind saturating uploads.
        return self.run(self._image, task)  # type: ignore[no-any-return]

    def _image(self, task: ImageTask) -> Written:
        with one_core_per_image(self.one_core):
            return self._steps(task)

    def _steps(self, task: ImageTask) -> Written:
        # One frame, with ``del`` at each step: a caller's local would keep the decoded photo
        # and the network's output alive while the outputs are encoded (encoding is the peak).
        image = task.image() if callable(task.image) else task.image
        exif = self.request.needs_exif
        prepared = self.est.prepare(image, resize=self.resize, source=task.source, exif=exif)
        del image
        # Only "side" and "ply" need the decoded photo.
        if not self.request.needs_image:
            prepared = prepared.without_image()
        output = self.est.run_network(prepared)
        result = self.est.complete(prepared, output)
        del prepared, output
        depth, info, focal = result.depth, result.info, result.exif
        photo = result.image if self.request.needs_image else None
        del result
        encoded, info = render_outputs(
            depth, photo, info, self.request, exif=focal, stem=task.relative.name,
            source=task.source,
        )  # fmt: skip
        del depth, photo
        return Written(write_encoded(encoded, task.out_dir, task.relative), info)


def depth_files(
    est: DepthEstimator,
    tasks: Iterable[ImageTask],
    request: OutputRequest,
    layout: Layout,
    *,
    resize: str | None = None,
    run: RunFn = run_directly,
    item_errors: tuple[type[BaseException], ...] = (InputError, OSError),
) -> Overlap[ImageTask]:
    """The outputs of every task, overlapped as ``layout`` says; use as a context manager.

    Each outcome's value is a :class:`Written`; an ``item_errors`` exception (default: a bad
    image, or an output that could not be written) fails that image only. The estimator
    should be loaded (a model problem is then raised before the first image).
    """
    one_core = bands_stay_on_one_core(layout.threads, layout.workers)
    steps = _Steps(est, request, resize, run, one_core=one_core)
    if layout.workers > 1:
        limit_heap_arenas(layout.workers)
    stage = Stage("image", steps.image, layout.workers)
    return Overlap(tasks, [stage], in_flight=layout.in_flight, item_errors=item_errors)

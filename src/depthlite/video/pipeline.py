"""Video depth: decode -> preprocess -> network -> upsample -> normalise + encode, overlapped.

Threads joined by small bounded queues (so memory stays flat and a slow stage holds the
others back instead of piling frames up):

* reader: FFmpeg's decoded frames (a child process) and the preprocessing of each;
* inference workers (the caller's thread and one more per spare core): the network and the
  upsampling, several frames at once when the session has fewer threads than there are cores;
* writer: puts frames back in order, fits the calibration on the first frame when known
  points are given (one calibration for a fixed camera), then the temporal normaliser, the
  colour map and the sink (an FFmpeg encoder child).

Every stage but the network releases the GIL for its heavy parts (cv2, numpy, pipes), so the
stages and the two FFmpeg processes fill the gaps the network leaves. Any failure stops every
stage, kills the children and removes the partial output.
"""

from __future__ import annotations

import functools
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthlite.errors import InvalidOptionError
from depthlite.estimator import DepthEstimator
from depthlite.geometry.calibration import (
    Calibration,
    fit_calibration,
    resolve_fit,
)
from depthlite.imageio.depthfile import DepthInfo
from depthlite.parallel import bands_stay_on_one_core, one_core_per_image
from depthlite.runtime.base import default_threads
from depthlite.transforms import InputPolicy, preprocess
from depthlite.video.ffmpeg import FrameReader, VideoInfo, probe
from depthlite.video.options import MAX_FRAMES, VideoOptions
from depthlite.video.sinks import FrameSink, open_sink
from depthlite.video.stages import END, Stages

__all__ = ["MAX_FRAMES", "ProgressCallback", "VideoOptions", "VideoReport", "process_video"]

logger = logging.getLogger(__name__)

# (frames done, frames expected or None)
ProgressCallback = Callable[[int, "int | None"], None]
_QUEUE_FRAMES = 4


@dataclass(frozen=True)
class VideoReport:
    """What was written: frame count, processing speed, the encoder used."""

    output: Path
    fmt: str
    frames: int
    seconds: float  # wall time of the frame loop (after the model was loaded)
    info: VideoInfo
    encoder: str | None
    browser_safe: bool
    audio: bool
    cuts: int = 0
    calibration: Calibration | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _expected(info: VideoInfo, options: VideoOptions) -> int | None:
    expected = info.frames_between(options.start, options.end)
    if options.max_frames is not None:
        expected = options.max_frames if expected is None else min(expected, options.max_frames)
    return expected


def inference_workers(estimator: DepthEstimator) -> int:
    """Frames inferred at once: one per core the session's own threads leave free.

    A 1-thread session per frame on every core beats one session spreading each frame over
    all cores here: FFmpeg and the other stages take cores away at random moments, which
    stalls every parallel section of a multi-threaded session.
    """
    threads = estimator.threads or default_threads()
    return max(1, default_threads() // threads)


def _open_sink(
    fmt: str,
    output: Path,
    info: VideoInfo,
    source: Path,
    *,
    options: VideoOptions,
    depth_info: DepthInfo,
) -> FrameSink:
    return open_sink(
        fmt,
        output,
        info,
        source,
        colormap=options.colormap,
        side=options.side,
        normalizer=options.normalizer,
        trim=(options.start, options.end),
        crf=options.crf,
        preset=options.preset,
        depth_info=depth_info,
    )


def process_video(
    estimator: DepthEstimator,
    source: str | Path,
    output: str | Path,
    options: VideoOptions | None = None,
    progress: ProgressCallback | None = None,
    *,
    infer: Callable[[np.ndarray], np.ndarray] | None = None,
    workers: int | None = None,
) -> VideoReport:
    """Depth of every frame of ``source`` written to ``output`` (see :class:`VideoOptions`).

    For throughput, give an estimator with ``threads=1``: frames then run one per core.
    ``infer`` replaces ``estimator.infer`` for the network step (a server routes it through
    its worker pool); ``progress`` may raise to stop the run (outputs are then removed).
    ``workers``: frames in the network at once (default :func:`inference_workers`).
    """
    options = options or VideoOptions()
    source, output = Path(source), Path(output)
    fmt = options.output_format(output)
    info = probe(source)
    if info.duration is not None and options.start >= info.duration:
        raise InvalidOptionError(
            f"start={options.start:g} s is past the end of {source.name} ({info.duration:g} s)"
        )
    depth_info = _depth_info(estimator, options)
    policy = estimator.input_policy()  # loads the model: fail before any output exists
    sink = _open_sink(fmt, output, info, source, options=options, depth_info=depth_info)
    try:
        reader = FrameReader(source, info, options.start, options.end)
    except BaseException:
        sink.abort()
        raise
    run = _Run(
        infer or estimator.infer,
        estimator.postprocess,
        policy,
        reader=reader,
        sink=sink,
        options=options,
        progress=progress,
    )
    run.expected = _expected(info, options)
    start = time.perf_counter()
    run.run(workers or inference_workers(estimator), threads=estimator.threads)
    seconds = time.perf_counter() - start
    return _finish(
        run.stages, sink, fmt=fmt, frames=run.done, seconds=seconds, info=info, source=source
    )


def _depth_info(estimator: DepthEstimator, options: VideoOptions) -> DepthInfo:
    """What the frames are; a calibration or fit that cannot apply fails before any work."""
    card = estimator.card
    info = DepthInfo(card.output.kind, card.output.unit, card.name, options.calibration)
    if options.calibration is not None:
        options.calibration.check_use(card.name, card.output.kind)
    if options.known:
        resolve_fit(options.fit, card.output.kind)
    return info


class _Run:
    """One video's stages: read + preprocess, N inference workers, reorder + write."""

    def __init__(
        self,
        infer: Callable[[np.ndarray], np.ndarray],
        upsample: Callable[[np.ndarray, int, int], np.ndarray],
        policy: InputPolicy,
        *,
        reader: FrameReader,
        sink: FrameSink,
        options: VideoOptions,
        progress: ProgressCallback | None,
    ) -> None:
        self.infer_fn = infer
        self.upsample = upsample
        self.input_size: tuple[int, int] | None = None
        self.policy = policy
        self.reader = reader
        self.sink = sink
        self.options = options
        self.progress = progress
        self.expected: int | None = None
        self.done = 0
        self.stages = Stages()
        self.frames: queue.Queue[Any] = queue.Queue(_QUEUE_FRAMES)
        self.depths: queue.Queue[Any] = queue.Queue(_QUEUE_FRAMES)

    def run(self, workers: int, *, threads: int | None = None) -> None:
        """The stages on their threads; ``threads``: the session's, which with ``workers``
        decides whether frames keep their row bands on their own threads."""
        if self.progress is not None:
            try:
                self.progress(0, self.expected)  # may raise (a job cancelled before it began)
            except BaseException as exc:
                self.stages.fail(exc)
                self.reader.close()
                return
        one_core = bands_stay_on_one_core(threads, workers)
        stage = functools.partial(self.stages.thread, one_core=one_core)
        threads = [stage(lambda: self.read(workers), "depthlite-video-read")]
        threads.append(stage(lambda: self.write(workers), "depthlite-video-write"))
        for index in range(1, workers):
            threads.append(stage(self.infer, f"depthlite-video-infer-{index}"))
        try:
            with one_core_per_image(one_core):
                self.infer()  # in the caller's thread: Ctrl-C lands here
        except BaseException as exc:
            self.stages.fail(exc)
        if self.stages.error is not None:
            self.reader.close()  # unblocks a reader waiting on FFmpeg's pipe
        for thread in threads:
            thread.join()
        self.reader.close()

    def read(self, workers: int) -> None:
        limit = self.options.max_frames
        index = 0
        while limit is None or index < limit:
            rgb = self.reader.read()
            if rgb is None:
                break
            x = preprocess(rgb, self.policy)
            self.input_size = (x.shape[-2], x.shape[-1])
            if not self.stages.put(self.frames, (index, rgb, x)):
                return
            index += 1
        for _ in range(workers):  # one end marker per inference worker
            self.stages.put(self.frames, END)

    def infer(self) -> None:
        while (item := self.stages.get(self.frames)) is not END:
            index, rgb, x = item
            depth = self.upsample(self.infer_fn(x), rgb.shape[0], rgb.shape[1])
            if not self.stages.put(self.depths, (index, rgb, depth)):
                return
        self.stages.put(self.depths, END)

    def write(self, workers: int) -> None:
        # Workers finish out of order; frames are written (and normalised) in order.
        waiting: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        ended = 0
        while ended < workers:
            item = self.stages.get(self.depths)
            if item is END:
                if self.stages.stop.is_set():
                    return
                ended += 1
                continue
            index, rgb, depth = item
            waiting[index] = (rgb, depth)
            while self.done in waiting:
                rgb, depth = waiting.pop(self.done)
                if self.done == 0 and self.options.known:
                    self.sink.calibrate(self._fit(depth))
                self.sink.write(depth, rgb)
                self.done += 1
                if self.progress is not None:
                    self.progress(self.done, self.expected)

    def _fit(self, depth: np.ndarray) -> Calibration:
        info = self.sink.info
        return fit_calibration(
            depth, info.kind, self.options.known, fit=self.options.fit, model=info.model,
            input_size=self.input_size,
        )  # fmt: skip


def _finish(
    stages: Stages,
    sink: FrameSink,
    *,
    fmt: str,
    frames: int,
    seconds: float,
    info: VideoInfo,
    source: Path,
) -> VideoReport:
    if stages.error is None and frames == 0:
        stages.fail(InvalidOptionError(f"no frames in {source.name} between the given times"))
    if stages.error is not None:
        sink.abort()
        raise stages.error
    sink.finish()
    normalizer = getattr(sink, "normalizer", None)
    logger.info("%s: %d frames in %.1f s", sink.output, frames, seconds)
    return VideoReport(
        output=sink.output,
        fmt=fmt,
        frames=frames,
        seconds=seconds,
        info=info,
        encoder=sink.encoder,
        browser_safe=sink.browser_safe,
        audio=fmt == "mp4" and info.has_audio,
        cuts=normalizer.cuts if normalizer is not None else 0,
        calibration=sink.info.calibration,
    )

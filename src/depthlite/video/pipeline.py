"""Video depth: decode -> preprocess -> network -> upsample -> normalise + encode, overlapped.

Three threads, joined by small bounded queues (so memory stays flat and a slow stage holds the
others back instead of piling frames up):

* reader: FFmpeg's decoded frames (a child process) and the preprocessing of each;
* the caller's thread: the network and the upsampling, in frame order;
* writer: the temporal normaliser, the colour map and the sink (an FFmpeg encoder child).

The network keeps both cores busy while the other stages and the two FFmpeg processes fill the
gaps. Any failure stops every stage, kills the children and removes the partial output.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depthlite.colorize import DEFAULT_COLORMAP, colormap_id
from depthlite.errors import InvalidOptionError
from depthlite.estimator import DepthEstimator
from depthlite.normalize import NormalizerOptions
from depthlite.transforms import postprocess, preprocess
from depthlite.video.ffmpeg import FrameReader, VideoInfo, probe
from depthlite.video.sinks import FrameSink, open_sink, output_format

__all__ = ["ProgressCallback", "VideoOptions", "VideoReport", "process_video"]

logger = logging.getLogger(__name__)

# (frames done, frames expected or None)
ProgressCallback = Callable[[int, "int | None"], None]
_QUEUE_FRAMES = 4
_POLL_SECONDS = 0.1
_END = object()


@dataclass(frozen=True)
class VideoOptions:
    """What ``process_video`` writes; ``fmt=None`` takes the format from the output name."""

    fmt: str | None = None
    colormap: str = DEFAULT_COLORMAP
    side: bool = False
    normalizer: NormalizerOptions = field(default_factory=NormalizerOptions)
    start: float = 0.0
    end: float | None = None
    max_frames: int | None = None
    crf: int = 20
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        colormap_id(self.colormap)
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise InvalidOptionError(
                f"need 0 <= start < end, got start={self.start} end={self.end}"
            )
        if self.max_frames is not None and self.max_frames < 1:
            raise InvalidOptionError(f"max-frames must be >= 1, got {self.max_frames}")
        if not 0 <= self.crf <= 51:
            raise InvalidOptionError(f"crf must be in 0..51, got {self.crf}")


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

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Stages:
    """The shared stop flag and first error of the three threads."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc
        self.stop.set()

    def put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue[Any]) -> Any:
        while not self.stop.is_set():
            try:
                return q.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
        return _END

    def thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # handed to the caller's thread
                self.fail(exc)

        worker = threading.Thread(target=run, name=name, daemon=True)
        worker.start()
        return worker


def _expected(info: VideoInfo, options: VideoOptions) -> int | None:
    expected = info.frames_between(options.start, options.end)
    if options.max_frames is not None:
        expected = options.max_frames if expected is None else min(expected, options.max_frames)
    return expected


def process_video(
    estimator: DepthEstimator,
    source: str | Path,
    output: str | Path,
    options: VideoOptions | None = None,
    progress: ProgressCallback | None = None,
) -> VideoReport:
    """Depth of every frame of ``source`` written to ``output`` (see :class:`VideoOptions`)."""
    options = options or VideoOptions()
    source, output = Path(source), Path(output)
    fmt = output_format(output, options.fmt)
    info = probe(source)
    if info.duration is not None and options.start >= info.duration:
        raise InvalidOptionError(
            f"start={options.start:g} s is past the end of {source.name} ({info.duration:g} s)"
        )
    policy = estimator.input_policy()  # loads the model: fail before any output exists
    trim = (options.start, options.end)
    sink = open_sink(
        fmt,
        output,
        info,
        source,
        colormap=options.colormap,
        side=options.side,
        normalizer=options.normalizer,
        trim=trim,
        crf=options.crf,
        preset=options.preset,
    )
    reader = FrameReader(source, info, options.start, options.end)
    stages, done = _Stages(), [0]
    frames: queue.Queue[Any] = queue.Queue(_QUEUE_FRAMES)
    depths: queue.Queue[Any] = queue.Queue(_QUEUE_FRAMES)
    expected = _expected(info, options)

    def read() -> None:
        count = 0
        while options.max_frames is None or count < options.max_frames:
            rgb = reader.read()
            if rgb is None or not stages.put(frames, (rgb, preprocess(rgb, policy))):
                break
            count += 1
        stages.put(frames, _END)

    def write() -> None:
        while (item := stages.get(depths)) is not _END:
            sink.write(item[1], item[0])
            done[0] += 1
            if progress is not None:
                progress(done[0], expected)

    if progress is not None:
        progress(0, expected)
    start = time.perf_counter()
    threads = [stages.thread(read, "depthlite-video-read")]
    threads.append(stages.thread(write, "depthlite-video-write"))
    try:
        _infer_loop(estimator, stages, frames, depths)
    except BaseException as exc:
        stages.fail(exc)
    if stages.error is not None:
        reader.close()  # unblocks a reader waiting on FFmpeg's pipe
    for worker in threads:
        worker.join()
    reader.close()
    seconds = time.perf_counter() - start
    return _finish(stages, sink, fmt=fmt, frames=done[0], seconds=seconds, info=info, source=source)


def _infer_loop(
    estimator: DepthEstimator,
    stages: _Stages,
    frames: queue.Queue[Any],
    depths: queue.Queue[Any],
) -> None:
    while (item := stages.get(frames)) is not _END:
        rgb, x = item
        depth = postprocess(estimator.infer(x), rgb.shape[0], rgb.shape[1])
        if not stages.put(depths, (rgb, depth)):
            return
    stages.put(depths, _END)


def _finish(
    stages: _Stages,
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
    )

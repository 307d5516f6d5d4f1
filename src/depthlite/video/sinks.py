"""Where depth frames go: an MP4, a folder of 16-bit PNGs, or one ``.npz`` of float16 frames.

Every sink writes under a temporary name next to the output and renames it into place only in
``finish``: an interrupted or failed run never leaves a half-written file under the final name.
Sinks get the model's raw output; the ones that draw (MP4, PNG) make it "near is bright"
themselves (``colorize.display_depth``). With a calibration the npz holds metres, and every
PNG frame carries it in its text chunks (as still images do: ``imageio.depthfile``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from abc import ABC, abstractmethod
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from depthlite.colorize import apply_palette, display_depth
from depthlite.errors import InvalidOptionError
from depthlite.fsutil import FILE_MODE, make_parent, output_error
from depthlite.geometry.calibration import Calibration
from depthlite.imageio.depthfile import DepthInfo, display_range, png16_text
from depthlite.imageio.png import encode_gray
from depthlite.normalize import NormalizerOptions, TemporalNormalizer, scale_levels
from depthlite.video.ffmpeg import FrameWriter, VideoInfo
from depthlite.video.formats import VIDEO_FORMATS

__all__ = ["VIDEO_FORMATS", "FrameSink", "open_sink", "output_format"]

logger = logging.getLogger(__name__)

_SUFFIX_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mp4", ".npz": "npz"}
_NAMED = {"mp4": "a .mp4 file", "npz": "a .npz file", "png16": "a folder"}


def output_format(output: Path, fmt: str | None) -> str:
    """The format asked for, or the one the output's suffix implies (a folder: png16)."""
    implied = _SUFFIX_FORMATS.get(output.suffix.lower())
    if fmt is not None:
        if fmt not in VIDEO_FORMATS:
            raise InvalidOptionError(f"unknown video format {fmt!r}; choose from {VIDEO_FORMATS}")
        if implied is not None and implied != fmt:
            raise InvalidOptionError(
                f"--format {fmt}, but {output.name!r} is named for {implied}: name the output "
                f"for {fmt} ({_NAMED[fmt]}) or leave --format out"
            )
        return fmt
    if implied is not None:
        return implied
    if not output.suffix or output.is_dir():
        return "png16"
    raise InvalidOptionError(
        f"cannot tell the format from {output.name!r}: name it .mp4 or .npz, give a folder for "
        f"a png16 sequence, or pass --format ({', '.join(VIDEO_FORMATS)})"
    )


class FrameSink(ABC):
    """Takes (depth, rgb) frame pairs in order; ``finish`` publishes, ``abort`` cleans up.

    ``depth`` is the model's raw output, which the sink may overwrite (it owns the frame).
    """

    encoder: str | None = None
    browser_safe: bool = True

    def __init__(self, output: Path, info: DepthInfo) -> None:
        self.output = output
        self.info = info

    def calibrate(self, calibration: Calibration) -> None:
        """Apply ``calibration`` from this frame on (called before the first frame)."""
        self.info = replace(self.info, calibration=calibration)

    @abstractmethod
    def write(self, depth: np.ndarray, rgb: np.ndarray) -> None: ...

    @abstractmethod
    def finish(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...


def _temp_file(output: Path, suffix: str) -> Path:
    make_parent(output)
    try:
        fd, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=suffix)
    except OSError as exc:
        raise output_error(output, exc) from exc
    os.close(fd)
    return Path(name)


class Mp4Sink(FrameSink):
    """Colour-mapped depth (optionally beside the input) through the temporal normaliser."""

    def __init__(
        self,
        output: Path,
        info: VideoInfo,
        *,
        colormap: str,
        side: bool,
        normalizer: NormalizerOptions,
        audio_from: Path | None,
        trim: tuple[float, float | None],
        crf: int,
        preset: str,
        depth_info: DepthInfo,
    ) -> None:
        super().__init__(output, depth_info)
        self.colormap = colormap
        self.side = side
        self.normalizer = TemporalNormalizer(normalizer)
        self._tmp = _temp_file(output, ".part.mp4")
        width = info.width * (2 if side else 1)
        try:
            self._writer = FrameWriter(
                self._tmp,
                width,
                info.height,
                info.fps,
                audio_from=audio_from,
                trim=trim,
                crf=crf,
                preset=preset,
            )
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self.encoder = self._writer.encoder
        self.browser_safe = self._writer.browser_safe

    def write(self, depth: np.ndarray, rgb: np.ndarray) -> None:
        display = display_depth(depth, self.info.near_is_larger, out=depth)
        color = apply_palette(self.normalizer.levels(display, bits=1), self.colormap)
        self._writer.write(np.hstack((rgb, color)) if self.side else color)

    def finish(self) -> None:
        try:
            self._writer.close()
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self._tmp.chmod(FILE_MODE)
        os.replace(self._tmp, self.output)

    def abort(self) -> None:
        self._writer.abort()
        self._tmp.unlink(missing_ok=True)


class Png16Sink(FrameSink):
    """``frame_000001.png``...: 16-bit levels of the normalised depth, in a new folder, each
    with the text chunks that say which values its levels span."""

    def __init__(self, output: Path, normalizer: NormalizerOptions, info: DepthInfo) -> None:
        super().__init__(output, info)
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise InvalidOptionError(
                f"{output} exists and is not an empty folder; choose a new folder for the frames"
            )
        make_parent(output)
        self.normalizer = TemporalNormalizer(normalizer)
        try:
            self._tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.part"))
        except OSError as exc:
            raise output_error(output, exc) from exc
        self._count = 0

    def write(self, depth: np.ndarray, rgb: np.ndarray) -> None:
        self._count += 1
        near_is_larger = self.info.near_is_larger
        # normalizer.levels, step by step, to know the range the levels span.
        display = self.normalizer.smooth_depth(display_depth(depth, near_is_larger, out=depth))
        frame = self.normalizer.update(display)
        levels = scale_levels(display, frame.lo, frame.hi, bits=2)
        text = png16_text(self.info, display_range(frame.lo, frame.hi, near_is_larger))
        data = encode_gray(levels, text=text)
        (self._tmp / f"frame_{self._count:06d}.png").write_bytes(data)

    def finish(self) -> None:
        self._tmp.chmod(0o755)
        with contextlib.suppress(FileNotFoundError):
            self.output.rmdir()  # empty (checked at start); os.replace needs it gone
        os.replace(self._tmp, self.output)

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


class NpzSink(FrameSink):
    """One ``.npz``: ``depth`` (N, H, W) float16, ``fps``, ``timestamps`` (s), and what the
    depth is: ``kind``, ``unit`` ("" if none), ``model``, ``calibration`` (JSON, "" if none).

    ``depth`` is the model's raw output, or metres (NaN where none) with a calibration. Frames
    stream to a temporary file, so memory stays flat however long the video is; the archive is
    assembled (uncompressed, so it can be memory-mapped) at the end.
    """

    def __init__(self, output: Path, fps: Fraction, start: float, info: DepthInfo) -> None:
        super().__init__(output, info)
        self.fps = fps
        self.start = start
        self._raw = _temp_file(output, ".frames")
        self._file = self._raw.open("wb")
        self._shape: tuple[int, int] | None = None
        self._count = 0

    def write(self, depth: np.ndarray, rgb: np.ndarray) -> None:
        self._shape = depth.shape
        self._count += 1
        if self.info.calibration is not None:
            depth = self.info.calibration.apply(depth)
        self._file.write(np.ascontiguousarray(depth, dtype="<f2").data)

    def finish(self) -> None:
        self._file.close()
        tmp = _temp_file(self.output, ".part.npz")
        try:
            self._assemble(tmp)
            tmp.chmod(FILE_MODE)
            os.replace(tmp, self.output)
        finally:
            tmp.unlink(missing_ok=True)
            self._raw.unlink(missing_ok=True)

    def _assemble(self, tmp: Path) -> None:
        height, width = self._shape or (0, 0)
        header = {"descr": "<f2", "fortran_order": False, "shape": (self._count, height, width)}
        times = self.start + np.arange(self._count) / float(self.fps)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            with archive.open("depth.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, header)
                with self._raw.open("rb") as raw:
                    shutil.copyfileobj(raw, member, 1 << 20)
            for name, value in (("fps", np.float64(self.fps)), ("timestamps", times),
                                *self._facts()):  # fmt: skip
                with archive.open(f"{name}.npy", "w") as member:
                    np.lib.format.write_array(member, np.asarray(value))

    def _facts(self) -> list[tuple[str, np.ndarray]]:
        info, cal = self.info, self.info.calibration
        kind, unit = ("metric_depth", "m") if cal else (info.kind, info.unit or "")
        calibration = json.dumps(cal.to_dict()) if cal else ""
        facts = {"kind": kind, "unit": unit, "model": info.model or "", "calibration": calibration}
        # Unicode string arrays: np.load reads them without pickle.
        return [(name, np.array(value)) for name, value in facts.items()]

    def abort(self) -> None:
        self._file.close()
        self._raw.unlink(missing_ok=True)


def open_sink(
    fmt: str,
    output: Path,
    info: VideoInfo,
    source: Path,
    *,
    colormap: str,
    side: bool,
    normalizer: NormalizerOptions,
    trim: tuple[float, float | None],
    crf: int,
    preset: str,
    depth_info: DepthInfo,
) -> FrameSink:
    """The sink for ``fmt`` (one of VIDEO_FORMATS), ready for frames of ``depth_info``."""
    if fmt == "png16":
        return Png16Sink(output, normalizer, depth_info)
    if fmt == "npz":
        return NpzSink(output, info.fps, trim[0], depth_info)
    return Mp4Sink(
        output,
        info,
        colormap=colormap,
        side=side,
        normalizer=normalizer,
        audio_from=source if info.has_audio else None,
        trim=trim,
        crf=crf,
        preset=preset,
        depth_info=depth_info,
    )

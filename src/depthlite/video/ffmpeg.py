"""FFmpeg as two child processes: one decodes a file to raw RGB frames, one encodes frames.

Why subprocesses and not bindings: FFmpeg's decoders and x264 then run in their own processes,
in parallel with the network and outside the GIL, and a crash in a codec cannot take the
Python process with it. The executable is ``DEPTHLITE_FFMPEG``, else ``ffmpeg`` on PATH, else
the static build of the ``imageio-ffmpeg`` package (extra ``video``), which has libx264.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from depthlite.errors import ToolUnavailableError, VideoDecodeError, VideoEncodeError

__all__ = [
    "ENCODERS",
    "FrameReader",
    "FrameWriter",
    "VideoInfo",
    "ffmpeg_executable",
    "pick_encoder",
    "probe",
]

logger = logging.getLogger(__name__)

ENV_FFMPEG = "DEPTHLITE_FFMPEG"
# In order of preference: H.264 plays in every browser; mpeg4 is the last resort (it does not).
ENCODERS = ("libx264", "libopenh264", "h264", "mpeg4")
_BROWSER_SAFE = frozenset({"libx264", "libopenh264", "h264"})
_STDERR_LINES = 30


@functools.cache
def ffmpeg_executable() -> str:
    """Path of the FFmpeg program to run; ToolUnavailableError with the fix if there is none."""
    configured = os.environ.get(ENV_FFMPEG)
    if configured:
        if shutil.which(configured) is None:
            raise ToolUnavailableError(f"{ENV_FFMPEG}={configured!r} is not an executable")
        return configured
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ToolUnavailableError(
            "video needs FFmpeg: pip install 'depthlite[video]' (bundles it), install ffmpeg "
            f"on PATH, or set {ENV_FFMPEG}"
        ) from None
    return str(imageio_ffmpeg.get_ffmpeg_exe())


@functools.cache
def _encoders(exe: str) -> frozenset[str]:
    out = subprocess.run(
        [exe, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
    ).stdout
    return frozenset(m.group(1) for m in re.finditer(r"^\s*V\S*\s+(\S+)", out, re.MULTILINE))


def pick_encoder() -> tuple[str, bool]:
    """(the best H.264 encoder this FFmpeg has, whether browsers play its output)."""
    available = _encoders(ffmpeg_executable())
    for name in ENCODERS:
        if name in available:
            return name, name in _BROWSER_SAFE
    raise ToolUnavailableError(f"this FFmpeg has none of the encoders {', '.join(ENCODERS)}")


@dataclass(frozen=True)
class VideoInfo:
    """What FFmpeg says about a file's first video stream (after rotation)."""

    width: int
    height: int
    fps: Fraction
    duration: float | None  # seconds, None if unknown (a live stream, a broken header)
    has_audio: bool
    codec: str

    def frames_between(self, start: float, end: float | None) -> int | None:
        """Expected frame count between two times (for progress), None if unknown."""
        stop = end if end is not None else self.duration
        if stop is None:
            return None
        return max(0, round((stop - start) * float(self.fps)))


_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+).*?, (\d{1,5})x(\d{1,5})")
_FPS = re.compile(r"([\d.]+) (?:fps|tbr)")
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")


def _as_fraction(fps: float) -> Fraction:
    # 29.97 means the NTSC rate 30000/1001: keep it exact so long videos stay in sync.
    ntsc = round(fps * 1.001)
    if ntsc and abs(fps - ntsc / 1.001) < 0.005:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1000)


_TAGS = re.compile(r"^(\[[^\]]*\]\s*)+")


def _last_error(lines: list[str] | deque[str]) -> str:
    # "[in#0 @ 0x55..] moov atom not found" -> "moov atom not found"
    useful = [_TAGS.sub("", line.strip()) for line in lines if line.strip()]
    return useful[-1] if useful else "FFmpeg gave no reason"


def probe(path: str | Path) -> VideoInfo:
    """The first video stream's size, rate and duration; VideoDecodeError if unreadable."""
    path = Path(path)
    if path.is_dir():
        raise VideoDecodeError("is a folder, not a video file", source=str(path))
    if not path.is_file():
        raise VideoDecodeError("no such file", source=str(path))
    proc = subprocess.run(
        [ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    text = proc.stderr
    video = _VIDEO.search(text)
    if video is None:
        reason = "no video stream" if "Stream #" in text else _last_error(text.splitlines())
        raise VideoDecodeError(f"not a readable video ({reason})", source=str(path))
    line = text[video.start() : text.find("\n", video.start())]
    fps_match = _FPS.search(line)
    width, height = int(video.group(2)), int(video.group(3))
    rotation = _ROTATION.search(text[video.start() :])
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width
    duration = _DURATION.search(text)
    seconds = None
    if duration:
        h, m, s = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    return VideoInfo(
        width=width,
        height=height,
        fps=_as_fraction(float(fps_match.group(1))) if fps_match else Fraction(25),
        duration=seconds,
        has_audio=re.search(r"Stream #\S+.*?: Audio:", text) is not None,
        codec=video.group(1),
    )


def _trim_args(start: float, end: float | None) -> list[str]:
    args = ["-ss", f"{start:.6f}"] if start > 0 else []
    if end is not None:
        args += ["-t", f"{end - start:.6f}"]
    return args


class _Child:
    """A child FFmpeg whose stderr is kept (last lines) by a thread, for error messages."""

    def __init__(self, args: list[str], *, stdin: bool) -> None:
        logger.debug("running %s", " ".join(args))
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if stdin else subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode("utf-8", "replace"))

    def wait(self) -> int:
        code = self.proc.wait()
        self._drain.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


class FrameReader:
    """Decoded RGB frames of a video, in order, at a constant rate (``info.fps``)."""

    def __init__(
        self, path: str | Path, info: VideoInfo, start: float = 0.0, end: float | None = None
    ) -> None:
        self.path = Path(path)
        self.info = info
        self._frame_bytes = info.width * info.height * 3
        # -xerror: a damaged stream stops the decoder instead of yielding grey frames.
        args = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-v", "error", "-xerror"]
        args += [*_trim_args(start, None), "-i", str(self.path)]
        if end is not None:
            args += ["-t", f"{end - start:.6f}"]
        args += ["-map", "0:v:0", "-an", "-sn", "-fps_mode", "cfr", "-r", str(info.fps)]
        args += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        self._child = _Child(args, stdin=False)

    def read(self) -> np.ndarray | None:
        """The next HxWx3 uint8 frame, or None at the end; VideoDecodeError if damaged."""
        stdout = self._child.proc.stdout
        assert stdout is not None
        data = stdout.read(self._frame_bytes)
        if len(data) == self._frame_bytes:
            return np.frombuffer(data, np.uint8).reshape(self.info.height, self.info.width, 3)
        code = self._child.wait()
        if code != 0 or data:
            reason = _last_error(self._child.stderr)
            raise VideoDecodeError(f"damaged or unreadable video ({reason})", source=str(self.path))
        return None

    def close(self) -> None:
        self._child.kill()


class FrameWriter:
    """An MP4 (H.264 where available, yuv420p, faststart) fed with RGB frames.

    ``audio_from`` muxes that file's first audio track (re-encoded to AAC, trimmed like the
    video); the output ends with the shorter of the two streams.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: Fraction,
        *,
        audio_from: Path | None = None,
        trim: tuple[float, float | None] = (0.0, None),
        crf: int = 20,
        preset: str = "veryfast",
    ) -> None:
        self.path = path
        self.encoder, self.browser_safe = pick_encoder()
        self._shape = (height, width, 3)
        # Browsers decode yuv420p, which needs even sides. Even frames are converted here
        # (cv2's BT.601 I420 is FFmpeg's default conversion within one level, and a quarter
        # of the work, with half the bytes through the pipe); odd ones are padded by FFmpeg.
        self._yuv = width % 2 == 0 and height % 2 == 0
        pix_fmt = "yuv420p" if self._yuv else "rgb24"
        args = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-v", "error", "-y"]
        args += ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{width}x{height}"]
        args += ["-r", str(fps), "-i", "-"]
        if audio_from is not None:
            args += [*_trim_args(*trim), "-i", str(audio_from), "-map", "0:v", "-map", "1:a:0?"]
            args += ["-c:a", "aac", "-b:a", "128k", "-shortest"]
        if not self._yuv:
            args += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        args += ["-pix_fmt", "yuv420p"]
        args += ["-c:v", self.encoder, *self._quality(crf, preset)]
        args += ["-movflags", "+faststart", "-f", "mp4", str(path)]
        self._child = _Child(args, stdin=True)

    def _quality(self, crf: int, preset: str) -> list[str]:
        if self.encoder == "libx264":
            return ["-crf", str(crf), "-preset", preset]
        if self.encoder == "mpeg4":
            return ["-q:v", "3"]
        return ["-b:v", "4M"]

    def write(self, frame: np.ndarray) -> None:
        stdin = self._child.proc.stdin
        assert stdin is not None
        if frame.shape != self._shape or frame.dtype != np.uint8:
            raise ValueError(f"frame {frame.shape} {frame.dtype}, expected {self._shape} uint8")
        data = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420) if self._yuv else frame
        try:
            stdin.write(np.ascontiguousarray(data).data)
        except BrokenPipeError:
            self._fail()

    def close(self) -> None:
        """Finish the file; VideoEncodeError if the encoder failed."""
        stdin = self._child.proc.stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
        if self._child.wait() != 0:
            self._fail()

    def abort(self) -> None:
        self._child.kill()

    def _fail(self) -> None:
        self._child.kill()
        reason = _last_error(self._child.stderr)
        raise VideoEncodeError(f"writing {self.path.name} failed: {reason}")

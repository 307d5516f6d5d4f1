"""What ``process_video`` writes and how: the options of the CLI, the library and video jobs.

Checked when built, so a job is refused at submit time (422) and the CLI before the model
loads (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depthlite.colorize import DEFAULT_COLORMAP, colormap_id
from depthlite.errors import InvalidOptionError
from depthlite.geometry.calibration import FITS, Calibration, KnownPoint
from depthlite.normalize import NormalizerOptions
from depthlite.video.sinks import output_format

__all__ = ["MAX_FRAMES", "VideoOptions"]

# Far above any real video (a day at 240 fps is 21M frames) and far below SQLite's int64.
MAX_FRAMES = 100_000_000


@dataclass(frozen=True)
class VideoOptions:
    """What ``process_video`` writes; ``fmt=None`` takes the format from the output name.

    ``known`` points fit one calibration on the first frame (a fixed camera), or
    ``calibration`` gives one; the npz then holds metres and the PNG frames carry it.
    """

    fmt: str | None = None
    colormap: str = DEFAULT_COLORMAP
    side: bool = False
    normalizer: NormalizerOptions = field(default_factory=NormalizerOptions)
    start: float = 0.0
    end: float | None = None
    max_frames: int | None = None
    crf: int = 20
    preset: str = "veryfast"
    known: tuple[KnownPoint, ...] = ()
    fit: str = "auto"
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        colormap_id(self.colormap)
        if self.fit not in FITS:
            raise InvalidOptionError(f"invalid fit {self.fit!r}; choose one of: {', '.join(FITS)}")
        if self.known and self.calibration is not None:
            raise InvalidOptionError("give known points or a saved calibration, not both")
        if len(self.known) == 1:
            raise InvalidOptionError("one known point cannot fix a calibration: give two or more")
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise InvalidOptionError(
                f"need 0 <= start < end, got start={self.start} end={self.end}"
            )
        if self.max_frames is not None and not 1 <= self.max_frames <= MAX_FRAMES:
            raise InvalidOptionError(
                f"max-frames must be in 1..{MAX_FRAMES}, got {self.max_frames}"
            )
        if not 0 <= self.crf <= 51:
            raise InvalidOptionError(f"crf must be in 0..51, got {self.crf}")
        if self.fmt is not None:
            self._check_side(self.fmt)

    def _check_side(self, fmt: str) -> None:
        if self.side and fmt != "mp4":
            raise InvalidOptionError(
                f"side by side (--side, side=true) puts the input beside the colour map in an "
                f"mp4; {fmt} holds depth only: drop it, or write mp4"
            )

    def output_format(self, output: Path) -> str:
        """The format ``output`` gets (``fmt``, or its name's), checked against the options."""
        fmt = output_format(output, self.fmt)
        self._check_side(fmt)
        return fmt

    @classmethod
    def from_flat(cls, values: Any, fmt: str | None) -> VideoOptions:
        """Options from an object with the CLI's flat names (``normalize``, ``percentiles``,
        ``smoothing``, ``cut_threshold``, ``depth_smoothing``, ``colormap``, ``side``,
        ``start``, ``end``, ``max_frames``, ``crf``, ``preset``): parsed arguments, a job spec.
        """
        normalizer = NormalizerOptions(
            mode=values.normalize,
            percentiles=tuple(values.percentiles),
            smoothing=values.smoothing,
            cut_threshold=values.cut_threshold,
            depth_smoothing=values.depth_smoothing,
        )
        names = ("colormap", "side", "start", "end", "max_frames", "crf", "preset")
        calibration = getattr(values, "calibration", None)
        if isinstance(calibration, str):  # a job spec keeps it as JSON
            calibration = Calibration.from_json(calibration)
        known = tuple(
            p if isinstance(p, KnownPoint) else KnownPoint(*p) for p in getattr(values, "known", ())
        )
        return cls(
            fmt=fmt,
            normalizer=normalizer,
            known=known,
            fit=getattr(values, "fit", None) or "auto",
            calibration=calibration,
            **{n: getattr(values, n) for n in names},
        )

"""What a job is: its kind, its options, its states. Plain data, JSON both ways.

The same options as ``POST /v1/depth`` (images) and ``depthlite video`` (a video), so a job
is a deferred call of one of them; the embedded runner, the Celery worker and ``depthlite
batch`` all read this one description. Image outputs are validated by the library's
:class:`~depthlite.imageio.OutputRequest` (:meth:`JobSpec.output_request`), the one place
that knows them, and video options by :class:`~depthlite.video.pipeline.VideoOptions`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from depthlite.colorize import DEFAULT_COLORMAP
from depthlite.errors import DepthliteError, InvalidOptionError, clip
from depthlite.geometry.calibration import Calibration, KnownPoint
from depthlite.geometry.intrinsics import CameraSpec
from depthlite.imageio import OUTPUT_FORMATS, OutputRequest
from depthlite.normalize import NormalizerOptions
from depthlite.options import PRECISIONS, RESIZE_MODES, check_choice
from depthlite.video.formats import VIDEO_FORMATS
from depthlite.video.options import VideoOptions
from depthlite.zoo import get_card

__all__ = [
    "FINAL_STATES",
    "JOB_KINDS",
    "JOB_STATES",
    "JobCancelledError",
    "JobNotFoundError",
    "JobSpec",
    "JobStateError",
]

JOB_KINDS = ("images", "video")
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = frozenset({"done", "failed", "cancelled"})


class JobNotFoundError(DepthliteError):
    """No such job for this caller (never existed, expired, or another key's)."""

    code = "job_not_found"
    status = 404

    @classmethod
    def for_id(cls, job_id: str) -> JobNotFoundError:
        return cls(f"no job {clip(job_id)!r} (unknown, or its results expired)")


class JobStateError(DepthliteError):
    """The job is not in a state that allows this (e.g. a result before it is done)."""

    code = "job_not_done"
    status = 409


class JobCancelledError(DepthliteError):
    """Raised inside a running job when its cancellation was asked for."""

    code = "job_cancelled"
    status = 409


@dataclass(frozen=True)
class JobSpec:
    """A job's options. ``formats`` are image outputs, or one video format."""

    kind: str = "images"
    formats: tuple[str, ...] = ("color",)
    colormap: str = DEFAULT_COLORMAP
    resize: str | None = None
    side: bool = False
    start: float = 0.0
    end: float | None = None
    max_frames: int | None = None
    normalize: str = "temporal"
    smoothing: float = NormalizerOptions.smoothing
    percentiles: tuple[float, float] = NormalizerOptions.percentiles
    cut_threshold: float = NormalizerOptions.cut_threshold
    depth_smoothing: float = 0.0
    crf: int = 20
    preset: str = "veryfast"
    # None: whatever the runner loaded. Set, a worker running another precision refuses the job.
    precision: str | None = None
    # None: the server's default model. Set: the model's canonical name (aliases resolved).
    model: str | None = None
    # Metres and 3-D: known points as (x, y, metres), or a saved calibration (its JSON).
    known: tuple[tuple[int, int, float], ...] = ()
    fit: str = "auto"
    calibration: str | None = None
    fov: float | None = None
    focal_px: float | None = None
    principal: tuple[float, float] | None = None
    stride: int = 1
    sidecar: bool | None = None

    def __post_init__(self) -> None:
        check_choice("job kind", self.kind, JOB_KINDS)
        object.__setattr__(self, "known", tuple(tuple(p) for p in self.known))
        if self.principal is not None:
            object.__setattr__(self, "principal", tuple(self.principal))
        self._check_formats()
        if self.resize is not None:
            check_choice("resize", self.resize, RESIZE_MODES)
        if self.precision is not None:
            check_choice("precision", self.precision, PRECISIONS)
        if self.model is not None:
            object.__setattr__(self, "model", get_card(self.model).name)
        # Every option is checked whatever the kind: an image job ignores the video options,
        # but a value a video job would refuse is a client error either way.
        VideoOptions.from_flat(self, fmt=self.formats[0] if self.kind == "video" else None)
        request = self.output_request(check_formats=self.kind == "images")
        if self.model is not None:
            card = get_card(self.model)
            request.check(card.output.kind, card.name)

    def output_request(self, *, check_formats: bool = True) -> OutputRequest:
        """The image outputs this job asks for (InvalidOptionError if they cannot be)."""
        return OutputRequest(
            formats=self.formats if check_formats else ("npy",),
            colormap=self.colormap,
            known=tuple(KnownPoint(*p) for p in self.known),
            fit=self.fit,
            calibration=Calibration.from_json(self.calibration) if self.calibration else None,
            camera=CameraSpec(self.fov, self.focal_px, self.principal),
            stride=self.stride,
            sidecar=self.sidecar,
        )

    def _check_formats(self) -> None:
        allowed = OUTPUT_FORMATS if self.kind == "images" else VIDEO_FORMATS
        given = ",".join(self.formats)
        if not self.formats or any(f not in allowed for f in self.formats):
            raise InvalidOptionError(
                f"format {given!r} is not valid for {self.kind}; "
                f"give one or more of {','.join(allowed)}, comma-separated"
            )
        if len(set(self.formats)) != len(self.formats):
            raise InvalidOptionError(f"format {given!r} names a format twice")
        if self.kind == "video" and len(self.formats) != 1:
            raise InvalidOptionError("a video job has exactly one format: mp4, png16 or npz")

    def video_options(self) -> VideoOptions:
        return VideoOptions.from_flat(self, fmt=self.formats[0])

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        data = json.loads(text)
        data["formats"] = tuple(data["formats"])
        data["percentiles"] = tuple(data["percentiles"])
        data["known"] = tuple(tuple(p) for p in data.get("known", ()))
        return cls(**data)

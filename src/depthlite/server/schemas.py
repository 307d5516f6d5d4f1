"""The API's vocabulary: parameter enums (generated from the library's tables) and bodies.

Every enum here is built from the library's single sources of truth (``depthlite.options``,
``depthlite.zoo``,
``depthlite.colorize.COLORMAPS``, ``depthlite.imageio.OUTPUT_FORMATS``), so a new colour map
or output format appears in the API and its OpenAPI document without an edit here.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from depthlite.colorize import COLORMAPS
from depthlite.geometry.calibration import FITS, MAX_POINTS
from depthlite.imageio import OUTPUT_FORMATS
from depthlite.options import PRECISIONS, RESIZE_MODES
from depthlite.zoo.cards import OutputKind

__all__ = [
    "API_FORMATS",
    "COLORMAP_NAMES",
    "MODEL_QUERY_HELP",
    "CalibrationBody",
    "CalibrationPointIn",
    "CalibrationPointOut",
    "CalibrationRequest",
    "ColormapName",
    "DepthSummary",
    "ErrorBody",
    "FitName",
    "HealthBody",
    "InputPolicyInfo",
    "JobInfo",
    "JobProgress",
    "KindName",
    "LicenceInfo",
    "ModelFileInfo",
    "ModelInfo",
    "ModelsBody",
    "OutputFormat",
    "PrecisionName",
    "ReadyBody",
    "ResizeMode",
    "error_responses",
]

# The library's file formats plus two the API adds: the colour map as JPEG, and statistics.
API_FORMATS: tuple[str, ...] = (*OUTPUT_FORMATS, "jpeg", "json")
COLORMAP_NAMES: tuple[str, ...] = tuple(sorted(COLORMAPS))

# Literal[tuple] is how typing spells "one of these runtime values"; FastAPI turns it into an
# OpenAPI enum and answers anything else with a 422.
OutputFormat = Literal[API_FORMATS]  # type: ignore[valid-type]
ColormapName = Literal[COLORMAP_NAMES]  # type: ignore[valid-type]
ResizeMode = Literal[RESIZE_MODES]  # type: ignore[valid-type]
PrecisionName = Literal[PRECISIONS]  # type: ignore[valid-type]
FitName = Literal[FITS]  # type: ignore[valid-type]
KindName = Literal[get_args(OutputKind)]  # type: ignore[valid-type]
# Bounds that keep the fit's float64 sums finite; far beyond any real pixel, value or distance.
_MAX_COORDINATE = 2**31 - 1
_MAX_VALUE = 1e30
_DISTANCE_RANGE = (1e-6, 1e6)
# Any known name or alias; whether the server loaded it is checked per request (422 lists them).
MODEL_QUERY_HELP = "model to use (default: the server's first); GET /v1/models lists the loaded"


class ErrorBody(BaseModel):
    """Every error: a stable machine-readable code and a human sentence."""

    error: str = Field(examples=["unsupported_media_type"])
    detail: str = Field(examples=["not a recognised image; supported formats: JPEG, PNG"])


# What each error status means, wherever it is documented (one wording for the whole API).
_ERROR_MEANINGS = {
    400: "a Host this server does not serve, or the client went away mid-upload",
    401: "missing or wrong API key",
    404: "no such job for this key (unknown, or its results expired)",
    408: "the request was not sent within the server's deadlines",
    409: "the job is not in a state that allows this (e.g. no result yet)",
    413: "body or image too large",
    415: "not an image, or an unsupported format",
    422: "an invalid parameter value, or a corrupt or missing input",
    503: "overloaded, queue timeout, not ready or shutting down (Retry-After)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses: an :class:`ErrorBody` each."""
    return {
        status: {"model": ErrorBody, "description": _ERROR_MEANINGS[status]} for status in statuses
    }


def _pair(description: str) -> Any:
    # A list of fixed length, not a tuple: tuples become "prefixItems", which OpenAPI 3.0
    # tools (and many 3.1 ones) cannot read.
    return Field(min_length=2, max_length=2, description=description)


class CalibrationPointIn(BaseModel):
    """A known point: a pixel, the model's value there (``depth[y, x]`` of the npy) and its
    distance in metres."""

    x: float = Field(ge=0, le=_MAX_COORDINATE, description="pixel column, 0-based (rounded)")
    y: float = Field(ge=0, le=_MAX_COORDINATE, description="pixel row, 0-based, down (rounded)")
    value: float = Field(ge=-_MAX_VALUE, le=_MAX_VALUE, allow_inf_nan=False)
    distance: float = Field(
        ge=_DISTANCE_RANGE[0],
        le=_DISTANCE_RANGE[1],
        allow_inf_nan=False,
        description="metres, along the camera's axis",
    )


class CalibrationRequest(BaseModel):
    """``POST /v1/calibration``: fit metres to known points of a depth map."""

    model: str | None = Field(default=None, description="the model the values came from")
    kind: KindName = Field(description="the output kind of the values (format=json says it)")
    points: list[CalibrationPointIn] = Field(min_length=2, max_length=MAX_POINTS)
    fit: FitName = Field(
        default="auto", description="auto: scale_shift for relative kinds, scale for metric"
    )


class CalibrationPointOut(BaseModel):
    x: int
    y: int
    value: float
    distance: float
    predicted: float = Field(description="metres the calibration gives here")
    residual: float = Field(description="predicted - distance, metres")
    weight: float = Field(description="the robust fit's weight (1: fully trusted)")


class CalibrationBody(BaseModel):
    """A calibration: ``space`` inverse: 1/d = scale * value + shift; linear: d = ..."""

    model: str | None
    kind: str
    input_size: list[int] | None = Field(description="[height, width] of the network input")
    space: Literal["inverse", "linear"]
    fit: Literal["scale", "scale_shift"]
    method: Literal["least_squares", "huber"]
    scale: float
    shift: float
    rms: float = Field(description="root mean square of the residuals, metres")
    points: list[CalibrationPointOut]


class DepthSummary(BaseModel):
    """``format=json``: statistics of the depth map instead of the map itself."""

    width: int
    height: int
    min: float | None
    max: float | None
    mean: float | None
    percentiles: dict[str, float | None] = Field(description='keys "1", "5", "50", "95", "99"')
    network_input: list[int] = _pair("[height, width] the network ran at")
    kind: str = Field(
        description="relative_inverse_depth | relative_disparity | metric_depth (min/max/"
        "percentiles are then in the unit)"
    )
    unit: str | None = Field(description='"m" for metric depth; null for relative outputs')
    near_is_larger: bool = Field(description="true for inverse depth and disparity")
    calibration: CalibrationBody | None = Field(
        default=None, description="the fit of the known= points, when given"
    )
    model: str
    backend: str
    precision: str
    resize: str
    timings_ms: dict[str, float]


class InputPolicyInfo(BaseModel):
    size: int
    multiple_of: int
    resize: str
    rule: str = Field(description="upper_bound | lower_bound | minimal (keep_aspect's rule)")
    mean: list[float] | None = Field(min_length=3, max_length=3, description="per RGB channel")
    std: list[float] | None = Field(min_length=3, max_length=3, description="per RGB channel")


class ModelFileInfo(BaseModel):
    name: str = Field(description="file name (the full path stays private)")
    origin: str = Field(description="converted | official-onnx | checkpoint | quantized | user")
    steps: list[str] = Field(description="how the file was resolved, step by step")


class LicenceInfo(BaseModel):
    spdx: str
    commercial: bool = Field(description="whether the licence allows commercial use")
    url: str
    note: str = Field(description="where sources disagree, or what to read first")


class ModelInfo(BaseModel):
    name: str
    aliases: list[str]
    family: str
    description: str
    params: int
    output: str
    kind: str = Field(description="relative_inverse_depth | relative_disparity | metric_depth")
    unit: str | None
    licence: LicenceInfo
    default: bool = Field(description="requests without ?model= use this one")
    backend: str
    precision: str
    precision_auto: str | None = Field(
        None, description="with --precision auto: what it chose and why, once loaded"
    )
    precisions: list[str] = Field(description="precisions this server answers (query param)")
    resize: str = Field(description="default resize mode")
    threads: int | None
    loaded: bool
    ready: bool = Field(description="loaded and warmed up")
    input_policy: InputPolicyInfo | None
    model_file: ModelFileInfo | None


class ModelsBody(BaseModel):
    version: str
    models: list[ModelInfo]
    formats: list[str]
    colormaps: list[str]
    default_colormap: str
    resize_modes: list[str]
    workers: int
    queue_size: int
    max_body_bytes: int
    max_pixels: int


class HealthBody(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyBody(BaseModel):
    status: Literal["ready"] = "ready"
    model: str
    warmup_ms: float


class JobProgress(BaseModel):
    done: int = Field(description="images (or video frames) finished")
    total: int | None = Field(description="how many there are, when known")
    fraction: float | None = Field(description="done / total, when known")


class JobInfo(BaseModel):
    """A job's state, as ``POST /v1/jobs`` and ``GET /v1/jobs/{id}`` return it."""

    id: str
    kind: Literal["images", "video"]
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: JobProgress
    inputs: int
    attempts: int = Field(description="times the job was started (restarts count)")
    error: str | None = Field(description="why the job failed, if it did")
    failures: list[dict[str, str]] = Field(description="inputs that failed in a done job")
    created: str
    updated: str
    finished: str | None
    expires: str | None = Field(description="when the job and its result are deleted")
    links: dict[str, str]

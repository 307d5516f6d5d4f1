"""The CPU work of one depth request, run on a pool worker: decode, predict, encode.

Everything here is plain synchronous code with no web-framework types, so it can run on the
worker threads (decoding and encoding are CPU work too and must not run on the event loop) and
be reused by other front ends (a WebSocket stream, a job queue).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from depthlite.estimator import DepthEstimator, DepthResult
from depthlite.imageio import (
    OUTPUT_FORMATS,
    OUTPUT_SUFFIX,
    OutputRequest,
    encode_jpeg,
    load_image,
    read_exif_focal,
)
from depthlite.imageio.png import read_text
from depthlite.server.schemas import CalibrationBody, DepthSummary

__all__ = ["MEDIA_TYPES", "STAGES", "DepthJob", "RenderedDepth", "render_depth", "server_timing"]

# Server-Timing order: the pipeline's, then the time spent waiting for a worker.
STAGES = ("decode", "preprocess", "inference", "postprocess", "encode", "queue")
_BINARY = "application/octet-stream"
MEDIA_TYPES: dict[str, str] = {
    "color": "image/png",
    "png16": "image/png",
    "side": "image/png",
    "normals": "image/png",
    "jpeg": "image/jpeg",
    "npy": _BINARY,
    "pfm": _BINARY,
    "metric": _BINARY,
    "metric_pfm": _BINARY,
    "normals_npy": _BINARY,
    "ply": _BINARY,  # PLY has no registered media type
    "json": "application/json",
}
# Arrays and point clouds are files to save; images and statistics are shown in place.
_ATTACHMENTS = frozenset({"npy", "pfm", "metric", "metric_pfm", "normals_npy", "ply"})
_EXTRA_SUFFIX = {"jpeg": "_color.jpg", "json": ".json"}
_PERCENTILES = (1, 5, 50, 95, 99)
_JPEG_QUALITY = 90


@dataclass(frozen=True)
class DepthJob:
    """One request's input and options; ``submitted`` is ``perf_counter()`` at submission.

    ``request`` carries the known points, camera and stride (its formats are the file format
    asked for, or none for json and jpeg).
    """

    data: bytes | bytearray
    fmt: str
    colormap: str
    resize: str | None
    max_pixels: int
    submitted: float
    source: str = "<body>"
    stem: str = "depth"
    request: OutputRequest = field(default_factory=lambda: OutputRequest(formats=()))

    @staticmethod
    def output_request(fmt: str, colormap: str, **options: object) -> OutputRequest:
        """The request of format ``fmt``; InvalidOptionError for what cannot be made."""
        formats = (fmt,) if fmt in OUTPUT_FORMATS else ()
        return OutputRequest(formats=formats, colormap=colormap, sidecar=False, **options)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RenderedDepth:
    content: bytes
    media_type: str
    filename: str
    attachment: bool
    width: int
    height: int
    timings: dict[str, float]  # milliseconds, keys in STAGES order
    headers: dict[str, str] = field(default_factory=dict)  # X-Depth-* of a png16


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _finite(value: float) -> float | None:
    # JSON has no NaN/Infinity; a degenerate map reports null rather than invalid JSON.
    return float(value) if math.isfinite(value) else None


def _statistics(depth: np.ndarray) -> dict[str, object]:
    percentiles = np.percentile(depth, _PERCENTILES)
    return {
        "width": depth.shape[1],
        "height": depth.shape[0],
        "min": _finite(depth.min()),
        "max": _finite(depth.max()),
        "mean": _finite(depth.mean(dtype=np.float64)),
        "percentiles": {str(p): _finite(v) for p, v in zip(_PERCENTILES, percentiles, strict=True)},
    }


def _summary_json(
    stats: dict[str, object], result: DepthResult, est: DepthEstimator, timings: dict[str, float]
) -> bytes:
    summary = DepthSummary(
        **stats,  # type: ignore[arg-type]
        network_input=result.network_output.shape[-2:],
        kind=result.kind,
        unit=result.unit,
        near_is_larger=result.near_is_larger,
        calibration=_calibration_body(result),
        model=result.model,
        backend=result.backend,
        precision=est.precision,
        resize=result.resize,
        timings_ms=timings,
    )
    return summary.model_dump_json().encode()


def _calibration_body(result: DepthResult) -> CalibrationBody | None:
    if result.calibration is None:
        return None
    data = result.calibration.to_dict()
    return CalibrationBody(**{key: data[key] for key in CalibrationBody.model_fields})


def _encode(job: DepthJob, result: DepthResult) -> bytes:
    if job.fmt == "jpeg":
        return encode_jpeg(result.colorize(job.colormap), quality=_JPEG_QUALITY)
    # One encoder for files and the API: the same bytes `depthlite predict` writes.
    return result.render(job.request, stem=job.stem)[job.fmt]


def _png16_headers(content: bytes) -> dict[str, str]:
    """The png16's Depth-* text chunks as X-Depth-* headers (the calibration JSON stays in
    the file): one set of facts, read back from the bytes sent."""
    chunks = read_text(content)
    return {f"X-{k}": v for k, v in chunks.items() if k.startswith("Depth-") and
            k != "Depth-Calibration"}  # fmt: skip


def render_depth(est: DepthEstimator, job: DepthJob) -> RenderedDepth:
    """Decode ``job.data``, run the model, encode the requested format; raises InputError."""
    started = time.perf_counter()
    queue_ms = (started - job.submitted) * 1000.0
    rgb = load_image(job.data, max_pixels=job.max_pixels, source=job.source)
    decode_ms = _ms_since(started)
    # An array goes through predict's own decode step without a copy.
    result = est.predict(rgb, resize=job.resize, source=job.source)
    if job.request.needs_exif:
        result.exif = read_exif_focal(job.data, job.source)
    timings = {"decode": decode_ms}
    timings.update({stage: result.timings[stage] for stage in STAGES[1:4]})
    encode_start = time.perf_counter()
    # For json the "encode" stage is the statistics: the part of the work that scales.
    if job.fmt in ("json", "jpeg") and job.request.known:
        result.calibrate(job.request.known, job.request.fit)
    stats = _statistics(result.depth) if job.fmt == "json" else None
    content = _encode(job, result) if stats is None else b""
    timings["encode"] = _ms_since(encode_start)
    timings["queue"] = queue_ms
    if stats is not None:
        content = _summary_json(stats, result, est, timings)
    suffix = OUTPUT_SUFFIX.get(job.fmt) or _EXTRA_SUFFIX[job.fmt]
    return RenderedDepth(
        content=content,
        media_type=MEDIA_TYPES[job.fmt],
        filename=f"{job.stem}{suffix}",
        attachment=job.fmt in _ATTACHMENTS,
        width=result.depth.shape[1],
        height=result.depth.shape[0],
        timings=timings,
        headers=_png16_headers(content) if job.fmt == "png16" else {},
    )


def server_timing(timings: dict[str, float]) -> str:
    """The standard ``Server-Timing`` header value, stages in pipeline order."""
    parts = [f"{stage};dur={timings[stage]:.2f}" for stage in STAGES if stage in timings]
    parts.append(f"total;dur={sum(timings.values()):.2f}")
    return ", ".join(parts)

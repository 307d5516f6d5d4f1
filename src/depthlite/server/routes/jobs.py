"""``/v1/jobs``: submit work, walk away, come back for the result.

``POST /v1/jobs`` answers 202 at once with the job (its id is 128 random bits); ``GET`` shows
state and progress with an ``ETag`` (``If-None-Match`` gives 304) and, while the job is not
finished, ``Retry-After``; ``GET .../result`` is the output (one file, or a zip); ``DELETE``
cancels a queued or running job, or deletes a finished one. With API keys, a job exists only
for the key that made it (others get 404, as for an unknown id).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from depthlite.colorize import DEFAULT_COLORMAP
from depthlite.errors import InvalidOptionError
from depthlite.jobs.execute import input_name
from depthlite.jobs.spec import JobNotFoundError, JobSpec
from depthlite.jobs.store import Job
from depthlite.normalize import (
    DEFAULT_CUT_THRESHOLD,
    DEFAULT_SMOOTHING,
    NORMALIZER_MODES,
    parse_percentiles,
)
from depthlite.server.deps import Owner, ServiceDep
from depthlite.server.routes.calibration import GeometryQuery, geometry_query
from depthlite.server.schemas import (
    MODEL_QUERY_HELP,
    ColormapName,
    JobInfo,
    JobProgress,
    PrecisionName,
    ResizeMode,
    error_responses,
)
from depthlite.server.service import Service
from depthlite.server.upload import SavedFile, save_uploads, upload_body
from depthlite.video.formats import X264_PRESETS
from depthlite.video.options import MAX_FRAMES
from depthlite.zoo import get_card

__all__ = ["router"]

_VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg"})
_POLL_AFTER_SECONDS = "1"
# A result's type by its suffix (not guessed: mimetypes knows neither .npy nor .pfm).
_RESULT_TYPES = {".png": "image/png", ".zip": "application/zip", ".mp4": "video/mp4"}
_BINARY = "application/octet-stream"


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, tz=timezone.utc).isoformat(timespec="seconds")


def _info(job: Job) -> JobInfo:
    fraction = job.done / job.total if job.total else (1.0 if job.state == "done" else None)
    links = {"self": f"/v1/jobs/{job.id}"}
    if job.state == "done":
        links["result"] = f"/v1/jobs/{job.id}/result"
    return JobInfo(
        id=job.id,
        kind=job.spec.kind,
        state=job.state,  # type: ignore[arg-type]
        progress=JobProgress(done=job.done, total=job.total, fraction=fraction),
        inputs=len(job.inputs),
        attempts=job.attempts,
        error=job.error,
        failures=list(job.failures),
        created=_iso(job.created),  # type: ignore[arg-type]
        updated=_iso(job.updated),  # type: ignore[arg-type]
        finished=_iso(job.finished),
        expires=_iso(job.expires),
        links=links,
    )


def _headers(job: Job) -> dict[str, str]:
    headers = {"ETag": f'"{job.id}.{job.revision}"', "Cache-Control": "no-cache"}
    if not job.final:
        headers["Retry-After"] = _POLL_AFTER_SECONDS
    return headers


def _kind(requested: str, files: list[SavedFile]) -> str:
    if requested != "auto":
        return requested
    video = [
        f
        for f in files
        if f.content_type.startswith("video/") or f.path.suffix.lower() in _VIDEO_SUFFIXES
    ]
    return "video" if video else "images"


def _geometry_params(geometry: GeometryQuery) -> dict[str, object]:
    camera = geometry.camera
    return {
        "known": tuple((p.x, p.y, p.distance) for p in geometry.known),
        "fit": geometry.fit,
        "fov": camera.fov,
        "focal_px": camera.focal_px,
        "principal": camera.principal,
        "stride": geometry.stride,
    }


def _spec(kind: str, files: list[SavedFile], params: dict[str, object]) -> JobSpec:
    if kind == "video" and len(files) != 1:
        raise InvalidOptionError(f"a video job takes exactly one file, got {len(files)}")
    fmt = params.pop("format")
    # Empty items are kept, so "format=,," is refused by the spec instead of meaning "default".
    formats = tuple(f.strip() for f in str(fmt).split(",")) if fmt is not None else None
    return JobSpec(
        kind=kind, formats=formats or (("mp4",) if kind == "video" else ("color",)), **params
    )  # type: ignore[arg-type]


async def _create(
    request: Request, service: Service, owner: str, kind: str, params: dict[str, object]
) -> Job:
    """Save the uploads, build the spec, queue the job; the upload folder never outlives it."""
    service.check_available()
    service.jobs.check_capacity()  # before reading a byte of the upload
    settings = service.settings
    with service.jobs.uploads.folder() as folder:
        files = await save_uploads(request, settings.max_job_bytes, settings.max_job_files, folder)
        kind = _kind(kind, files)
        if kind == "video":  # an empty part (a form's unused file input) is not a second file
            files = [f for f in files if f.path.stat().st_size > 0]
        spec = _spec(kind, files, params)
        return await asyncio.to_thread(service.jobs.submit, spec, [f.path for f in files], owner)


@dataclass(frozen=True)
class JobQuery:
    """What a job asks for: its kind, model and precision, and the rest of its spec."""

    kind: str
    model: str | None
    precision: str | None
    params: dict[str, object]


def job_query(
    *,
    kind: Annotated[Literal["auto", "images", "video"], Query()] = "auto",
    fmt: Annotated[
        str | None,
        Query(
            alias="format",
            description="images: a comma list of the /v1/depth file formats (color, "
            "png16, npy, pfm, side, metric, metric_pfm, ply, normals, normals_npy); "
            "video: mp4|png16|npz",
            pattern=r"^[a-z0-9]+(,[a-z0-9]+)*$",
        ),
    ] = None,
    colormap: ColormapName = DEFAULT_COLORMAP,
    resize: ResizeMode | None = None,
    side: bool = False,
    start: Annotated[float, Query(ge=0, allow_inf_nan=False)] = 0.0,
    end: Annotated[float | None, Query(gt=0, allow_inf_nan=False)] = None,
    max_frames: Annotated[int | None, Query(ge=1, le=MAX_FRAMES)] = None,
    normalize: Annotated[Literal[NORMALIZER_MODES], Query()] = "temporal",  # type: ignore[valid-type]
    smoothing: Annotated[float, Query(allow_inf_nan=False)] = DEFAULT_SMOOTHING,
    percentiles: Annotated[str, Query(description="video: LOW,HIGH")] = "2,98",
    cut_threshold: Annotated[float, Query(allow_inf_nan=False)] = DEFAULT_CUT_THRESHOLD,
    depth_smoothing: Annotated[float, Query(allow_inf_nan=False)] = 0.0,
    crf: Annotated[int, Query(ge=0, le=51)] = 20,
    preset: Annotated[Literal[X264_PRESETS], Query()] = "veryfast",  # type: ignore[valid-type]
    precision: Annotated[
        PrecisionName | None, Query(description="must be one the server loaded")
    ] = None,
    model: Annotated[str | None, Query(description=MODEL_QUERY_HELP)] = None,
    geometry: Annotated[GeometryQuery, Depends(geometry_query)],
    sidecar: Annotated[
        bool,
        Query(
            description="a <stem>.json per image saying what its files hold (the png16 "
            "files say it in their text chunks either way)"
        ),
    ] = False,
) -> JobQuery:
    """A FastAPI dependency: the job's query parameters, checked by their types (bad: 422)."""
    params: dict[str, object] = {
        "format": fmt,
        "colormap": colormap,
        "resize": resize,
        "side": side,
        "start": start,
        "end": end,
        "max_frames": max_frames,
        "normalize": normalize,
        "smoothing": smoothing,
        "percentiles": parse_percentiles(percentiles),
        "cut_threshold": cut_threshold,
        "depth_smoothing": depth_smoothing,
        "crf": crf,
        "preset": preset,
        **_geometry_params(geometry),
        "sidecar": sidecar,
    }
    return JobQuery(kind, model, precision, params)


async def submit(
    request: Request,
    service: ServiceDep,
    owner: Owner,
    query: Annotated[JobQuery, Depends(job_query)],
) -> JSONResponse:
    model = query.model
    if service.settings.queue:  # with a queue, the workers' model and precision count
        model = get_card(model).name if model is not None else None
    else:
        est = service.pick(model)
        service.check_precision(query.precision, est)
        model = est.card.name
    params = {**query.params, "precision": query.precision, "model": model}
    job = await _create(request, service, owner, query.kind, params)
    headers = {**_headers(job), "Location": f"/v1/jobs/{job.id}"}
    return JSONResponse(_info(job).model_dump(), status_code=202, headers=headers)


async def status(job_id: str, request: Request, service: ServiceDep, owner: Owner) -> Response:
    job = await asyncio.to_thread(service.jobs.get, job_id, owner)
    headers = _headers(job)
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return JSONResponse(_info(job).model_dump(), headers=headers)


async def result(job_id: str, service: ServiceDep, owner: Owner) -> FileResponse:
    job = await asyncio.to_thread(service.jobs.get, job_id, owner)
    path = await asyncio.to_thread(service.jobs.result_path, job)
    if not path.is_file():  # expired or deleted between the lookup and now
        raise JobNotFoundError.for_id(job_id)
    name = path.name if path.name != "result.zip" else f"depthlite-{job.id[:8]}.zip"
    media = _RESULT_TYPES.get(path.suffix.lower(), _BINARY)
    return FileResponse(
        path, filename=input_name(Path(name).name), media_type=media, headers=_headers(job)
    )


async def cancel(job_id: str, service: ServiceDep, owner: Owner) -> Response:
    job = await asyncio.to_thread(service.jobs.cancel, job_id, owner)
    if job is None:
        return Response(status_code=204)
    code = 200 if job.final else 202
    return JSONResponse(_info(job).model_dump(), status_code=code, headers=_headers(job))


def router() -> APIRouter:
    api = APIRouter(prefix="/v1/jobs", tags=["jobs"])
    api.post(
        "",
        status_code=202,
        summary="Submit images or a video for later",
        response_model=JobInfo,
        responses=error_responses(413, 422, 503),
        openapi_extra=upload_body(many=True),
    )(submit)
    api.get(
        "/{job_id}",
        summary="State and progress of a job",
        response_model=JobInfo,
        responses={304: {"description": "unchanged since the If-None-Match ETag"}}
        | error_responses(404),
    )(status)
    api.get(
        "/{job_id}/result",
        summary="The output: one file, or a zip",
        response_class=FileResponse,
        responses={
            200: {
                "content": {media: {} for media in {*_RESULT_TYPES.values(), _BINARY}},
                "description": "the file: an image, a video, an array (.npy/.npz/.pfm) or a zip",
            }
        }
        | error_responses(404, 409),
    )(result)
    api.delete(
        "/{job_id}",
        summary="Cancel a job, or delete a finished one",
        responses={
            200: {"model": JobInfo, "description": "cancelled before it ran"},
            202: {"model": JobInfo, "description": "cancelling: it stops at its next step"},
            204: {"description": "a finished job, deleted"},
        }
        | error_responses(404),
    )(cancel)
    return api

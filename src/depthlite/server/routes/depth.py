"""``POST /v1/depth``: an image in, a depth map (or its statistics) out.

The handler only does I/O on the event loop (reading the bounded body, writing the answer);
decoding, inference and encoding run together as one job on the worker pool.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from depthlite.colorize import DEFAULT_COLORMAP
from depthlite.server.deps import ApiKey, AvailableService
from depthlite.server.render import MEDIA_TYPES, DepthJob, render_depth, server_timing
from depthlite.server.schemas import (
    MODEL_QUERY_HELP,
    ColormapName,
    DepthSummary,
    OutputFormat,
    PrecisionName,
    ResizeMode,
    error_responses,
)
from depthlite.server.upload import read_upload, upload_body

__all__ = ["router"]

_ERRORS = error_responses(413, 415, 422, 503)
_TIMING_HEADERS = {
    "Server-Timing": {"description": "decode, preprocess, inference, postprocess, encode, queue"},
    "X-Depth-Width": {"description": "width of the depth map"},
    "X-Depth-Height": {"description": "height of the depth map"},
}
_OK: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the depth map in the requested format",
        "headers": _TIMING_HEADERS,
        "content": {
            **{media: {} for media in dict.fromkeys(MEDIA_TYPES.values())},
            "application/json": {"schema": DepthSummary.model_json_schema()},
        },
    }
}


def router() -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["depth"], dependencies=[ApiKey])

    @api.post(
        "/depth",
        summary="Depth map of one image",
        response_class=Response,
        responses={**_OK, **_ERRORS},
        openapi_extra=upload_body(many=False),
    )
    async def depth(
        request: Request,
        service: AvailableService,
        *,
        fmt: Annotated[
            OutputFormat,
            Query(
                alias="format",
                description="color/side: colour PNG; jpeg: colour JPEG; png16: 16-bit PNG; "
                "npy/pfm: float32 arrays; json: statistics and timings",
            ),
        ] = "color",
        colormap: Annotated[ColormapName, Query(description="colour map")] = DEFAULT_COLORMAP,
        resize: Annotated[
            ResizeMode | None, Query(description="default: the server's --resize")
        ] = None,
        precision: Annotated[
            PrecisionName | None, Query(description="must be one the server loaded")
        ] = None,
        model: Annotated[str | None, Query(description=MODEL_QUERY_HELP)] = None,
    ) -> Response:
        est = service.pick(model)
        service.check_precision(precision, est)
        upload = await read_upload(request, service.settings.max_body_bytes)
        job = DepthJob(
            data=upload.data,
            fmt=fmt,
            colormap=colormap,
            resize=resize,
            max_pixels=service.settings.max_pixels,
            submitted=time.perf_counter(),
            source=upload.source,
            stem=upload.stem or "depth",
        )
        rendered = await service.pool.submit(render_depth, est, job)
        service.metrics.observe_stages(rendered.timings)
        disposition = "attachment" if rendered.attachment else "inline"
        headers = {
            "Server-Timing": server_timing(rendered.timings),
            "X-Depth-Width": str(rendered.width),
            "X-Depth-Height": str(rendered.height),
            "Content-Disposition": f'{disposition}; filename="{rendered.filename}"',
        }
        return Response(rendered.content, media_type=rendered.media_type, headers=headers)

    return api

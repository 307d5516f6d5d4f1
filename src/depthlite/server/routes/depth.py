"""``POST /v1/depth``: an image in, a depth map (or its statistics) out.

The handler only does I/O on the event loop (reading the bounded body, writing the answer);
decoding, inference and encoding run together as one job on the worker pool.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from depthlite.colorize import DEFAULT_COLORMAP
from depthlite.server.deps import ApiKey, AvailableService
from depthlite.server.render import MEDIA_TYPES, DepthJob, render_depth, server_timing
from depthlite.server.routes.calibration import GeometryQuery, geometry_query
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
    **{
        f"X-Depth-{name}": {"description": f"png16: {text} (its Depth-{name} text chunk)"}
        for name, text in (
            ("Kind", "output kind"),
            ("Unit", '"m", or "relative"'),
            ("Model", "model name"),
            ("Min", "the smallest value (X-Depth-Mapping says at which end)"),
            ("Max", "the largest value"),
            ("Mapping", '"0=min,65535=max", or "0=max,65535=min" for metric depth'),
        )
    },
}


def _summary_schema() -> dict[str, Any]:
    # Nested models point at the document's components (the calibration route declares them),
    # not at a "$defs" section no OpenAPI tool would look for.
    schema = DepthSummary.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


_OK: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the depth map in the requested format",
        "headers": _TIMING_HEADERS,
        "content": {
            **{media: {} for media in dict.fromkeys(MEDIA_TYPES.values())},
            "application/json": {"schema": _summary_schema()},
        },
    }
}
_FORMAT_HELP = (
    "color/side: colour PNG; jpeg: colour JPEG; png16: 16-bit PNG (with Depth-* text chunks); "
    "npy/pfm: float32 model output; metric/metric_pfm: float32 metres (need known points or "
    "a metric model); ply: binary point cloud; normals: RGB PNG, normals_npy: float32; json: "
    "statistics and timings"
)


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
        fmt: Annotated[OutputFormat, Query(alias="format", description=_FORMAT_HELP)] = "color",
        colormap: Annotated[ColormapName, Query(description="colour map")] = DEFAULT_COLORMAP,
        resize: Annotated[
            ResizeMode | None, Query(description="default: the server's --resize")
        ] = None,
        precision: Annotated[
            PrecisionName | None, Query(description="must be one the server loaded")
        ] = None,
        model: Annotated[str | None, Query(description=MODEL_QUERY_HELP)] = None,
        geometry: Annotated[GeometryQuery, Depends(geometry_query)],
    ) -> Response:
        est = service.pick(model)
        service.check_precision(precision, est)
        output = DepthJob.output_request(
            fmt, colormap, known=geometry.known, fit=geometry.fit, camera=geometry.camera,
            stride=geometry.stride,
        )  # fmt: skip
        output.check(est.card.output.kind, est.card.name)  # 422 before reading the upload
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
            request=output,
        )
        rendered = await service.pool.submit(render_depth, est, job)
        service.metrics.observe_stages(rendered.timings)
        disposition = "attachment" if rendered.attachment else "inline"
        headers = {
            "Server-Timing": server_timing(rendered.timings),
            "X-Depth-Width": str(rendered.width),
            "X-Depth-Height": str(rendered.height),
            "Content-Disposition": f'{disposition}; filename="{rendered.filename}"',
            **rendered.headers,
        }
        return Response(rendered.content, media_type=rendered.media_type, headers=headers)

    return api

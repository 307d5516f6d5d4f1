"""``POST /v1/calibration``, and the metres-and-3-D query parameters other routes share.

For a client that already has the model's values (the ``npy`` of ``POST /v1/depth``): it
sends the pixels with their values and distances and gets the library's fit, with every
point's residual, or a 422 that says why the points cannot be fitted and what to do. Pure
arithmetic on a few numbers: it runs on the event loop and needs no model.

:func:`geometry_query` is the ``known``, ``fit``, ``fov``, ``focal_px``, ``principal`` and
``stride`` parameters of ``/v1/depth`` and ``/v1/jobs``, parsed once (bad values: 422).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query

from depthlite.errors import InvalidOptionError
from depthlite.geometry.calibration import KnownPoint, fit_values
from depthlite.geometry.intrinsics import CameraSpec
from depthlite.imageio import parse_known
from depthlite.server.deps import ApiKey
from depthlite.server.schemas import (
    CalibrationBody,
    CalibrationRequest,
    FitName,
    error_responses,
)
from depthlite.zoo import get_card

__all__ = ["GeometryQuery", "geometry_query", "router"]

_KNOWN_HELP = (
    "a pixel and its distance, X,Y=METRES (x right, y down, from 0, of the image as shown); "
    "twice or more: calibrates the output to metres (jobs: every image, or the first frame)"
)


@dataclass(frozen=True)
class GeometryQuery:
    """The parsed parameters: known points, fit, camera and PLY stride."""

    known: tuple[KnownPoint, ...]
    fit: str
    camera: CameraSpec
    stride: int


def geometry_query(
    *,
    known: Annotated[list[str] | None, Query(description=_KNOWN_HELP)] = None,
    fit: Annotated[FitName, Query(description="auto: scale_shift, or scale for metric")] = "auto",
    fov: Annotated[
        float | None,
        Query(gt=0, lt=180, allow_inf_nan=False, description="horizontal field of view, degrees"),
    ] = None,
    focal_px: Annotated[
        float | None, Query(gt=0, le=1e7, allow_inf_nan=False, description="focal length, px")
    ] = None,
    principal: Annotated[
        str | None, Query(description="X,Y pixels (default: the image centre)")
    ] = None,
    stride: Annotated[int, Query(ge=1, le=1000, description="ply: every N-th pixel")] = 1,
) -> GeometryQuery:
    """A FastAPI dependency: the shared parameters, validated by the library's own types."""
    point = CameraSpec.parse_principal(principal) if principal else None
    return GeometryQuery(parse_known(known or []), fit, CameraSpec(fov, focal_px, point), stride)


def router() -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["calibration"], dependencies=[ApiKey])

    @api.post(
        "/calibration",
        summary="Fit metres to known distances",
        response_model=CalibrationBody,
        responses=error_responses(422),
    )
    async def calibration(body: CalibrationRequest) -> CalibrationBody:
        model = None
        if body.model is not None:
            card = get_card(body.model)
            model = card.name
            if card.output.kind != body.kind:
                raise InvalidOptionError(
                    f"model {model} gives {card.output.kind}, not {body.kind}: send the kind "
                    "that format=json reports"
                )
        samples = [(KnownPoint(round(p.x), round(p.y), p.distance), p.value) for p in body.points]
        fitted = fit_values(body.kind, samples, fit=body.fit, model=model).to_dict()
        return CalibrationBody(**{key: fitted[key] for key in CalibrationBody.model_fields})

    return api

"""The outputs in metres and in 3-D of one depth map: metric arrays, PLY, normals.

Built on demand by the writers: the depth along the camera axis, the intrinsics and the normals
are computed at most once per set of outputs, and only when a format needs them (the EXIF is
read by the caller, only then too).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from depthlite._version import __version__
from depthlite.errors import MetricUnavailableError
from depthlite.geometry.intrinsics import CameraSpec, ExifFocal, Intrinsics, resolve_intrinsics
from depthlite.geometry.normals import normals_rgb, surface_normals
from depthlite.geometry.pointcloud import FAR_RATIO, ply_bytes, point_cloud, scene_depth
from depthlite.imageio.depthfile import DepthInfo
from depthlite.imageio.encode import to_uint8
from depthlite.zoo import CARDS

__all__ = ["FRAME", "METRIC_MODELS_HINT", "Scene", "metric_unavailable"]

FRAME = "x right, y up, z towards the camera (camera at the origin, looking down -z)"
# The models whose output is metres already, for messages.
METRIC_MODELS_HINT = ", ".join(n for n, c in CARDS.items() if c.output.kind == "metric_depth")


def metric_unavailable(formats: list[str], model: str | None) -> MetricUnavailableError:
    return MetricUnavailableError(
        f"{', '.join(formats)} output is in metres, and {model or 'this model'} gives relative "
        "depth: give two or more known points (X,Y=METRES: --known on the command line, "
        f"known= in the API) or a saved calibration, or use a metric model ({METRIC_MODELS_HINT})"
    )


class Scene:
    """Metres and 3-D of ``depth`` (the model's output at image size) described by ``info``."""

    def __init__(
        self,
        depth: np.ndarray,
        info: DepthInfo,
        image_rgb: np.ndarray | None,
        *,
        camera: CameraSpec | None = None,
        exif: ExifFocal | None = None,
        source: str | None = None,
    ) -> None:
        self.depth = depth
        self.info = info
        self.image = image_rgb
        self.camera = camera or CameraSpec()
        self.exif = exif
        self.source = source

    def metres(self) -> np.ndarray:
        """float32 metres, NaN where there is no depth (MetricUnavailableError without any)."""
        if not self.info.metric:
            raise metric_unavailable(["metric"], self.info.model)
        return self._z[0]

    @functools.cached_property
    def _z(self) -> tuple[np.ndarray, str]:
        return scene_depth(self.depth, self.info.kind, self.info.calibration)

    @property
    def unit(self) -> str:
        return self._z[1]

    @functools.cached_property
    def intrinsics(self) -> Intrinsics:
        height, width = self.depth.shape
        return resolve_intrinsics(width, height, self.camera, self.exif, source=self.source)

    @functools.cached_property
    def normals(self) -> np.ndarray:
        """(H, W, 3) float32 unit normals, NaN where none (see ``geometry.normals``)."""
        return surface_normals(self._z[0], self.intrinsics)

    def normals_png_rgb(self) -> np.ndarray:
        return normals_rgb(self.normals)

    def ply(self, stride: int) -> tuple[bytes, int]:
        """The binary PLY of the kept pixels, and how many points it has."""
        if self.image is None:
            raise ValueError('the "ply" output needs the input image (for the colours)')
        xyz, colours = point_cloud(self._z[0], to_uint8(self.image), self.intrinsics,
                                   stride=stride)  # fmt: skip
        intr = self.intrinsics
        units = (
            "metres" if self.unit == "m"
            else "relative units (z = p99 / value, shift unknown: give known points for metres)"
        )  # fmt: skip
        comments = [
            f"depthlite {__version__}",
            f"units: {units}",
            f"frame: {FRAME}",
            f"model: {self.info.model or 'unknown'} ({self.info.kind})",
            f"intrinsics: fx={intr.fx:.6g} fy={intr.fy:.6g} cx={intr.cx:.6g} cy={intr.cy:.6g} "
            f"width={intr.width} height={intr.height} from {intr.source}",
            f"kept: finite depth > 0, at most {FAR_RATIO:g} x the 1st-percentile depth; "
            f"stride {stride}",
        ]
        if self.info.calibration is not None:
            cal = self.info.calibration
            comments.append(f"calibration: {cal.formula}, s={cal.scale:.9g} t={cal.shift:.9g}")
        return ply_bytes(xyz, colours, comments), len(xyz)

    def file_facts(self, fmt: str) -> dict[str, Any]:
        """What the sidecar says about the file of ``fmt`` (a format this class makes)."""
        if fmt in ("metric", "metric_pfm"):
            return {"kind": "metric_depth", "unit": "m", "invalid": "NaN"}
        facts: dict[str, Any] = {"unit": "m" if self.unit == "m" else None, "frame": FRAME}
        if fmt == "normals":
            facts["encoding"] = "rgb = round((n + 1) / 2 * 255); (0, 0, 0): no normal"
        if fmt == "normals_npy":
            facts["encoding"] = "float32 H x W x 3 unit vectors; NaN: no normal"
        return facts

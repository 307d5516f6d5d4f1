"""depthlite: CPU-first monocular depth estimation (the MiDaS family and Depth Anything V2).

>>> from depthlite import DepthEstimator
>>> result = DepthEstimator("depth_anything_v2_small").predict("photo.jpg")
>>> result.depth.shape, result.kind  # (H, W) float32, "relative_disparity"
>>> depth, facts = read_depth("photo_depth16.png")  # back from any depth file depthlite wrote
"""

from __future__ import annotations

import logging

from depthlite._version import __version__
from depthlite.errors import DepthliteError
from depthlite.estimator import DepthEstimator, DepthResult
from depthlite.imageio import read_depth
from depthlite.zoo import CARDS, DEFAULT_MODEL, ModelCard, available_models, get_card

__all__ = [
    "CARDS",
    "DEFAULT_MODEL",
    "DepthEstimator",
    "DepthResult",
    "DepthliteError",
    "ModelCard",
    "__version__",
    "available_models",
    "get_card",
    "read_depth",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())

"""depthlite: CPU-first monocular depth estimation (MiDaS v2.1 small on ONNX Runtime).

>>> from depthlite import DepthEstimator
>>> result = DepthEstimator().predict("photo.jpg")
>>> result.depth.shape  # (H, W) float32 relative inverse depth
"""

from __future__ import annotations

import logging

from depthlite._version import __version__
from depthlite.errors import DepthliteError
from depthlite.estimator import DepthEstimator, DepthResult
from depthlite.specs import MODELS, ModelSpec, available_models, get_spec

__all__ = [
    "MODELS",
    "DepthEstimator",
    "DepthResult",
    "DepthliteError",
    "ModelSpec",
    "__version__",
    "available_models",
    "get_spec",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())

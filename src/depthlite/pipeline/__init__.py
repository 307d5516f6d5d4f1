"""Pipelines over many images: their stages overlapped across threads (see ``overlap``)."""

from depthlite.pipeline.images import ImageTask, RunFn, Written, depth_files, run_directly
from depthlite.pipeline.layout import Layout, plan_layout, workers_for
from depthlite.pipeline.overlap import Outcome, Overlap, Stage

__all__ = [
    "ImageTask",
    "Layout",
    "Outcome",
    "Overlap",
    "RunFn",
    "Stage",
    "Written",
    "depth_files",
    "plan_layout",
    "run_directly",
    "workers_for",
]

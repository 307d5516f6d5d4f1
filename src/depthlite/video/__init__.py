"""Depth for video files: FFmpeg in and out, the network in between, frames overlapped.

Names are loaded on first use (PEP 562): ``depthlite predict`` imports the CLI, which lists
``VIDEO_FORMATS``, and must not pay for subprocess, zipfile and the pipeline.
"""

from __future__ import annotations

import importlib
from typing import Any

from depthlite.video.formats import VIDEO_FORMATS

__all__ = [
    "VIDEO_FORMATS",
    "VideoInfo",
    "VideoOptions",
    "VideoReport",
    "ffmpeg_executable",
    "output_format",
    "probe",
    "process_video",
]

_WHERE = {
    "VideoInfo": "ffmpeg",
    "ffmpeg_executable": "ffmpeg",
    "probe": "ffmpeg",
    "VideoOptions": "options",
    "VideoReport": "pipeline",
    "process_video": "pipeline",
    "output_format": "sinks",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"depthlite.video.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'depthlite.video' has no attribute {name!r}")

"""The video output formats, apart so the CLI can list them without loading the pipeline."""

from __future__ import annotations

__all__ = ["VIDEO_FORMATS"]

VIDEO_FORMATS = ("mp4", "png16", "npz")

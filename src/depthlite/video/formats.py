"""The video output formats, apart so the CLI can list them without loading the pipeline."""

from __future__ import annotations

__all__ = ["VIDEO_FORMATS", "X264_PRESETS"]

VIDEO_FORMATS = ("mp4", "png16", "npz")
# x264's speed/size trade-offs, fastest first (the CLI and the job API offer these).
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)

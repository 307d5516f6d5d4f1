"""Depth for video files: FFmpeg in and out, the network in between, frames overlapped."""

from depthlite.video.ffmpeg import VideoInfo, ffmpeg_executable, probe
from depthlite.video.pipeline import VideoOptions, VideoReport, process_video
from depthlite.video.sinks import VIDEO_FORMATS, output_format

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

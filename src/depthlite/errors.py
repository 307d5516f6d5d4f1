"""Typed exceptions shared by every layer.

Each class carries the facts the outer layers need to translate it: a stable machine-readable
``code`` (used in JSON error bodies), the HTTP ``status`` the server answers with, and the CLI
``exit_code``. The CLI and the server never invent their own mapping; they read these attributes.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "CalibrationError",
    "ConversionError",
    "DepthliteError",
    "DownloadError",
    "HashMismatchError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "InputError",
    "InputNotFoundError",
    "InvalidOptionError",
    "MetricUnavailableError",
    "OfflineError",
    "OutputError",
    "ToolUnavailableError",
    "UnknownModelError",
    "UnsupportedFormatError",
    "VideoDecodeError",
    "VideoEncodeError",
    "WeightsError",
    "clip",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
# Longest piece of a caller's input an error message repeats (an id, a path).
_CLIP_CHARS = 64


def clip(text: str, limit: int = _CLIP_CHARS) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis): errors echo what they are
    given, and a 10,000-character id should not come back whole."""
    return text if len(text) <= limit else f"{text[: limit - 1]}\u2026"


class DepthliteError(Exception):
    """Base class of every error depthlite raises on purpose."""

    code: str = "internal_error"
    status: int = 500
    exit_code: int = EXIT_FAILURE


class InvalidOptionError(DepthliteError, ValueError):
    """An option has a value outside its allowed set or range."""

    code = "invalid_option"
    status = 422
    exit_code = EXIT_USAGE


class UnknownModelError(InvalidOptionError):
    """A model name that is not in the spec table."""

    code = "unknown_model"


class MetricUnavailableError(InvalidOptionError):
    """Metres were asked for (``metric`` outputs) with neither a calibration nor a metric model."""

    code = "metric_unavailable"


class InputError(DepthliteError):
    """Something is wrong with one input; a batch reports it and goes on.

    ``source`` names the input (a path, ``<stdin>``, ``<bytes>``, ...) so messages can say which.
    """

    code = "bad_input"
    status = 422

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source

    def __str__(self) -> str:
        message = super().__str__()
        return f"{self.source}: {message}" if self.source else message


class InputNotFoundError(InputError):
    """A path that does not exist or matches nothing."""

    code = "not_found"
    status = 404


class UnsupportedFormatError(InputError):
    """Readable bytes, but not an image format we decode."""

    code = "unsupported_media_type"
    status = 415


class ImageDecodeError(InputError):
    """An image file that is corrupt or truncated."""

    code = "corrupt_image"
    status = 422


class CalibrationError(InputError):
    """Known distances that cannot fix a calibration: too few, outside the image, degenerate."""

    code = "calibration_failed"
    status = 422


class ImageTooLargeError(InputError):
    """An image above the pixel cap (decompression-bomb guard) or the byte limit."""

    code = "image_too_large"
    status = 413


class WeightsError(DepthliteError):
    """Model weights are missing, unreachable or fail verification."""

    code = "weights_error"
    status = 503


class DownloadError(WeightsError):
    """The download failed (network unreachable, HTTP error, truncated transfer)."""

    code = "download_failed"


class OfflineError(WeightsError):
    """Weights are not cached and downloads are disabled (``DEPTHLITE_OFFLINE=1``)."""

    code = "offline"


class HashMismatchError(WeightsError):
    """A file's SHA-256 does not match the pinned or expected value."""

    code = "hash_mismatch"


class BackendUnavailableError(DepthliteError):
    """The requested runtime (onnxruntime, torch, openvino) is not installed or cannot run."""

    code = "backend_unavailable"
    status = 503


class ConversionError(DepthliteError):
    """Converting a checkpoint to ONNX failed or the result disagrees with the reference."""

    code = "conversion_failed"


class VideoDecodeError(InputError):
    """A video FFmpeg cannot read: missing, damaged, truncated, or without a video stream."""

    code = "corrupt_video"
    status = 422


class VideoEncodeError(DepthliteError):
    """Writing the output video failed (encoder error, disk full); nothing is left behind."""

    code = "encode_failed"


class OutputError(DepthliteError):
    """An output (or cache) file cannot be written: read-only, no permission, disk full."""

    code = "output_error"


class ToolUnavailableError(DepthliteError):
    """An external program the task needs (FFmpeg) is not installed."""

    code = "tool_unavailable"
    status = 503

"""Image input and output: decoding any supported source, expanding input specs, writing depth."""

from __future__ import annotations

from depthlite.imageio.decode import DEFAULT_MAX_PIXELS, SUPPORTED_FORMATS, ImageSource, load_image
from depthlite.imageio.depthfile import DepthInfo
from depthlite.imageio.encode import encode_jpeg, encode_png, to_uint8
from depthlite.imageio.exif import read_exif_focal
from depthlite.imageio.inputs import IMAGE_EXTENSIONS, STDIN_SPEC, InputItem, expand_inputs
from depthlite.imageio.readdepth import read_depth
from depthlite.imageio.request import OutputRequest, parse_known, render_outputs
from depthlite.imageio.writers import (
    CAMERA_FORMATS,
    METRIC_FORMATS,
    OUTPUT_FORMATS,
    OUTPUT_SUFFIX,
    SIDECAR,
    SIDECAR_SUFFIX,
    atomic_write_bytes,
    check_formats,
    check_outputs,
    encode_outputs,
    file_suffix,
    output_path,
    read_pfm,
    side_by_side,
    to_png16,
    write_encoded,
    write_outputs,
    write_pfm,
)

__all__ = [
    "CAMERA_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "METRIC_FORMATS",
    "OUTPUT_FORMATS",
    "OUTPUT_SUFFIX",
    "SIDECAR",
    "SIDECAR_SUFFIX",
    "STDIN_SPEC",
    "SUPPORTED_FORMATS",
    "DepthInfo",
    "ImageSource",
    "InputItem",
    "OutputRequest",
    "atomic_write_bytes",
    "check_formats",
    "check_outputs",
    "encode_jpeg",
    "encode_outputs",
    "encode_png",
    "expand_inputs",
    "file_suffix",
    "load_image",
    "output_path",
    "parse_known",
    "read_depth",
    "read_exif_focal",
    "read_pfm",
    "render_outputs",
    "side_by_side",
    "to_png16",
    "to_uint8",
    "write_encoded",
    "write_outputs",
    "write_pfm",
]

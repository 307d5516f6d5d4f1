"""Image input and output: decoding any supported source, expanding input specs, writing depth."""

from __future__ import annotations

from depthlite.imageio.decode import DEFAULT_MAX_PIXELS, SUPPORTED_FORMATS, ImageSource, load_image
from depthlite.imageio.encode import encode_jpeg, encode_png, to_uint8
from depthlite.imageio.inputs import IMAGE_EXTENSIONS, STDIN_SPEC, InputItem, expand_inputs
from depthlite.imageio.writers import (
    OUTPUT_FORMATS,
    OUTPUT_SUFFIX,
    atomic_write_bytes,
    encode_outputs,
    output_path,
    read_pfm,
    side_by_side,
    to_png16,
    write_outputs,
    write_pfm,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "OUTPUT_FORMATS",
    "OUTPUT_SUFFIX",
    "STDIN_SPEC",
    "SUPPORTED_FORMATS",
    "ImageSource",
    "InputItem",
    "atomic_write_bytes",
    "encode_jpeg",
    "encode_outputs",
    "encode_png",
    "expand_inputs",
    "load_image",
    "output_path",
    "read_pfm",
    "side_by_side",
    "to_png16",
    "to_uint8",
    "write_outputs",
    "write_pfm",
]

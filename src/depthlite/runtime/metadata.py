"""The facts every exported file carries about itself, written and read back.

Written into ONNX ``metadata_props`` by the export and quantize recipes (ultralytics-style), so a
file used outside depthlite says what it expects and what it outputs, and a file passed with
``--weights`` is checked against the card before it is trusted.
"""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from depthlite.errors import WeightsError
from depthlite.zoo.cards import ModelCard

if TYPE_CHECKING:
    from depthlite.runtime.base import ModelFormat

__all__ = [
    "MODEL_KEY",
    "NORMALIZES_INSIDE_KEY",
    "PRECISION_KEY",
    "card_metadata",
    "check_fits",
    "is_int8_file",
    "normalizes_inside",
    "official_size",
    "read_metadata_props",
]

logger = logging.getLogger(__name__)

MODEL_KEY = "depthlite.model"
NORMALIZES_INSIDE_KEY = "depthlite.normalizes_inside"
PRECISION_KEY = "depthlite.precision"


def card_metadata(
    card: ModelCard, *, normalizes_inside: bool, precision: str = "fp32"
) -> dict[str, str]:
    """The card's input and output facts as ONNX metadata (strings, as ONNX requires)."""
    pre, out = card.preprocess, card.output
    return {
        MODEL_KEY: card.name,
        NORMALIZES_INSIDE_KEY: str(normalizes_inside).lower(),
        PRECISION_KEY: precision,
        "depthlite.input_size": str(pre.size),
        "depthlite.multiple_of": str(pre.multiple_of),
        "depthlite.resize_rule": pre.resize_rule,
        "depthlite.mean": ",".join(map(str, pre.mean)),
        "depthlite.std": ",".join(map(str, pre.std)),
        "depthlite.channels": pre.channels,
        "depthlite.output_kind": out.kind,
        "depthlite.output_unit": out.unit or "",
        "depthlite.upsampling": out.upsampling,
        "depthlite.licence": card.licence.spdx,
    }


def check_fits(
    card: ModelCard,
    meta: Mapping[str, str],
    fixed_size: tuple[int, int] | None,
    channels: int | None,
    source: str,
) -> None:
    """Refuse a model file that cannot be this card's network, saying what to do instead."""
    named = meta.get(MODEL_KEY)
    if named and named != card.name:
        raise WeightsError(
            f"{source} was made for model {named!r}, not {card.name!r}: pass --model {named}"
        )
    if channels is not None and channels != 3:
        raise WeightsError(f"{source} takes {channels} input channels; a depth model takes 3 (RGB)")
    if fixed_size is None:
        return
    height, width = fixed_size
    multiple = card.preprocess.multiple_of
    if height % multiple or width % multiple:
        raise WeightsError(
            f"{source} takes a fixed {height}x{width} input, but {card.name} needs sides that "
            f"are multiples of {multiple}: is it an export of another model? Pass the matching "
            "--model, or convert the official checkpoint with `depthlite convert`"
        )


def official_size(card: ModelCard) -> tuple[int, int]:
    """The (height, width) of the card's official ONNX export (its fixed square input)."""
    side = card.official_onnx.fixed_size if card.official_onnx else None
    return (side or card.preprocess.size,) * 2


def normalizes_inside(card: ModelCard, fmt: ModelFormat, path: Path, *, official: bool) -> bool:
    """Whether the loaded file normalises its input itself.

    Our files say so in their metadata. The official ONNX export does not, so its layout comes
    from the card; a fixed-size file of the official size is taken to be that export. A
    dynamic-size file without metadata is most likely a plain export of the network (input
    normalised outside), which is assumed, with a warning.
    """
    if fmt.normalizes_inside is not None:
        return fmt.normalizes_inside
    artifact = card.official_onnx
    if artifact is not None and (official or fmt.fixed_size == official_size(card)):
        return artifact.normalizes_inside
    _warn_unknown_layout(str(path))
    return False


@functools.cache
def _warn_unknown_layout(path: str) -> None:
    logger.warning(
        "%s has no depthlite metadata: assuming it takes normalised input (a plain export of "
        "the network). If its graph normalises by itself, add the ONNX metadata property %s=true.",
        path,
        NORMALIZES_INSIDE_KEY,
    )


# ModelProto's field numbers (onnx.proto): metadata_props, and a StringStringEntryProto's two.
_METADATA_PROPS, _KEY, _VALUE = 14, 1, 2


def _varint(data: BinaryIO) -> int:
    value, shift = 0, 0
    while True:
        byte = data.read(1)
        if not byte or shift > 63:
            raise ValueError("truncated or malformed protobuf varint")
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7


def _entry(raw: bytes) -> tuple[str, str]:
    """One StringStringEntryProto: (key, value)."""
    fields = {_KEY: "", _VALUE: ""}
    data = io.BytesIO(raw)
    while data.tell() < len(raw):
        tag = _varint(data)
        if tag & 7 != 2:
            raise ValueError("unexpected wire type in a metadata entry")
        fields[tag >> 3] = data.read(_varint(data)).decode("utf-8", "replace")
    return fields[_KEY], fields[_VALUE]


def read_metadata_props(path: Path) -> dict[str, str]:
    """An ONNX file's ``metadata_props``, read without onnx or a runtime session.

    The model's top-level fields are walked and every other one (the graph: nearly the whole
    file) is skipped by its length, so this reads a few hundred bytes: creating an ONNX Runtime
    session only to read them took 86-90 ms of a 0.47 s ``depthlite predict`` (MiDaS small INT8
    ``--weights``). Raises ValueError for a file that is not a protobuf message.
    """
    props: dict[str, str] = {}
    with open(path, "rb") as data:
        size = os.fstat(data.fileno()).st_size
        while data.tell() < size:
            tag = _varint(data)
            field, wire = tag >> 3, tag & 7
            if wire == 0:
                _varint(data)
            elif wire in (1, 5):
                data.seek(8 if wire == 1 else 4, os.SEEK_CUR)
            elif wire == 2:
                length = _varint(data)
                if data.tell() + length > size:
                    raise ValueError(f"{path.name} is truncated")
                if field == _METADATA_PROPS:
                    key, value = _entry(data.read(length))
                    props[key] = value
                else:
                    data.seek(length, os.SEEK_CUR)
            else:
                raise ValueError(f"unexpected protobuf wire type {wire} in {path.name}")
    return props


def is_int8_file(path: Path) -> bool:
    """Whether a user's ONNX file is already quantized (ours say so in their metadata).

    An unreadable file is not: loading it then says what is wrong with it.
    """
    try:
        return read_metadata_props(path).get(PRECISION_KEY) == "int8"
    except (OSError, ValueError):
        return False

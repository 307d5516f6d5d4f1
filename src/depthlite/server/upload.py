"""Read the image of a request: a multipart ``file`` field or the raw body, size-bounded.

The byte limit is enforced while reading, never after: a declared ``Content-Length`` above it
is refused before a byte is read, and the receive channel itself counts bytes, so a chunked or
lying client is cut off as soon as it crosses the limit. Only bounded bodies reach memory.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.types import Message, Receive

from depthlite.errors import InvalidOptionError, clip
from depthlite.server.exceptions import BodyTooLargeError, MissingImageError

__all__ = ["FILE_FIELD", "SavedFile", "Upload", "read_upload", "save_uploads", "upload_body"]

FILE_FIELD = "file"
# Parsing stops past this many text fields (each is refused anyway, see _only_files).
_MAX_FORM_FIELDS = 8
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_STEM = 100


@dataclass(frozen=True)
class Upload:
    """The image bytes and, for a multipart upload, a safe stem of the client's file name."""

    data: bytes | bytearray
    stem: str | None = None
    source: str = "<body>"


def _safe_stem(filename: str | None) -> str | None:
    """A file-name stem fit for a Content-Disposition header (ASCII, no path, no quotes)."""
    if not filename:
        return None
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    stem = _UNSAFE_NAME.sub("_", stem).strip("._")[:_MAX_STEM]
    return stem or None


def _limited(receive: Receive, limit: int) -> Receive:
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLargeError(limit)
        return message

    return receive_within_limit


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _bounded(request: Request, limit: int) -> Request:
    """``request`` reading at most ``limit`` body bytes; a larger declared length fails now."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise BodyTooLargeError(limit)
    return Request(request.scope, _limited(request.receive, limit))


def _only_files(form: FormData) -> None:
    """Options go in the query string; another form field is a client's mistake, refused
    rather than ignored (as the API description says: no other properties)."""
    other = sorted({name for name in form if name != FILE_FIELD})
    if other and FILE_FIELD in form:  # without any file, "missing image" says more
        raise InvalidOptionError(
            f"unexpected form field(s) {', '.join(repr(clip(name)) for name in other[:3])}: "
            f"send files as {FILE_FIELD!r} fields and options in the query string"
        )


async def _read_multipart(request: Request) -> Upload:
    async with request.form(max_files=1, max_fields=_MAX_FORM_FIELDS) as form:
        _only_files(form)
        part = form.get(FILE_FIELD)
        if not isinstance(part, UploadFile):
            raise MissingImageError(
                f"the multipart form has no {FILE_FIELD!r} file field; "
                f"send the image as -F {FILE_FIELD}=@photo.jpg"
            )
        # Bounded by the body limit. UploadFile.read moves to a thread once spooled to disk.
        data = await part.read()
        stem = _safe_stem(part.filename)
    if not data:
        raise MissingImageError(f"the {FILE_FIELD!r} field is empty")
    # The client's name, shortened, so error messages say which upload failed.
    return Upload(data, stem, source=(part.filename or f"<{FILE_FIELD}>")[:_MAX_STEM])


async def _read_raw(request: Request) -> Upload:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
    if not body:
        raise MissingImageError(
            f"the request has no body; send an image as the body or as a multipart "
            f"{FILE_FIELD!r} field"
        )
    return Upload(body)


async def read_upload(request: Request, limit: int) -> Upload:
    """The image of ``request``; :class:`BodyTooLargeError` past ``limit`` bytes.

    ``multipart/form-data`` bodies must carry the image in the ``file`` field; any other
    content type is taken as the image itself (curl's ``--data-binary`` sends
    ``application/x-www-form-urlencoded``, so the declared type is not trusted; the bytes
    are sniffed when decoded).
    """
    bounded = _bounded(request, limit)
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        return await _read_multipart(bounded)
    return await _read_raw(bounded)


@dataclass(frozen=True)
class SavedFile:
    path: Path
    content_type: str


def _safe_name(filename: str | None, index: int) -> str:
    stem = _safe_stem(filename) or f"upload{index}"
    suffix = Path(filename or "").suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""
    return f"{stem}{suffix}"


async def save_uploads(
    request: Request, limit: int, max_files: int, folder: Path
) -> list[SavedFile]:
    """Every ``file`` field of a multipart body (or the raw body) saved into ``folder``.

    Bounded like :func:`read_upload`; files stream through Starlette's spooled temporary
    files to disk, so a large job never sits in memory.
    """
    bounded = _bounded(request, limit)
    content_type = request.headers.get("content-type", "").lower()
    saved: list[SavedFile] = []
    if not content_type.startswith("multipart/form-data"):
        path = folder / _safe_name(request.query_params.get("filename"), 0)
        with path.open("wb") as out:
            async for chunk in bounded.stream():
                out.write(chunk)
        saved.append(SavedFile(path, content_type))
    else:
        async with bounded.form(max_files=max_files, max_fields=_MAX_FORM_FIELDS) as form:
            _only_files(form)
            for index, part in enumerate(form.getlist(FILE_FIELD)):
                if not isinstance(part, UploadFile):
                    continue
                path = folder / f"{index:06d}_{_safe_name(part.filename, index)}"
                await asyncio.to_thread(_copy, part, path)
                saved.append(SavedFile(path, part.content_type or ""))
    # An empty part among others is kept: the job reports it as a failed input, by name.
    if not any(item.path.stat().st_size > 0 for item in saved):
        raise MissingImageError(
            f"no input: send files as multipart {FILE_FIELD!r} fields "
            f"(-F {FILE_FIELD}=@a.jpg -F {FILE_FIELD}=@b.jpg) or one file as the body"
        )
    return saved


def _copy(part: UploadFile, path: Path) -> None:
    part.file.seek(0)
    with path.open("wb") as out:
        shutil.copyfileobj(part.file, out, 1 << 20)


def upload_body(*, many: bool) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route reading its body with this module.

    The body is read by hand (to bound it while reading), so FastAPI cannot infer it; without
    this, generated clients and the "Try it out" button could not upload anything.
    """
    binary = {"type": "string", "format": "binary"}
    field = {"type": "array", "items": binary, "minItems": 1} if many else binary
    what = "the files: multipart fields" if many else "the image: a multipart field"
    return {
        "requestBody": {
            "required": True,
            "description": f"{what} {FILE_FIELD!r}, or one file as the raw body",
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {FILE_FIELD: field},
                        "required": [FILE_FIELD],
                        "additionalProperties": False,
                    }
                },
                "application/octet-stream": {"schema": binary},
            },
        }
    }

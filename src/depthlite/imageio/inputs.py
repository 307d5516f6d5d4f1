"""Expand command-line input specs (files, folders, glob patterns, ``-``) into input items.

A bad spec never stops the batch: it becomes an :class:`~depthlite.errors.InputError` in the
returned error list and the other specs are still expanded. Every item carries ``relative``,
the output stem, chosen so that no two items write to the same output files (see
:func:`expand_inputs` for where the outputs are assumed to go).
"""

from __future__ import annotations

import glob
import itertools
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from depthlite.errors import InputError, InputNotFoundError
from depthlite.imageio.writers import OUTPUT_SUFFIX

__all__ = ["IMAGE_EXTENSIONS", "STDIN_SPEC", "InputItem", "expand_inputs"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (
    *(".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"),
    *(".heic", ".heif", ".avif", ".gif", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".qoi"),
)
STDIN_SPEC = "-"
STDIN_SOURCE = "<stdin>"
STDIN_STEM = "stdin"

_GLOB_MAGIC = re.compile(r"[*?[]")
# Names our own writers produce; a folder re-run must not take its outputs for new inputs.
_OUTPUT_ENDINGS = tuple(OUTPUT_SUFFIX.values())
# Path() ("."), never a meaningful output stem, marks "relative not given".
_UNSET = Path()


@dataclass(frozen=True)
class InputItem:
    """One input: ``source`` names it in messages, ``path`` is None for stdin.

    ``stem`` is the input's own file stem (``"stdin"`` for stdin), never renamed. ``relative``
    is the output stem, made unique by :func:`expand_inputs`: relative to the output folder
    (``Path("sub/a")`` for ``<dir>/sub/a.png`` found recursively) when outputs share one
    folder, a bare name to use next to the input otherwise. It defaults to ``Path(stem)``.
    """

    source: str
    path: Path | None
    stem: str
    relative: Path = _UNSET

    def __post_init__(self) -> None:
        if self.relative == _UNSET:
            object.__setattr__(self, "relative", Path(self.stem))


def _skip_reason(name: str) -> str | None:
    """Why a file of a folder is not an input (None: it is one)."""
    if name.startswith("."):
        return "hidden"
    if not name.lower().endswith(IMAGE_EXTENSIONS):
        return "other extensions"
    if name.endswith(_OUTPUT_ENDINGS):
        # Exact-case match: these are the names we write. Explicit files and globs are not
        # filtered: naming a file is a clear request to process it.
        return "named like depthlite outputs"
    return None


def _report_skipped(root: Path, skipped: dict[str, list[str]]) -> None:
    """One line per folder spec: how many files were left out, and why."""
    if not skipped:
        return
    parts = []
    for reason, names in sorted(skipped.items()):
        part = f"{len(names)} {reason}"
        if reason == "other extensions":
            exts = sorted({Path(n).suffix.lower() or "(none)" for n in names})
            part += f" ({', '.join(exts[:6])}{', ...' if len(exts) > 6 else ''})"
        parts.append(part)
    total = sum(len(names) for names in skipped.values())
    logger.warning("%s: skipped %d file(s): %s", root, total, "; ".join(parts))


def _stem_path(rel: Path) -> Path:
    return rel.parent / rel.stem


def _walk_dir(root: Path, recursive: bool, errors: list[InputError]) -> list[Path]:
    """Image files under ``root`` (relative to it), sorted; hidden folders are not entered."""

    def on_error(exc: OSError) -> None:
        errors.append(InputError(f"cannot list folder: {exc.strerror or exc}", str(exc.filename)))

    found: list[Path] = []
    skipped: dict[str, list[str]] = {}
    for folder, dirs, files in os.walk(root, onerror=on_error):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        base = Path(folder).relative_to(root)
        for name in files:
            reason = _skip_reason(name)
            if reason is None:
                found.append(base / name)
            else:
                skipped.setdefault(reason, []).append(name)
    _report_skipped(root, skipped)
    return sorted(found, key=lambda p: p.as_posix())


def _glob_base(pattern: str) -> Path:
    """The literal folder a pattern starts from, so matches keep their subfolders."""
    literal: list[str] = []
    for part in Path(pattern).parts[:-1]:
        if _GLOB_MAGIC.search(part):
            break
        literal.append(part)
    return Path(*literal) if literal else Path()


def _expand_glob(pattern: str, recursive: bool) -> list[tuple[Path, Path]]:
    base = _glob_base(pattern)
    out: list[tuple[Path, Path]] = []
    for match in sorted(glob.glob(pattern, recursive=recursive)):
        path = Path(match)
        if not path.is_file():
            continue
        try:
            rel = _stem_path(path.relative_to(base))
        except ValueError:
            rel = Path(path.stem)
        out.append((path, rel))
    return out


def _expand_spec(
    spec: str, recursive: bool, errors: list[InputError]
) -> list[tuple[Path, Path]] | None:
    """(path, relative output stem) pairs of one spec; None if it matched nothing."""
    path = Path(spec)
    # An existing path wins over glob syntax: "shot[1].jpg" is a legitimate file name.
    if spec and path.is_dir():
        known_errors = len(errors)
        files = _walk_dir(path, recursive, errors)
        if not files and len(errors) == known_errors:
            exts = " ".join(IMAGE_EXTENSIONS)
            errors.append(InputNotFoundError(f"no image files ({exts}) in folder", spec))
            return []
        return [(path / rel, _stem_path(rel)) for rel in files]
    if spec and path.exists():
        return [(path, Path(path.stem))]
    if _GLOB_MAGIC.search(spec):
        return _expand_glob(spec, recursive) or None
    return None


def _unique_relative(rel: Path, path: Path, taken: set[str], scope: str = "") -> Path:
    """``rel``, or a variant of it, that no earlier item of ``scope`` uses (a.jpg, a.png: "a")."""
    suffix = path.suffix.lstrip(".").lower()
    candidates = itertools.chain(
        [rel],
        [rel.with_name(f"{rel.name}_{suffix}")] if suffix else [],
        (rel.with_name(f"{rel.name}_{n}") for n in itertools.count(2)),
    )
    # casefold: on case-insensitive file systems "A" and "a" are the same output.
    keys = ((c, f"{scope}/{c.as_posix()}".casefold()) for c in candidates)
    candidate, key = next((c, k) for c, k in keys if k not in taken)
    taken.add(key)
    if candidate != rel:
        logger.warning("%s: output name %s is taken; using %s", path, rel, candidate)
    return candidate


def _items(
    pairs: Iterable[tuple[Path, Path]], seen: set[Path], taken: set[str], flat_output: bool
) -> list[InputItem]:
    items: list[InputItem] = []
    for path, rel in pairs:
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        if flat_output:
            relative = _unique_relative(rel, path, taken)
        else:
            # Outputs go next to the input: only names in the same folder can collide. The
            # folder, not the file, is resolved: outputs of a symlink go next to the link.
            scope = path.parent.resolve().as_posix()
            relative = _unique_relative(Path(rel.name), path, taken, scope)
        items.append(InputItem(source=str(path), path=path, stem=path.stem, relative=relative))
    return items


def _stdin_item(taken: set[str], flat_output: bool) -> InputItem:
    # Without an output folder stdin's outputs go to the working folder.
    scope = "" if flat_output else Path.cwd().resolve().as_posix()
    stem = Path(STDIN_STEM)
    relative = _unique_relative(stem, stem, taken, scope)
    return InputItem(STDIN_SOURCE, None, STDIN_STEM, relative)


def expand_inputs(
    specs: Sequence[str], *, recursive: bool = False, flat_output: bool = True
) -> tuple[list[InputItem], list[InputError]]:
    """Expand ``specs`` in order; return the items and one error per spec that failed.

    A spec is a file, a folder (its image files by extension, sorted; subfolders only when
    ``recursive``; files named like our outputs, e.g. ``photo_color.png``, are skipped so a
    re-run does not process them), a glob pattern (``**`` spans folders only when
    ``recursive``) or ``-`` for stdin, which may appear once. A file listed twice, directly or
    through different specs, is kept once, at its first position.

    ``flat_output`` says where the caller writes outputs, so that no two items share an output
    name there (a clash renames the later item's ``relative``: ``a_png``, then ``a_2``, ...):

    * True (one output folder, ``-o``): ``relative`` is the path below that folder (subfolders
      kept for recursive folders and globs), unique across all items.
    * False (outputs next to each input, stdin's in the working folder): ``relative`` is a
      bare name, unique among the items of the same folder; write to
      ``item.path.parent / item.relative`` (``Path.cwd() / item.relative`` for stdin).
    """
    items: list[InputItem] = []
    errors: list[InputError] = []
    seen: set[Path] = set()
    taken: set[str] = set()
    stdin_used = False
    for spec in specs:
        if spec == STDIN_SPEC:
            if stdin_used:
                errors.append(InputError("stdin can be read only once", source=STDIN_SOURCE))
                continue
            stdin_used = True
            items.append(_stdin_item(taken, flat_output))
            continue
        pairs = _expand_spec(spec, recursive, errors)
        if pairs is None:
            if _GLOB_MAGIC.search(spec):
                errors.append(InputNotFoundError("no files match the pattern", source=spec))
            else:
                errors.append(InputNotFoundError("no such file or folder", source=spec))
            continue
        items.extend(_items(pairs, seen, taken, flat_output))
    return items, errors

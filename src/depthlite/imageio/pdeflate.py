"""A zlib stream deflated in two halves on two threads, pigz style, for large PNGs.

Each half is raw deflate; the first ends with a full flush (byte-aligned, no dictionary carried
over), so the two halves concatenate into one valid deflate stream. The zlib wrapper is the
usual 2-byte header and the Adler-32 of all the data, combined from the two halves' checksums.
Decoders see an ordinary zlib stream; the decompressed bytes are identical (tested).

ISA-L releases the GIL while it compresses, so the halves really run on two cores: a 1080p
colour map compressed in 4.92 -> 3.65 ms (medians, interleaved), 126 bytes larger.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from depthlite.parallel import run_split, usable_cores

__all__ = ["adler32_combine", "can_split", "compress_two_halves"]

_ADLER_BASE = 65521
# zlib header for deflate with a 32 KiB window at the fastest level: CMF 0x78, FLG 0x01
# (FLEVEL 0, no preset dictionary, FCHECK making the 16-bit value a multiple of 31).
_ZLIB_HEADER = b"\x78\x01"
# Below this many filtered bytes a second thread costs more than it saves.
MIN_SPLIT_BYTES = 1 << 20


def adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """Adler-32 of ``a + b`` from those of ``a`` and ``b`` (zlib's ``adler32_combine``)."""
    rem = len2 % _ADLER_BASE
    sum1 = adler1 & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 += (adler2 & 0xFFFF) + _ADLER_BASE - 1
    sum2 += (adler1 >> 16) + (adler2 >> 16) + _ADLER_BASE - rem
    sum1 %= _ADLER_BASE
    sum2 %= _ADLER_BASE
    return sum1 | (sum2 << 16)


def can_split(nbytes: int) -> bool:
    """Whether splitting pays: enough data and a second CPU to run on."""
    return nbytes >= MIN_SPLIT_BYTES and usable_cores() > 1


FilterInto = Callable[[np.ndarray, int, np.ndarray], np.ndarray]


def _half(
    comp: Any, job: tuple[np.ndarray, int, int, FilterInto, np.ndarray], finish_flag: int
) -> tuple[list[bytes], int, int]:
    """Filter and raw-deflate ``rows`` block by block: (compressed parts, Adler-32, length)."""
    rows, bpp, step, filter_into, buf = job
    adler, length, parts = 1, 0, []
    for y in range(0, rows.shape[0], step):
        chunk = rows[y : y + step]
        block = filter_into(chunk, bpp, buf[: chunk.shape[0]])
        adler = zlib.adler32(block, adler)
        length += block.nbytes
        parts.append(comp.compress(block))
    parts.append(comp.flush(finish_flag))
    return parts, adler, length


def compress_two_halves(
    rows: np.ndarray,
    bpp: int,
    *,
    step: int,
    filter_into: FilterInto,
    make_raw: Callable[[], Any],
    flush_modes: tuple[int, int],
) -> bytes:
    """The zlib stream of the filtered ``rows``, the top and bottom halves on two threads.

    ``filter_into(rows, bpp, out)`` filters a block of rows into ``out``; ``make_raw()`` returns
    a raw-deflate (wbits -15) compressor at the fastest level; ``flush_modes`` are its (full
    flush, finish) constants. Compressors and block buffers are made here, on the calling
    thread, so the helper thread allocates almost nothing (glibc would keep a heap for it).
    """
    middle = max(step, rows.shape[0] // 2 // step * step)
    full_flush, finish = flush_modes
    block_shape = (min(step, rows.shape[0]), rows.shape[1] + 1)
    first, second = make_raw(), make_raw()
    job2 = (rows[middle:], bpp, step, filter_into, np.empty(block_shape, np.uint8))
    job1 = (rows[:middle], bpp, step, filter_into, np.empty(block_shape, np.uint8))
    (parts1, adler1, _), (parts2, adler2, len2) = run_split(
        lambda: _half(first, job1, full_flush), [lambda: _half(second, job2, finish)]
    )
    adler = adler32_combine(adler1, adler2, len2)
    return b"".join((_ZLIB_HEADER, *parts1, *parts2, adler.to_bytes(4, "big")))

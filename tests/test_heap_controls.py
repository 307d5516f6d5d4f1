"""glibc heap controls (depthlite.memory): what each one changes in the allocator's state.

Each check runs in a fresh interpreter: whether glibc maps an allocation also depends on the
free space its heap already holds, which earlier tests in this process leave behind.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from depthlite.memory import trim_heap

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the controls are no-ops without glibc"
)

_PROBE = """
import ctypes, ctypes.util, sys
import numpy as np
from depthlite.memory import large_allocations_mapped

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2

def mapped_while_holding(nbytes):
    before = libc.mallinfo2().hblks
    block = np.ones(nbytes, dtype=np.uint8)
    during = libc.mallinfo2().hblks
    del block
    return during - before

with large_allocations_mapped(enabled=sys.argv[1] == "on"):
    inside = mapped_while_holding(8 << 20)
after = mapped_while_holding(8 << 20)
print(inside, after, mapped_while_holding(64 << 20))
"""


def _probe(mode: str) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return [int(v) for v in done.stdout.split()]


def test_a_large_model_load_maps_each_large_allocation_and_then_returns_to_the_heap() -> None:
    inside, after, huge = _probe("on")
    assert inside == 1  # 8 MiB: its own mapping while a large model loads
    assert after == 0  # afterwards the threshold is 32 MiB: image buffers come from the heap
    assert huge == 1  # and anything larger is still mapped


def test_disabled_leaves_the_dynamic_threshold_alone() -> None:
    inside, _, _ = _probe("off")
    # glibc's own threshold in a fresh process is 128 KiB: an 8 MiB buffer is mapped anyway.
    assert inside == 1


def test_trim_heap_reports_glibc() -> None:
    assert trim_heap() is True

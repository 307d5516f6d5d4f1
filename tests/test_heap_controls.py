"""glibc heap controls (depthlite.memory): what each one changes in the allocator's state.

Each check runs in a fresh interpreter: whether glibc maps an allocation also depends on the
free space its heap already holds, which earlier tests in this process leave behind.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

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


_THREAD_PROBE = """
import sys, threading
from pathlib import Path
import numpy as np
from depthlite import DepthEstimator
from depthlite.imageio.request import OutputRequest
from depthlite.memory import bound_heap_retention, trim_heap

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) // 1024 for l in status if l.startswith("VmRSS"))

if sys.argv[2] == "on":
    assert bound_heap_retention()
est = DepthEstimator(weights=Path(sys.argv[1]), threads=1, progress=False)
ramp = np.linspace(0, 255, 4000, dtype=np.float32)
image = np.dstack([(ramp[:, None] + ramp[None, :]) / 2] * 3).astype(np.uint8)

def request():
    est.predict(image).render(OutputRequest(formats=("color", "png16")))

def worker(go, done):
    # A server worker: it lives on between requests (an exiting thread hands its arena on).
    while go.wait() and not stop:
        go.clear()
        request()
        done.set()

stop = False
go, done = threading.Event(), threading.Event()
threading.Thread(target=worker, args=(go, done), daemon=True).start()
go.set(); done.wait(); done.clear()  # the first request's one-off costs
trim_heap()
idle = rss_mb()
go.set(); done.wait()
trim_heap()
print(rss_mb() - idle)
"""


def _thread_probe(weights: Path, mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _THREAD_PROBE, str(weights), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.slow
def test_bounded_retention_returns_what_a_worker_thread_freed(converted_onnx: Path) -> None:
    """The server's setting: after a 16 MP request in a worker thread, a trim gives back what
    glibc's dynamic thresholds keep in the thread's arena (tests/test_server_memory.py)."""
    _thread_probe(converted_onnx, "on")  # both measured runs then load the cached graph
    kept, returned = _thread_probe(converted_onnx, "off"), _thread_probe(converted_onnx, "on")
    # Without it 12-27 MB stay (it depends on what the heap held before); with it, none.
    assert returned <= 5, (kept, returned)
    assert kept >= returned + 8, (kept, returned)

"""glibc heap controls (depthlite.memory): what each one changes in the allocator's state.

Each check runs in a fresh interpreter: whether glibc maps an allocation also depends on the
free space its heap already holds, which earlier tests in this process leave behind.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
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
from depthlite.memory import SERVER_TRIM_THRESHOLD, bound_heap_retention, trim_heap

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) // 1024 for l in status if l.startswith("VmRSS"))

if sys.argv[2] == "on":
    assert bound_heap_retention(SERVER_TRIM_THRESHOLD)
else:  # glibc's dynamic thresholds, as the estimator would otherwise leave them
    import depthlite.estimator
    depthlite.estimator.bound_heap_retention = lambda *args: False
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


_FAULT_PROBE = """
import resource, sys
from pathlib import Path
import depthlite.estimator
from depthlite import DepthEstimator

if sys.argv[2] == "off":  # glibc's dynamic thresholds, as the estimator would otherwise leave them
    depthlite.estimator.bound_heap_retention = lambda *args: False
est = DepthEstimator(weights=Path(sys.argv[1]), precision="int8", progress=False)
# Read, not made here: freeing a large array raises glibc's dynamic threshold by itself.
jpeg = Path(sys.argv[3]).read_bytes()

def request():
    est.predict(jpeg).encode(["color"])

for _ in range(3):
    request()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    request()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""


def _faults_per_request(weights: Path, mode: str, photo: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _FAULT_PROBE, str(weights), mode, str(photo)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_an_estimator_reuses_its_image_buffers_instead_of_faulting_them_in(
    int8_onnx: Path, tmp_path: Path
) -> None:
    """Once an estimator loads, a warm 1080p request faults no fresh pages in: with glibc's
    dynamic thresholds its large arrays got new mappings each call (about 3,000 faults, a
    quarter of MiDaS small INT8's pipeline time; docs/benchmarks.md, session 7)."""
    # INT8: a small session whose load frees no large block (an FP32 load raises glibc's
    # dynamic threshold past the image buffers, and hides the difference).
    photo = tmp_path / "photo.jpg"
    ramp = np.linspace(0, 255, 1920, dtype=np.float32)
    rgb = np.dstack([(ramp[None, :1080].T + ramp[None, :]) / 2, ramp[None, :].repeat(1080, 0),
                     ramp[::-1][None, :].repeat(1080, 0)]).astype(np.uint8)  # fmt: skip
    cv2.imwrite(str(photo), rgb)  # a 1920x1080 JPEG, as a user sends it
    _faults_per_request(int8_onnx, "on", photo)  # the measured runs then load the cached graph
    dynamic, fixed = (_faults_per_request(int8_onnx, m, photo) for m in ("off", "on"))
    assert fixed <= 100, (dynamic, fixed)
    assert dynamic >= fixed + 500, (dynamic, fixed)


def test_the_tightest_trim_threshold_asked_for_stays() -> None:
    """The server's bound (16 MiB) holds whether its estimators (64 MiB) are made before or
    after it is set."""
    code = (
        "from depthlite import memory as m\n"
        "m.bound_heap_retention(m.SERVER_TRIM_THRESHOLD)\n"
        "m.bound_heap_retention()\n"
        "print(m._trim_threshold[0] >> 20)\n"
        "m._trim_threshold.clear()\n"
        "m.bound_heap_retention()\n"
        "print(m._trim_threshold[0] >> 20)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["16", "64"]


_ONE_IMAGE_PROBE = (
    _PROBE.split("with large_allocations_mapped", maxsplit=1)[0]
    + """
from depthlite import memory
memory.bound_heap_retention()  # what every estimator sets when made
reused = mapped_while_holding(8 << 20)
memory.one_image_heap()
alone = mapped_while_holding(8 << 20)
with large_allocations_mapped(enabled=True):  # a large model's load, after it
    pass
loaded = mapped_while_holding(8 << 20)
memory.bound_heap_retention()  # another estimator made later
later = mapped_while_holding(8 << 20)
print(reused, alone, loaded, later)
"""
)


def test_one_image_maps_its_buffers_and_later_estimators_keep_that() -> None:
    """``depthlite predict`` of one image: what decoding and preprocessing free goes back at
    once instead of staying resident under the network's buffers."""
    done = subprocess.run(
        [sys.executable, "-c", _ONE_IMAGE_PROBE], capture_output=True, text=True, check=True
    )
    reused, alone, loaded, later = (int(v) for v in done.stdout.split())
    assert reused == 0  # many images: an 8 MiB buffer comes from the heap, to be reused
    assert (alone, loaded, later) == (1, 1, 1)

"""The media process's memory, tuned for its ticks: glibc keeps the batch's temporaries, and the
garbage collector's full passes skip what start-up left.

`keep_heap`: glibc must not give the batch's temporaries back to the kernel at every tick.

`analyze` over a tick's frames allocates about a megabyte of temporaries per 256 frames (complex128
spectra) and frees them. Left to itself, glibc's malloc returns such blocks to the kernel (munmap, or
trimming the top of the heap) and the next tick faults every page back in: measured, ~500 page
faults per block, as much CPU again as the FFTs. Raising the mmap and trim thresholds keeps those
pages in the process, at the cost of holding at most `trim_threshold` of freed memory.

`freeze_startup_objects`: a full (generation 2) collection walks every tracked object, and the
service's imports alone leave ~55,000 (numpy, aiohttp, prometheus, the twilio dialects...). With
1000 calls in flight a full pass took 33-50 ms, a tick of every call's frames held up behind it;
with start-up's objects frozen (gc.freeze, once they are all there), 4 ms.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import structlog

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 16 << 20  # above analyze's largest block (MAX_ROWS_PER_ANALYZE rows)
TRIM_THRESHOLD = 64 << 20

log = structlog.get_logger(__name__)
_done = False
_frozen = False


def keep_heap(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Once per process; True if the C library took the settings (glibc does; others may not)."""
    global _done
    if _done:
        return True
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        log.debug("keep_heap_unavailable", libc=name)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 and mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1)
    if not _done:
        log.debug("keep_heap_refused", libc=name)
    return _done


def freeze_startup_objects() -> int:
    """Collect, then move every object alive now out of the collector's passes (gc.freeze). Once
    per process, when start-up is over and before calls come (FrameBatch.run): objects frozen
    later would be calls' state, never collected if it became cyclic garbage. Returns how many
    objects are frozen."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()
        log.debug("gc_startup_frozen", objects=gc.get_freeze_count())
    return gc.get_freeze_count()

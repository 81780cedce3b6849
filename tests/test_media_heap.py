"""keep_heap: the batch's temporaries stop costing page faults at every tick."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
import numpy as np
from ari_amd.detect.features import analyze
from ari_amd.media.batch import MAX_ROWS_PER_ANALYZE
from ari_amd.media.heap import keep_heap
if sys.argv[1] == "keep":
    assert keep_heap()
frames = np.random.default_rng(1).normal(0, 0.1, (MAX_ROWS_PER_ANALYZE, 160)).astype(np.float32)
analyze(frames)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    analyze(frames)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def faults_per_block(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_analyze_blocks_fault_no_pages_in_once_the_heap_is_kept() -> None:
    kept = faults_per_block("keep")
    assert kept < 10, f"{kept} page faults per block with keep_heap"
    # And it is keep_heap that does it (glibc left alone gives the pages back and faults them in).
    assert faults_per_block("default") > 10 * max(kept, 1)


FREEZE_SCRIPT = """
import gc
import ari_amd.calls.engine, ari_amd.api  # what the service has imported when its batch starts
from ari_amd.media.heap import freeze_startup_objects
frozen = freeze_startup_objects()
assert frozen > 10_000, frozen  # start-up's objects, out of every full pass
calls_state = [[] for _ in range(1000)]
assert freeze_startup_objects() == frozen  # once: what calls make later is never frozen
class Cycle:
    pass
a, b = Cycle(), Cycle()
a.other, b.other = b, a
del a, b
assert gc.collect() >= 2  # cyclic garbage made after start-up is still collected
print(frozen)
"""


def test_start_up_objects_are_frozen_once_and_later_garbage_still_collected() -> None:
    out = subprocess.run([sys.executable, "-c", FREEZE_SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr

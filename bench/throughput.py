#!/usr/bin/env python3
"""Detector throughput on one core: audio-seconds processed per CPU-second.

    python bench/throughput.py [CORPUS_DIR]

Two figures:
  end to end  `ari-amd classify` over every clip in a fresh process pinned to one core,
              process start and file reading included, against the corpus's total audio;
  whole file  every clip fed in full (no stopping at the verdict) in this process,
              detector only, against the same audio.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import soundfile as sf

from ari_amd.audio import load
from ari_amd.detect import AmdParams, Mode
from ari_amd.detect.detector import Detector

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "dev"


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CORPUS
    files = sorted(folder.glob("*.wav"))
    if not files:
        print(f"no .wav files in {folder}", file=sys.stderr)
        return 2
    audio_s = sum(sf.info(str(f)).duration for f in files)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, for us and the child

    print(f"$ python bench/throughput.py {folder}")
    print(f"{len(files)} clips, {audio_s:.0f} s of audio")
    print(f"{'run':34s} {'CPU s':>8s} {'wall s':>8s} {'x real time (CPU)':>18s}")
    for mode in Mode:
        before, wall = children_cpu(), time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "ari_amd.cli", "classify", "--json", "--mode", mode.value, *map(str, files)],
            check=True, stdout=subprocess.DEVNULL,
        )
        cpu, wall = children_cpu() - before, time.perf_counter() - wall
        print(f"{'end to end, ' + mode.value:34s} {cpu:8.2f} {wall:8.2f} {audio_s / cpu:18.0f}")

    clips = [load(f) for f in files]
    params = AmdParams(mode=Mode.DETECT_MESSAGE_END, timeout_ms=59_000)
    start = time.process_time()
    for samples in clips:
        det = Detector(params)
        det.machine.step = lambda *a, **k: []  # type: ignore[method-assign]  # never decide: analyse every frame
        det.feed(samples)
    cpu = time.process_time() - start
    print(f"{'whole file, detector only':34s} {cpu:8.2f} {'':>8s} {audio_s / cpu:18.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

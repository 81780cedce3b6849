#!/usr/bin/env python3
"""Accuracy of the detector on a labelled corpus, both modes, against who really answered.

    python bench/accuracy.py [CORPUS_DIR] [--json]

CORPUS_DIR defaults to ../shared/corpus/dev beside the repo when it exists; otherwise a
synthetic corpus is generated (ari_amd.synth) into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from ari_amd.audio import load
from ari_amd.detect import AmdParams, Detector, Mode
from ari_amd.evaluate import Outcome, Report, format_summary, read_labels

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "dev"


def score(folder: Path, mode: Mode) -> dict[str, object]:
    params = AmdParams(mode=mode)
    report = Report(mode, params)
    for clip in read_labels(folder, mode):
        det = Detector(params)
        det.feed(load(clip.file))
        if not det.done:
            det.finish("end_of_audio")
        report.outcomes.append(Outcome(clip, det.verdicts[-1], tuple(det.verdicts[:-1])))
    return report.summary()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    folder = args.corpus
    tmp = None
    if folder is None:
        if DEFAULT_CORPUS.is_dir():
            folder = DEFAULT_CORPUS
        else:
            from ari_amd.synth.corpus import write_corpus

            tmp = tempfile.TemporaryDirectory()
            folder = Path(tmp.name)
            print(f"(no corpus given and none at {DEFAULT_CORPUS}: generating a synthetic one)", file=sys.stderr)
            write_corpus(folder, per_category=10, seed=7)
    started = time.perf_counter()
    results = {mode.value: score(folder, mode) for mode in Mode}
    if args.json:
        print(json.dumps(results))
    else:
        print(f"$ python bench/accuracy.py {folder}")
        for summary in results.values():
            print()
            print(format_summary(summary))
        print(f"\n({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write a folder of labelled synthetic calls, laid out like the dev corpus.

``write_corpus(outdir, per_category=N, seed=S)`` makes ``clip-000.wav`` ... (8 kHz mono,
mu-law WAV by default, 16-bit PCM with ``subtype="PCM_16"``) and ``labels.csv`` with the
dev corpus's exact header, so the same tools (``ari-amd eval DIR``) read both. Clips are
shuffled so the file name says nothing about the category; each clip's content depends only
on (seed, category, index), so asking for more categories or clips leaves the others as
they were.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from ari_amd.synth.scenes import DEFAULT_CATEGORIES, LABEL_COLUMNS, SCENES, Clip

SUBTYPES = ("ULAW", "ALAW", "PCM_16")


def clip_seed(seed: int, category: str, index: int) -> np.random.Generator:
    """A generator that depends only on (seed, category, index)."""
    key = int.from_bytes(hashlib.sha256(f"{seed}:{category}:{index}".encode()).digest()[:8], "little")
    return np.random.default_rng(key)


def generate(per_category: int = 3, seed: int = 0, categories: Iterable[str] | None = None) -> list[Clip]:
    """The clips, in category order (not shuffled)."""
    cats = list(categories) if categories is not None else list(DEFAULT_CATEGORIES)
    for c in cats:
        if c not in SCENES:
            raise ValueError(f"unknown category {c!r}; one of {', '.join(SCENES)}")
    return [SCENES[c](clip_seed(seed, c, i)) for c in cats for i in range(per_category)]


def write_wav(path: str | Path, samples: np.ndarray, subtype: str = "ULAW") -> None:
    if subtype not in SUBTYPES:
        raise ValueError(f"subtype must be one of {SUBTYPES}")
    sf.write(str(path), np.asarray(samples, dtype=np.int16), 8_000, subtype=subtype, format="WAV")


def write_corpus(
    outdir: str | Path,
    per_category: int = 3,
    seed: int = 0,
    categories: Iterable[str] | None = None,
    subtype: str = "ULAW",
) -> list[dict[str, str]]:
    """Write ``per_category`` clips of each category to ``outdir``; -> the labels rows."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    clips = generate(per_category, seed, categories)
    order = np.random.default_rng(seed).permutation(len(clips))
    width = max(3, len(str(len(clips) - 1)))
    rows = []
    for k, i in enumerate(order):
        name = f"clip-{k:0{width}d}.wav"
        write_wav(out / name, clips[i].samples, subtype)
        rows.append(clips[i].row(name))
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(LABEL_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return rows

"""Reading audio files for the offline tools: anything soundfile reads, as 8 kHz int16 mono."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from ari_amd.detect.features import SAMPLE_RATE


class AudioError(Exception):
    """A file that cannot be read as audio; the message names the file and the reason."""


def load(path: str | Path) -> np.ndarray:
    """-> int16 mono samples at 8 kHz. Stereo is mixed down; other rates are resampled."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:  # missing, not audio, truncated
        raise AudioError(f"{path}: cannot read audio ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path}: no samples")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != SAMPLE_RATE:
        import soxr  # only offline tools on non-8 kHz files pay for this import

        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    pcm: np.ndarray = np.clip(np.round(mono * 32768.0), -32768, 32767).astype(np.int16)
    return pcm

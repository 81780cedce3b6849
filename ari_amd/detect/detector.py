"""The streaming detector: feed samples of any length, get events at the frame they happen."""

from __future__ import annotations

import numpy as np

from ari_amd.detect.params import AmdParams
from ari_amd.detect.verdict import AmdEvent, Verdict

SAMPLE_RATE = 8_000


class Detector:
    """One call's detector. Time is the audio clock: samples fed since answer.

    feed(samples): int16 (or float in [-1, 1]) mono at `sample_rate` (8000 or 16000).
    finish(cause): end of audio (hangup, end of file); emits `unknown` if undecided.
    """

    def __init__(self, params: AmdParams | None = None, sample_rate: int = SAMPLE_RATE) -> None:
        raise NotImplementedError  # being written

    def feed(self, samples: np.ndarray) -> list[AmdEvent]:
        raise NotImplementedError

    def finish(self, cause: str = "end_of_audio") -> list[AmdEvent]:
        raise NotImplementedError

    @property
    def done(self) -> bool:
        raise NotImplementedError

    @property
    def verdicts(self) -> list[Verdict]:
        raise NotImplementedError


def classify(samples: np.ndarray, params: AmdParams | None = None, sample_rate: int = SAMPLE_RATE) -> list[Verdict]:
    """Whole-clip convenience: every verdict the detector gives for this audio, in order."""
    det = Detector(params, sample_rate)
    det.feed(samples)
    if not det.done:
        det.finish()
    return det.verdicts

"""The live tap pads the audio it missed before the snoop attached with digital silence: a
verdict must then move by exactly that padding, never change (what makes live = offline)."""

from __future__ import annotations

import numpy as np
import pytest

from ari_amd.detect import AmdParams, Mode, Rule, classify
from ari_amd.synth import make_clip

FRAME = 160
ANCHORED_AT_ANSWER = {Rule.SILENCE_TIMEOUT, Rule.TIMEOUT}  # counted from t0, not from the audio


@pytest.mark.parametrize("mode", [Mode.ENABLE, Mode.DETECT_MESSAGE_END])
@pytest.mark.parametrize(("category", "seed"), [
    ("human_residential", 3), ("human_business", 1), ("machine_short", 2), ("machine_personal", 4),
    ("machine_carrier", 1), ("machine_no_beep", 2), ("fax", 1),
])
def test_leading_digital_silence_only_shifts_the_verdicts(category: str, seed: int, mode: Mode) -> None:
    x = make_clip(category, seed).samples
    params = AmdParams(mode=mode)
    base = classify(x, params)
    for lead in (1, 3, 5, 8):
        shifted = classify(np.concatenate([np.zeros(lead * FRAME, np.int16), x]), params)
        assert [v.answered_by for v in shifted] == [v.answered_by for v in base], (lead, shifted, base)
        for a, b in zip(shifted, base):
            want = b.duration_ms if b.rule in ANCHORED_AT_ANSWER else b.duration_ms + 20 * lead
            assert a.duration_ms == want, (lead, a, b)

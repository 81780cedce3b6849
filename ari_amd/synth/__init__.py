"""Labelled call audio made by code: speech without a TTS engine, beeps, fax, SIT, ringback,
music, and a telephone line, assembled into the dev corpus's call categories.

    from ari_amd.synth import make_clip, write_corpus
    clip = make_clip("machine_personal", 7)        # Clip: samples (int16, 8 kHz) + labels
    write_corpus("out/", per_category=5, seed=1)    # clip-NNN.wav + labels.csv

or ``python -m ari_amd.synth OUTDIR --per-category 5 --seed 1``.
"""

from ari_amd.synth.corpus import generate, write_corpus
from ari_amd.synth.line import NOISE_KINDS, LineConfig, bandpass, make_noise, transmit
from ari_amd.synth.scenes import (
    DEFAULT_CATEGORIES,
    DEV_CATEGORIES,
    EXTRA_CATEGORIES,
    LABEL_COLUMNS,
    SCENES,
    Clip,
    Part,
    make_clip,
    measure_speech,
)
from ari_amd.synth.tones import make_beep
from ari_amd.synth.voice import Voice, babble, speak

__all__ = [
    "Clip", "Part", "LABEL_COLUMNS", "SCENES", "DEV_CATEGORIES", "EXTRA_CATEGORIES", "DEFAULT_CATEGORIES",
    "make_clip", "measure_speech", "generate", "write_corpus", "Voice", "speak", "babble", "make_beep",
    "LineConfig", "NOISE_KINDS", "bandpass", "make_noise", "transmit",
]

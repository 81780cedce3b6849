"""The greeting hold: after a greeting-length utterance the human decision waits for a beep."""

from __future__ import annotations

import numpy as np

from ari_amd.detect import AmdParams, AnsweredBy, Mode, classify
from ari_amd.detect.machine import GREETING_HOLD_SILENCE_MS
from ari_amd.synth import make_clip

CLEAN = {"noise": "pink", "snr_db": 25.0}
SEEDS = range(6)


def test_a_short_greeting_a_pause_then_a_beep_is_a_machine() -> None:
    hits_enable = hits_dme = 0
    for seed in SEEDS:
        c = make_clip("machine_short", seed, second=False, pause_s=2.0, text="You have reached Sam. Leave a message.", **CLEAN)
        assert c.beep_start_ms is not None and c.beep_end_ms is not None
        enable = classify(c.samples)[-1]
        dme = classify(c.samples, AmdParams(mode=Mode.DETECT_MESSAGE_END))[-1]
        hits_enable += enable.answered_by is AnsweredBy.MACHINE_START
        hits_dme += dme.answered_by is AnsweredBy.MACHINE_END_BEEP
        if dme.answered_by is AnsweredBy.MACHINE_END_BEEP:
            assert c.beep_end_ms <= dme.duration_ms <= c.beep_end_ms + 300
    # Twilio's rule calls every one of these human (1.2 s of silence after a short run).
    assert hits_enable >= 5
    assert hits_dme >= 5


def test_a_greeting_length_hello_then_silence_is_still_human_within_the_hold() -> None:
    for seed in SEEDS:
        c = make_clip("human_residential", seed, text="Hi, this is Sam, who's calling?", second_hello=False, **CLEAN)
        v = classify(c.samples)[-1]
        assert v.answered_by is AnsweredBy.HUMAN
        assert c.first_utterance_end_ms is not None
        assert v.duration_ms - c.first_utterance_end_ms <= GREETING_HOLD_SILENCE_MS + 300


def test_a_plain_hello_is_not_held() -> None:
    for seed in SEEDS:
        c = make_clip("human_residential", seed, text="Hello?", second_hello=False, **CLEAN)
        v = classify(c.samples)[-1]
        assert v.answered_by is AnsweredBy.HUMAN
        assert v.limit_ms == AmdParams().speech_end_threshold_ms
        assert c.first_utterance_end_ms is not None
        assert v.duration_ms - c.first_utterance_end_ms <= 1_500


def test_a_hangup_during_the_hold_is_human() -> None:
    c = make_clip("human_residential", 0, text="Hi, this is Sam, who's calling?", second_hello=False, **CLEAN)
    assert c.first_utterance_end_ms is not None
    cut = c.samples[: 8 * (c.first_utterance_end_ms + 1_800)]  # after SpeechEndThreshold, inside the hold
    v = classify(cut)[-1]
    assert v.answered_by is AnsweredBy.HUMAN


def test_a_short_second_hello_after_a_held_one_gets_twilio_timing() -> None:
    """A long hello, 1.6 s of waiting (inside the hold), then a short "Hello?": decided
    SpeechEndThreshold after the second one, not held again."""
    checked = 0
    for seed in SEEDS:
        a = make_clip("human_residential", seed, text="Hi, this is Sam, who's calling?", second_hello=False, **CLEAN)
        b = make_clip("human_residential", seed + 100, text="Hello?", second_hello=False, **CLEAN)
        assert a.first_utterance_end_ms is not None and b.speech_onset_ms is not None
        assert b.first_utterance_end_ms is not None
        cut_a = 8 * (a.first_utterance_end_ms + 1_600)
        from_b = 8 * max(0, b.speech_onset_ms - 100)
        samples = np.concatenate((a.samples[:cut_a], b.samples[from_b:]))
        second_end = (cut_a + 8 * b.first_utterance_end_ms - from_b) // 8
        v = classify(samples)[-1]
        assert v.answered_by is AnsweredBy.HUMAN
        if v.duration_ms > second_end:
            assert v.duration_ms - second_end <= 1_500
            checked += 1
    assert checked >= 4

"""The detector on whole synthetic calls (ari_amd.synth): who answered, when, and the tunables' effect."""

from __future__ import annotations

from functools import cache

import pytest

from ari_amd.detect import AmdParams, AnsweredBy, Mode, classify
from ari_amd.synth import Clip, make_clip

DME = AmdParams(mode=Mode.DETECT_MESSAGE_END)
CLEAN = {"noise": "pink", "snr_db": 25.0}
SEEDS = range(6)


@cache
def clip(category: str, seed: int) -> Clip:
    return make_clip(category, seed, **CLEAN)


def verdicts(category: str, params: AmdParams | None = None) -> list[tuple[Clip, AnsweredBy, int]]:
    out = []
    for seed in SEEDS:
        c = clip(category, seed)
        v = classify(c.samples, params)[-1]
        out.append((c, v.answered_by, v.duration_ms))
    return out


def share(results: list[tuple[Clip, AnsweredBy, int]], *kinds: AnsweredBy) -> float:
    return sum(kind in kinds for _, kind, _ in results) / len(results)


def test_residential_hellos_are_human_soon_after_they_end() -> None:
    results = verdicts("human_residential")
    assert share(results, AnsweredBy.HUMAN) >= 5 / 6
    lags = []
    for c, kind, at in results:
        if kind is AnsweredBy.HUMAN:
            assert c.first_utterance_end_ms is not None and c.speech_onset_ms is not None
            lag = at - c.first_utterance_end_ms
            lags.append(lag)
            # Twilio's rule, for every hello short or long: SpeechEndThreshold (1200 ms) of silence.
            assert 1_000 <= lag <= 1_500
    assert sorted(lags)[len(lags) // 2] <= 1_300


def test_voicemail_greetings_are_machine_start_after_the_speech_threshold() -> None:
    for category in ("machine_personal", "machine_carrier"):
        results = verdicts(category)
        assert share(results, AnsweredBy.MACHINE_START) >= 5 / 6, category
        for c, kind, at in results:
            if kind is AnsweredBy.MACHINE_START and c.speech_onset_ms is not None:
                assert at >= c.speech_onset_ms + 2_000  # not before the speech threshold could run out


def test_message_end_waits_for_the_beep() -> None:
    results = verdicts("machine_personal", DME) + verdicts("machine_carrier", DME)
    assert share(results, AnsweredBy.MACHINE_END_BEEP) >= 10 / 12
    for c, kind, at in results:
        assert c.beep_start_ms is not None and c.beep_end_ms is not None
        if kind is AnsweredBy.MACHINE_END_BEEP:
            assert at >= c.beep_end_ms  # never before the beep is over
            assert at - c.beep_end_ms <= 300


def test_greeting_then_silence_is_machine_end_silence() -> None:
    results = [(c, k, t) for c, k, t in verdicts("machine_no_beep", DME) if c.expected_dme == "machine_end_silence"]
    assert results, "the scene should make some silent endings in six seeds"
    assert share(results, AnsweredBy.MACHINE_END_SILENCE) >= 0.75


def test_fax_is_fax_within_half_a_second_of_its_tone() -> None:
    for c, kind, at in verdicts("fax"):
        assert kind is AnsweredBy.FAX
        assert c.speech_onset_ms is not None and at - c.speech_onset_ms <= 600


def test_dead_air_and_line_noise_are_unknown() -> None:
    assert share(verdicts("silence"), AnsweredBy.UNKNOWN) == 1.0


def test_sit_tones_are_unknown() -> None:
    assert share(verdicts("sit"), AnsweredBy.UNKNOWN) == 1.0


def test_ringback_after_answer_then_hello_is_human() -> None:
    assert share(verdicts("ringback_then_human"), AnsweredBy.HUMAN) >= 5 / 6


def test_a_higher_speech_threshold_turns_business_hellos_human() -> None:
    default = verdicts("human_business")
    patient = verdicts("human_business", AmdParams(speech_threshold_ms=6_000))
    assert share(patient, AnsweredBy.HUMAN) > share(default, AnsweredBy.HUMAN)
    assert share(patient, AnsweredBy.HUMAN) >= 5 / 6


def test_a_longer_speech_end_threshold_holds_the_human_decision() -> None:
    compared = 0
    for seed in SEEDS:
        samples = clip("human_residential", seed).samples
        quick = classify(samples)[-1]
        slow = classify(samples, AmdParams(speech_end_threshold_ms=3_000))[-1]
        if quick.answered_by is slow.answered_by is AnsweredBy.HUMAN and quick.limit_ms == 1_200:
            # Not held for a beep: the decision moves by exactly the threshold's change.
            assert slow.duration_ms - quick.duration_ms == pytest.approx(1_800, abs=60)
            compared += 1
    assert compared >= 3


def test_the_timeout_caps_detection() -> None:
    v = classify(clip("machine_carrier", 0).samples, AmdParams(mode=Mode.DETECT_MESSAGE_END, timeout_ms=3_000))[-1]
    assert v.duration_ms == 3_000
    assert v.answered_by in (AnsweredBy.MACHINE_END_OTHER, AnsweredBy.UNKNOWN)

"""When the detector speaks: people get Twilio's timing, DetectMessageEnd waits BeepTimeout for a beep."""

from __future__ import annotations

import numpy as np

from ari_amd.detect import AmdParams, AnsweredBy, Mode, classify
from ari_amd.detect.machine import GREETING_HOLD_EXTRA_MS
from ari_amd.synth import Voice, make_clip, speak
from ari_amd.synth.families import select
from tests.sounds import line, silence, tone

CLEAN = {"noise": "pink", "snr_db": 25.0}
DME = AmdParams(mode=Mode.DETECT_MESSAGE_END)
SEEDS = range(5)
SPEECH_END = AmdParams().speech_end_threshold_ms


def human_lags(text: str, second_hello: bool) -> list[int]:
    """For a person saying `text` (then, perhaps, a second "Hello?"): how long after their first
    words end each verdict came; every one must be human."""
    lags = []
    for seed in SEEDS:
        c = make_clip("human_residential", seed, text=text, second_hello=second_hello, **CLEAN)
        v = classify(c.samples)[-1]
        assert v.answered_by is AnsweredBy.HUMAN
        assert c.first_utterance_end_ms is not None
        lags.append(v.duration_ms - c.first_utterance_end_ms)
    return lags


def test_a_plain_hello_gets_its_verdict_speech_end_threshold_after_it() -> None:
    for lag in human_lags("Hello?", second_hello=False):
        assert SPEECH_END - 100 <= lag <= SPEECH_END + 150


def test_long_first_words_are_held_at_most_a_little() -> None:
    """No dead air: "Hello, Garcia house." is decided by SpeechEndThreshold, held at most
    GREETING_HOLD_EXTRA_MS for a beep if it ran 1.5 s or more."""
    for lag in human_lags("Yes hello, who am I speaking with?", second_hello=False):
        assert lag <= SPEECH_END + GREETING_HOLD_EXTRA_MS + 150


def test_a_second_hello_after_the_speech_end_threshold_does_not_delay_the_verdict() -> None:
    for lag in human_lags("Hello?", second_hello=True):
        assert lag <= SPEECH_END + 150


def test_a_beep_long_after_the_greeting_is_still_the_message_end() -> None:
    """Beeps 5-8 s after the greeting: Twilio would have said machine_end_silence first."""
    found = 0
    for seed in SEEDS:
        gap = 5.0 + 0.7 * seed
        c = make_clip("machine_personal", seed, gap_s=gap, beep_kind="pure", **CLEAN)
        assert c.beep_start_ms is not None and c.beep_end_ms is not None
        vs = classify(c.samples, DME)
        v = vs[-1]
        if vs[0].answered_by is AnsweredBy.MACHINE_START and v.answered_by is AnsweredBy.MACHINE_END_BEEP:
            assert c.beep_end_ms <= v.duration_ms <= c.beep_end_ms + 300
            found += 1
        assert v.answered_by is not AnsweredBy.MACHINE_END_SILENCE or v.duration_ms >= c.beep_start_ms
    assert found >= 4


def test_beep_timeout_is_tunable() -> None:
    """With a 3 s wait, the same late beep comes after machine_end_silence."""
    c = make_clip("machine_personal", 1, gap_s=6.0, beep_kind="pure", text="You've reached David, I can't come "
                  "to the phone, leave a message after the beep.", **CLEAN)
    assert c.greeting_end_ms is not None and c.beep_start_ms is not None
    v = classify(c.samples, AmdParams(mode=Mode.DETECT_MESSAGE_END, beep_timeout_ms=3_000))[-1]
    assert v.answered_by is AnsweredBy.MACHINE_END_SILENCE
    assert c.greeting_end_ms + 2_500 <= v.duration_ms < c.beep_start_ms


def test_no_beep_ends_in_silence_after_the_beep_timeout() -> None:
    for seed in SEEDS:
        c = make_clip("machine_no_beep", seed, end="silence", tail_s=12.0, **CLEAN)
        vs = classify(c.samples, DME)
        if vs[0].answered_by is not AnsweredBy.MACHINE_START:
            continue
        v = vs[-1]
        assert v.answered_by is AnsweredBy.MACHINE_END_SILENCE
        assert c.greeting_end_ms is not None
        assert DME.beep_timeout_ms - 400 <= v.duration_ms - c.greeting_end_ms <= DME.beep_timeout_ms + 300


def test_hold_music_before_the_beep_does_not_end_the_wait() -> None:
    beeps = 0
    for seed in SEEDS:
        c = make_clip("machine_hold_beep", seed, music_s=3.0, beep_kind="pure", **CLEAN)
        assert c.beep_start_ms is not None and c.beep_end_ms is not None
        v = classify(c.samples, DME)[-1]
        assert v.answered_by is not AnsweredBy.MACHINE_END_BEEP or v.duration_ms >= c.beep_end_ms
        beeps += v.answered_by is AnsweredBy.MACHINE_END_BEEP
    assert beeps >= 3


def test_a_held_vowel_is_not_a_beep() -> None:
    """Two people from the tune families whose synthetic voice holds a vowel at a steady low
    pitch for 120-180 ms, a voice straight after: not a beep, so not a machine either."""
    for family, index in (("alaw", 1), ("loss_zeros", 2)):
        c = select("tune", [family])[0].make("human_residential", index)
        assert classify(c.samples)[-1].answered_by is AnsweredBy.HUMAN, family
        assert classify(c.samples, DME)[-1].answered_by is AnsweredBy.HUMAN, family


def test_a_short_low_tone_after_the_greeting_is_a_beep() -> None:
    rng = np.random.default_rng(3)
    greeting = (speak("You have reached the Millers, we cannot take your call right now.", Voice.random(rng, "f"), rng)
                * 32768 * 10 ** (-6 / 20)).astype(np.int16)
    beep = line(greeting, silence(400), tone(450, 160, -12), silence(8_000), noise_dbfs=-55)
    assert classify(beep, DME)[-1].answered_by is AnsweredBy.MACHINE_END_BEEP

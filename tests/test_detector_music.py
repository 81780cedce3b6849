"""Hold music after a greeting, and music notes that are not beeps."""

from __future__ import annotations

import numpy as np

from ari_amd.detect import AmdParams, AnsweredBy, Mode, Rule, classify
from ari_amd.synth import make_clip
from ari_amd.synth.families import select
from tests.sounds import line, silence, tone

DME = AmdParams(mode=Mode.DETECT_MESSAGE_END)


def test_music_after_the_greeting_is_heard_as_music() -> None:
    """The greeting (a machine by its length), then hold music and no beep: machine_end_other,
    once the beep wait is over or the audio ends, never machine_end_beep."""
    other = total = 0
    for seed in range(6):
        for snr in (25.0, 12.0):
            c = make_clip("machine_no_beep", seed, end="music", noise="pink", snr_db=snr)
            vs = classify(c.samples, DME)
            if vs[0].answered_by is not AnsweredBy.MACHINE_START:
                continue  # a greeting under SpeechThreshold: Twilio's rule says human
            total += 1
            v = vs[-1]
            assert v.answered_by is not AnsweredBy.MACHINE_END_BEEP
            if v.answered_by is AnsweredBy.MACHINE_END_OTHER:
                other += 1
                assert c.greeting_end_ms is not None and v.duration_ms > c.greeting_end_ms
    assert total >= 8
    assert other >= total - 1


def test_a_tone_that_sounds_on_softer_at_its_pitch_is_not_a_beep() -> None:
    # A note of music, loud and then quiet (here barely above the line noise): no beep ends.
    fading = line(silence(1_000), tone(620, 500, -14), tone(620, 1_500, -30), silence(3_000), noise_dbfs=-30)
    v = classify(fading, DME)[-1]
    assert v.answered_by is not AnsweredBy.MACHINE_END_BEEP


def test_the_same_tone_ending_into_the_line_is_a_beep() -> None:
    beep = line(silence(1_000), tone(620, 500, -14), silence(3_000), noise_dbfs=-30)
    v = classify(beep, DME)[-1]
    assert v.answered_by is AnsweredBy.MACHINE_END_BEEP
    assert 1_500 <= v.duration_ms <= 1_800


def test_a_beep_of_three_rising_tones_is_a_beep_not_music() -> None:
    # Three distinct held notes, one after another, look like music while they sound;
    # they end into the line's quiet, so they are the beep.
    for dur in (200, 300, 400):
        x = line(silence(1_000), tone(600, dur, -14), tone(800, dur, -14), tone(1_000, dur, -14), silence(3_000))
        v = classify(x, DME)[-1]
        assert v.answered_by is AnsweredBy.MACHINE_END_BEEP, dur
        assert 1_000 + 3 * dur <= v.duration_ms <= 1_000 + 3 * dur + 300


def test_a_three_tone_beep_after_a_greeting_ends_it_with_the_beep() -> None:
    for seed in (1, 2):
        c = make_clip("machine_personal", seed, noise="pink", snr_db=25.0)
        assert c.beep_start_ms is not None
        greeting = c.samples[: 8 * (c.beep_start_ms - 300)]
        beep = line(tone(600, 300, -14), tone(800, 300, -14), tone(1_000, 300, -14), silence(3_000), noise_dbfs=-55)
        v = classify(np.concatenate((greeting, beep)), DME)[-1]
        assert v.answered_by is AnsweredBy.MACHINE_END_BEEP


def test_music_in_the_room_from_the_answer_is_not_hold_music() -> None:
    """People answering with a radio playing (the tune families' room-music callers): the music
    was there from the first frame, before they spoke, so it is no machine's hold music."""
    family = select("tune", ["noise_new"])[0]
    for index in (3, 4, 5):
        c = family.make("human_residential", index)
        assert "room_music" in c.notes
        vs = classify(c.samples)
        assert all(v.rule is not Rule.MUSIC for v in vs)
        assert vs[-1].answered_by is AnsweredBy.HUMAN

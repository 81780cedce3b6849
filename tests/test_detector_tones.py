"""The detector on audio with no speech: dead air, fax, SIT, beeps, ringback; and its streaming contract."""

import numpy as np
import pytest

from ari_amd.detect import AmdParams, AnsweredBy, Detector, EventKind, Mode, Rule, classify
from ari_amd.detect.features import FRAME, analyze
from ari_amd.synth import make_clip
from tests.sounds import line, noise, phase_reversed_tone, silence, tone

DME = AmdParams(mode=Mode.DETECT_MESSAGE_END)


def test_feature_peak_finds_the_tone_frequency() -> None:
    x = tone(1004.0, 200).astype(np.float32)
    feats = analyze(x[: len(x) // FRAME * FRAME].reshape(-1, FRAME))
    assert np.allclose(feats.peak_hz[2:-2], 1004.0, atol=5.0)
    assert np.all(feats.peak_frac[2:-2] > 0.85)


def test_dead_air_is_unknown_at_the_silence_timeout() -> None:
    v = classify(line(silence(8_000)))
    assert [x.answered_by for x in v] == [AnsweredBy.UNKNOWN]
    assert v[0].duration_ms == 5_000
    assert "silence_timeout" in v[0].cause


def test_line_noise_alone_is_unknown() -> None:
    v = classify(line(noise(8_000, -40.0, seed=3), noise_dbfs=-55))
    assert v[-1].answered_by is AnsweredBy.UNKNOWN


def test_silence_timeout_is_tunable() -> None:
    v = classify(line(silence(8_000)), AmdParams(silence_timeout_ms=2_000))
    assert v[-1].duration_ms == 2_000


@pytest.mark.parametrize("reversals", [False, True])
def test_v25_answer_tone_is_fax_within_half_a_second(reversals: bool) -> None:
    ans = phase_reversed_tone(2100, 3_000, 450) if reversals else tone(2100, 3_000)
    v = classify(line(silence(700), ans, silence(1_000)))
    assert v[-1].answered_by is AnsweredBy.FAX
    assert 700 < v[-1].duration_ms <= 700 + 500


def test_v21_flags_are_fax() -> None:
    # HDLC flags 0x7E at 300 baud: 0 1 1 1 1 1 1 0, space 1850 Hz / mark 1650 Hz.
    bits = [0, 1, 1, 1, 1, 1, 1, 0] * 40
    phase, out = 0.0, []
    for b in bits:
        f = 1650.0 if b else 1850.0
        n = 8000 // 300
        out.append(np.sin(phase + 2 * np.pi * f * np.arange(n) / 8000))
        phase += 2 * np.pi * f * n / 8000
    v = classify(line(silence(500), np.concatenate(out) * 0.3, silence(1000)))
    assert v[-1].answered_by is AnsweredBy.FAX
    assert "v21" in v[-1].cause


def test_sit_tones_are_unknown_with_a_sit_cause() -> None:
    sit = np.concatenate([tone(913.8, 274), tone(1370.6, 274), tone(1776.7, 380), silence(2000)])
    v = classify(line(silence(400), sit))
    assert v[-1].answered_by is AnsweredBy.UNKNOWN
    assert "sit_tone" in v[-1].cause


def test_a_beep_alone_in_message_end_mode_is_machine_end_beep_after_it_ends() -> None:
    audio = line(silence(1_000), tone(1_000, 500, -15), silence(3_000))
    v = classify(audio, DME)
    assert v[-1].answered_by is AnsweredBy.MACHINE_END_BEEP
    assert 1_500 <= v[-1].duration_ms <= 1_500 + 300


def test_ringback_heard_after_answer_is_not_a_beep() -> None:
    ring = np.concatenate([tone((440, 480), 2_000, -18), silence(4_000)] * 2)
    v = classify(line(ring), DME)
    assert v[-1].answered_by is not AnsweredBy.MACHINE_END_BEEP


def test_events_report_beep_start_and_end() -> None:
    det = Detector(DME)
    events = det.feed(line(silence(1_000), tone(1_400, 300, -15), silence(2_000)))
    kinds = {e.kind: e.t_ms for e in events}
    assert abs(kinds[EventKind.BEEP_START] - 1_000) <= 40
    assert abs(kinds[EventKind.BEEP_END] - 1_300) <= 40


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_streaming_in_any_chunks_matches_the_whole_file(seed: int) -> None:
    audio = line(silence(800), tone(2100, 1500), silence(500), tone(800, 400), silence(6000), seed=seed)
    whole = Detector(DME)
    whole_events = whole.feed(audio)
    rng = np.random.default_rng(seed)
    chunked = Detector(DME)
    chunk_events, i = [], 0
    while i < len(audio):
        n = int(rng.integers(1, 700))
        chunk_events += chunked.feed(audio[i : i + n])
        i += n
    assert chunk_events == whole_events
    assert chunked.verdicts == whole.verdicts


def test_16khz_input_gives_the_same_verdict_as_8khz() -> None:
    import soxr

    from ari_amd.audio import SAMPLE_RATE  # noqa: F401 - the 8 kHz contract

    audio8 = line(silence(900), tone(2100, 2000), silence(500))
    audio16 = soxr.resample(audio8.astype(np.float32) / 32768, 8000, 16000)
    v8 = classify(audio8)[-1]
    v16 = classify((audio16 * 32768).astype(np.int16), sample_rate=16_000)[-1]
    assert v16.answered_by is v8.answered_by is AnsweredBy.FAX
    assert abs(v16.duration_ms - v8.duration_ms) <= 40


def test_finish_before_a_verdict_is_unknown_with_the_cause_given() -> None:
    det = Detector()
    det.feed(line(silence(1_000)))
    events = det.finish("hangup")
    assert events[-1].verdict is not None
    assert events[-1].verdict.answered_by is AnsweredBy.UNKNOWN
    assert "hangup" in events[-1].verdict.cause
    assert events[-1].verdict.duration_ms == 1_000


def test_feeding_after_the_verdict_is_harmless() -> None:
    det = Detector()
    det.feed(line(silence(6_000)))
    assert det.done
    assert det.feed(line(silence(1_000))) == []
    assert det.finish("hangup") == []


def test_bad_sample_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="8000 or 16000"):
        Detector(sample_rate=44_100)


def test_ringback_after_an_attendant_is_never_a_beep() -> None:
    """ "Please hold while I connect you", then the ring: US (2 s on) or UK (0.4/0.2/0.4 s)."""
    for kind in ("us", "uk"):
        for seed in range(12):
            c = make_clip("attendant_ringback", seed, kind=kind, noise="pink", snr_db=float(10 + 2 * seed))
            for mode in Mode:
                for v in classify(c.samples, AmdParams(mode=mode)):
                    assert v.answered_by is not AnsweredBy.MACHINE_END_BEEP, (kind, seed, v.cause)
                    assert v.rule is not Rule.BEEP, (kind, seed, v.cause)


def test_a_beep_into_digital_silence_is_heard_at_once() -> None:
    """A line with silence suppression sends zeros after the beep: that is its end, not a lost
    packet inside it (a hole of a few packets is bridged)."""
    greeting = make_clip("machine_personal", 2, noise="pink", snr_db=30.0, gap_s=0.6, beep_kind="pure")
    assert greeting.beep_start_ms is not None and greeting.beep_end_ms is not None
    cut = greeting.samples[: 8 * (greeting.beep_end_ms + 1)]
    audio = np.concatenate((cut, np.zeros(8 * 6_000, dtype=np.int16)))
    v = classify(audio, AmdParams(mode=Mode.DETECT_MESSAGE_END))[-1]
    assert v.answered_by is AnsweredBy.MACHINE_END_BEEP
    assert greeting.beep_end_ms <= v.duration_ms <= greeting.beep_end_ms + 300
    # 60 ms of zeros inside the beep is one beep, not two.
    holed = line(silence(500), tone(1_000, 300, -12), silence(60), tone(1_000, 300, -12), silence(3_000))
    holed[8 * 800 : 8 * 860] = 0
    beeps = [e for e in Detector(AmdParams(mode=Mode.DETECT_MESSAGE_END)).feed(holed) if e.kind is EventKind.BEEP_END]
    assert len(beeps) <= 1


def test_a_425_hz_ring_after_speech_is_not_a_beep() -> None:
    """European ringback (425 Hz, 1 s on) after an attendant; a 0.4 s tone there is a beep."""
    hello = make_clip("attendant_ringback", 1, kind="us", noise="pink", snr_db=30.0)
    assert hello.first_utterance_end_ms is not None
    said = hello.samples[: 8 * (hello.first_utterance_end_ms + 600)]
    ring = line(tone(425, 1_000, -14), silence(4_000), tone(425, 1_000, -14), silence(3_000), noise_dbfs=-60)
    for v in classify(np.concatenate((said, ring)), AmdParams(mode=Mode.DETECT_MESSAGE_END)):
        assert v.answered_by is not AnsweredBy.MACHINE_END_BEEP, v.cause

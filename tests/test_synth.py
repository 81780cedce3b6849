"""The synthetic call generator: deterministic, labels that agree with the audio, the corpus
layout that `ari-amd eval` reads."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ari_amd.detect.features import analyze
from ari_amd.synth import (
    DEFAULT_CATEGORIES,
    LABEL_COLUMNS,
    NOISE_KINDS,
    SCENES,
    Voice,
    bandpass,
    make_clip,
    make_noise,
    speak,
    write_corpus,
)
from ari_amd.synth.__main__ import main as synth_main
from ari_amd.synth.line import LineConfig, active_level, transmit
from ari_amd.synth.tones import BEEP_KINDS, fax_answer_tone, make_beep

# The contract with the dev corpus (../shared/corpus/dev/labels.csv) and with `ari-amd eval`.
HEADER = (
    "file,category,truth,expected_enable,expected_dme,speech_onset_ms,first_utterance_end_ms,"
    "greeting_end_ms,beep_start_ms,beep_end_ms,beep_hz,snr_db,voice,notes"
)
SR = 8_000

EXPECTED = {
    "human_residential": ("human", "human", {"human"}),
    "human_business": ("human", "human", {"human"}),
    "machine_personal": ("machine", "machine_start", {"machine_end_beep"}),
    "machine_carrier": ("machine", "machine_start", {"machine_end_beep"}),
    "machine_short": ("machine", "machine_start", {"machine_end_beep"}),
    "machine_no_beep": ("machine", "machine_start", {"machine_end_silence", "machine_end_other"}),
    "machine_multi_gap": ("machine", "machine_start", {"machine_end_beep"}),
    "fax": ("fax", "fax", {"fax"}),
    "silence": ("nobody", "unknown", {"unknown"}),
    "sit": ("sit", "unknown", {"unknown"}),
    "ringback_then_human": ("human", "human", {"human"}),
}


@pytest.fixture(scope="module")
def clips():
    """One clip per category, two seeds each."""
    return {(c, s): make_clip(c, s) for c in DEFAULT_CATEGORIES for s in (1, 2)}


def _window(x: np.ndarray, a_ms: int, b_ms: int) -> np.ndarray:
    return x[a_ms * SR // 1000 : b_ms * SR // 1000].astype(np.float64) / 32768


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    return np.fft.rfftfreq(len(x), 1 / SR), p


def _band_power(f: np.ndarray, p: np.ndarray, lo: float, hi: float) -> float:
    return float(p[(f >= lo) & (f <= hi)].sum())


# ---------------------------------------------------------------------------------------------
# The CSV contract


def test_label_columns_are_the_dev_corpus_header():
    assert ",".join(LABEL_COLUMNS) == HEADER


def test_dev_corpus_header_unchanged_when_present():
    dev = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "dev" / "labels.csv"
    if not dev.exists():
        pytest.skip("no dev corpus next to the repo")
    assert dev.read_text(encoding="utf-8").splitlines()[0] == HEADER


def test_write_corpus_layout(tmp_path):
    rows = write_corpus(tmp_path, per_category=1, seed=3, categories=["silence", "machine_short", "fax"])
    text = (tmp_path / "labels.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == HEADER
    read = list(csv.DictReader(text.splitlines()))
    assert read == rows
    assert sorted(r["file"] for r in read) == ["clip-000.wav", "clip-001.wav", "clip-002.wav"]
    assert sorted(r["category"] for r in read) == ["fax", "machine_short", "silence"]
    for r in read:
        info = sf.info(str(tmp_path / r["file"]))
        assert (info.samplerate, info.channels, info.subtype) == (8_000, 1, "ULAW")
        assert 3.5 < info.duration < 36


def test_cli_writes_pcm(tmp_path):
    assert synth_main([str(tmp_path), "--per-category", "1", "--seed", "4", "--categories", "machine_short", "--pcm"]) == 0
    with open(tmp_path / "labels.csv", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    data, rate = sf.read(str(tmp_path / row["file"]), dtype="int16")
    assert rate == 8_000 and sf.info(str(tmp_path / row["file"])).subtype == "PCM_16"
    assert np.array_equal(data, make_clip_from_corpus_seed(4, "machine_short", 0).samples)


def make_clip_from_corpus_seed(seed, category, index):
    from ari_amd.synth.corpus import clip_seed

    return SCENES[category](clip_seed(seed, category, index))


# ---------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_same_clip_other_seed_other_clip():
    a, b, c = make_clip("machine_personal", 11), make_clip("machine_personal", 11), make_clip("machine_personal", 12)
    assert np.array_equal(a.samples, b.samples) and a.row("x") == b.row("x")
    assert not np.array_equal(a.samples[: len(c.samples)], c.samples[: len(a.samples)])


def test_voice_is_deterministic():
    v = Voice.random(np.random.default_rng(5))
    y1 = speak("Hello, who's calling?", v, np.random.default_rng(9))
    y2 = speak("Hello, who's calling?", v, np.random.default_rng(9))
    assert np.array_equal(y1, y2)


# ---------------------------------------------------------------------------------------------
# Labels agree with the audio


def test_labels_are_coherent(clips):
    for (cat, _), clip in clips.items():
        truth, enable, dme = EXPECTED[cat]
        assert (clip.category, clip.truth, clip.expected_enable) == (cat, truth, enable)
        assert clip.expected_dme in dme
        assert clip.samples.dtype == np.int16
        dur = clip.duration_ms
        row = clip.row("f.wav")
        assert list(row) == list(LABEL_COLUMNS)
        if cat == "silence":
            assert clip.speech_onset_ms is None and clip.first_utterance_end_ms is None and clip.beep_start_ms is None
            assert clip.snr_db is None and clip.voice == ""
            continue
        assert 0 < clip.speech_onset_ms < clip.first_utterance_end_ms <= dur
        assert 5.0 <= clip.snr_db <= 40.0
        if truth == "machine":
            assert clip.first_utterance_end_ms <= clip.greeting_end_ms
        if clip.beep_start_ms is not None:
            assert clip.greeting_end_ms < clip.beep_start_ms < clip.beep_end_ms < dur
            assert 120 <= clip.beep_end_ms - clip.beep_start_ms <= 1_600
            assert 400 <= clip.beep_hz <= 2_000
        else:
            assert clip.expected_dme != "machine_end_beep"
        if truth in ("human", "machine"):
            assert clip.voice.startswith("synth:")


def test_category_timing(clips):
    for (cat, _), c in clips.items():
        if cat == "human_residential":
            assert c.duration_ms >= 6_000 and 200 <= c.speech_onset_ms <= 1_600
            assert 200 <= c.first_utterance_end_ms - c.speech_onset_ms <= 2_500
        elif cat == "human_business":
            assert 2_300 <= c.first_utterance_end_ms - c.speech_onset_ms <= 4_400
        elif cat == "machine_personal":
            assert 150 <= c.beep_start_ms - c.greeting_end_ms <= 1_600
        elif cat == "machine_carrier":
            assert 7_000 <= c.greeting_end_ms - c.speech_onset_ms <= 14_000
        elif cat == "machine_no_beep":
            assert c.beep_start_ms is None and c.duration_ms - c.greeting_end_ms >= 4_900
        elif cat == "machine_multi_gap":
            assert c.first_utterance_end_ms < c.greeting_end_ms
        elif cat == "silence":
            assert 4_000 <= c.duration_ms <= 35_000


def test_beep_window_is_dominated_by_the_labelled_frequency(clips):
    for (cat, _), clip in clips.items():
        if clip.beep_start_ms is None:
            continue
        x = _window(clip.samples, clip.beep_start_ms, clip.beep_end_ms)
        f, p = _spectrum(x)
        near = _band_power(f, p, clip.beep_hz - 60, clip.beep_hz + 60)
        # two-tone and dual beeps share the window with their other tone
        freqs = [clip.beep_hz]
        if "beep_freqs" in clip.notes:
            freqs = [float(v) for v in clip.notes.rsplit("beep_freqs ", 1)[1].split("/")]
        tonal = sum(_band_power(f, p, h - 60, h + 60) for h in freqs + [2 * clip.beep_hz])
        total = _band_power(f, p, 250, 3_600)
        assert tonal / total > 0.55 if clip.snr_db > 12 else tonal / total > 0.3, (cat, clip.notes)
        assert near / total > 0.2, (cat, clip.notes)


@pytest.mark.parametrize("kind", BEEP_KINDS)
def test_beep_kinds_clean(kind):
    rng = np.random.default_rng(7)
    b = make_beep(rng, kind=kind, hz=900.0, dur_s=0.6, level_dbfs=-12)
    assert b.kind == kind and b.hz == 900.0
    rms_db = 20 * np.log10(np.sqrt(np.mean(b.samples[np.abs(b.samples) > 0] ** 2)))
    assert abs(rms_db + 12) < 0.5
    f, p = _spectrum(b.samples)
    assert abs(f[np.argmax(p)] - 900) < 40 or kind == "two-tone" and len(b.freqs) == 2


def test_speech_stands_above_the_noise_by_the_snr():
    for seed, noise in ((1, "white"), (2, "pink"), (3, "brown")):
        clip = make_clip("human_business", seed, noise=noise, snr_db=20.0, hot=False, clip_pct=0.0,
                         dropouts=False, second_hello=False)
        x = clip.samples.astype(np.float64) / 32768
        speech = bandpass(_window(clip.samples, clip.speech_onset_ms, clip.first_utterance_end_ms))
        noise_only = bandpass(_window(clip.samples, clip.first_utterance_end_ms + 500, clip.duration_ms - 100))
        noise_p = np.mean(noise_only**2)
        # active speech level (frames within 40 dB of the loudest), noise power removed
        lvl = active_level(speech)
        snr = 10 * np.log10(max(lvl**2 - noise_p, 1e-20) / noise_p)
        assert abs(snr - 20.0) < 3.0, (noise, snr)
        assert len(x) == len(clip.samples)


def test_noise_before_speech_is_quiet_relative_to_speech(clips):
    for (cat, _), c in clips.items():
        if c.truth not in ("human", "machine") or c.speech_onset_ms < 250 or cat == "ringback_then_human":
            continue
        pre = _window(c.samples, 0, c.speech_onset_ms - 100)
        sp = _window(c.samples, c.speech_onset_ms, c.first_utterance_end_ms)
        gap = 10 * np.log10((np.mean(sp**2) + 1e-12) / (np.mean(pre**2) + 1e-12))
        assert gap > c.snr_db - 10, (cat, gap, c.snr_db)


def test_fax_answer_tone_peaks_at_2100(clips):
    for s in (1, 2):
        c = clips[("fax", s)]
        x = _window(c.samples, c.speech_onset_ms + 100, c.first_utterance_end_ms - 100)
        f, p = _spectrum(x)
        assert abs(f[np.argmax(p)] - 2_100) < 20
        # then V.21 flags: 1650/1850 Hz
        y = _window(c.samples, c.first_utterance_end_ms + 150, c.first_utterance_end_ms + 800)
        f, p = _spectrum(y)
        assert _band_power(f, p, 1_600, 1_900) / _band_power(f, p, 250, 3_600) > 0.5


@pytest.mark.parametrize("variant", ["ANS", "ANS/", "ANSam", "ANSam/"])
def test_fax_variants(variant):
    x, v, hz = fax_answer_tone(np.random.default_rng(1), variant, 2_100.0, 3.0)
    assert v == variant and len(x) == 24_000
    f, p = _spectrum(x)
    assert abs(f[np.argmax(p)] - 2_100) < 5
    env = np.abs(x[400:-400])
    if variant.startswith("ANSam"):  # 15 Hz AM at 20%: envelope swings
        assert env.reshape(-1, 40).max(axis=1).std() > 0.05


def test_silence_clips():
    dead = make_clip("silence", 1, digital=True, duration_s=5)
    assert not dead.samples.any() and dead.notes == "dead air (digital silence)"
    quiet = make_clip("silence", 1, digital=False, noise="pink", noise_dbfs=-60, duration_s=6, dropouts=False)
    lvl = 20 * np.log10(np.sqrt(np.mean((quiet.samples / 32768) ** 2)))
    assert -64 < lvl < -56 and quiet.speech_onset_ms is None
    assert quiet.row("x")["snr_db"] == ""


def test_sit_and_ringback_extras(clips):
    c = clips[("sit", 1)]
    sit_part = next(p for p in c.parts if p.kind == "sit")
    assert (c.speech_onset_ms, c.first_utterance_end_ms) == (sit_part.start_ms, sit_part.end_ms)
    x = _window(c.samples, sit_part.start_ms, sit_part.end_ms)
    f, p = _spectrum(x)
    sit_power = sum(_band_power(f, p, lo, hi) for lo, hi in ((880, 1_000), (1_340, 1_460), (1_750, 1_800)))
    assert sit_power / _band_power(f, p, 250, 3_600) > 0.4
    r = clips[("ringback_then_human", 1)]
    rings = [p for p in r.parts if p.kind == "ringback"]
    assert rings and r.speech_onset_ms > rings[-1].end_ms - 4_000
    x = _window(r.samples, rings[0].start_ms + 100, rings[0].start_ms + 1_500)
    f, p = _spectrum(x)
    assert _band_power(f, p, 420, 500) / _band_power(f, p, 250, 3_600) > 0.5


# ---------------------------------------------------------------------------------------------
# The voice looks like speech


def _speech_checks(y: np.ndarray) -> dict[str, float]:
    x = y.astype(np.float64)
    # syllabic modulation: the 10 ms energy envelope's spectrum peaks at 2-8 Hz
    n = len(x) // 80
    env = np.sqrt(np.mean(x[: n * 80].reshape(n, 80) ** 2, axis=1))
    e = env - env.mean()
    spec = np.abs(np.fft.rfft(e * np.hanning(len(e)), 2_048)) ** 2
    fr = np.fft.rfftfreq(2_048, 0.01)
    band = (fr >= 0.5) & (fr <= 20)
    mod_2_8 = spec[(fr >= 2) & (fr <= 8)].sum() / spec[band].sum()
    # energy mostly in the phone band
    f, p = _spectrum(x)
    in_band = _band_power(f, p, 100, 3_400) / p.sum()
    # no pure steady peak: frames (20 ms) where one peak holds 90% of the band power, stable
    frames = x[: len(x) // 160 * 160].reshape(-1, 160).astype(np.float32)
    feats = analyze(frames)
    loud = feats.energy_db > feats.energy_db.max() - 30
    run = best = 0
    for i in range(len(feats)):
        pure = loud[i] and feats.peak_frac[i] > 0.9
        steady = i > 0 and abs(feats.peak_hz[i] - feats.peak_hz[i - 1]) < 12
        run = run + 1 if (pure and steady and run) else (1 if pure else 0)
        best = max(best, run)
    # pitch: autocorrelation on loud 40 ms frames
    f0 = []
    for k in range(0, len(x) - 320, 160):
        fr_ = x[k : k + 320]
        if 10 * np.log10(np.mean(fr_**2) + 1e-12) < 20 * np.log10(env.max() + 1e-12) - 15:
            continue
        fr_ = fr_ - fr_.mean()
        ac = np.correlate(fr_, fr_, "full")[319:]
        lag = 20 + int(np.argmax(ac[20:100]))
        if ac[lag] > 0.5 * ac[0]:
            f0.append(SR / lag)
    return {"mod_2_8": mod_2_8, "in_band": in_band, "pure_ms": best * 20, "f0_spread_st": float(
        12 * np.log2(np.percentile(f0, 90) / np.percentile(f0, 10))) if len(f0) > 10 else 0.0}


def test_synthetic_speech_looks_like_speech():
    rng = np.random.default_rng(21)
    for text in ("Hi, you've reached Sam. I can't take your call right now, leave a message.",
                 "Thanks for calling Blue River Dental, this is Jenny, how can I help you?"):
        for sex in ("m", "f"):
            v = Voice.random(rng, sex=sex)
            assert 90 <= v.f0 <= 260
            y = speak(text, v, rng)
            m = _speech_checks(y)
            assert m["mod_2_8"] > 0.4, m
            assert m["in_band"] > 0.9, m
            assert m["pure_ms"] <= 60, m
            assert m["f0_spread_st"] > 2.0, m  # intonation, not a monotone
            # syllable rate: 4-6.5 per second of speaking
            dur = len(y) / SR
            assert 2.0 < dur < 5.5


def test_babble_and_noise_kinds():
    rng = np.random.default_rng(3)
    for kind in NOISE_KINDS:
        x = make_noise(kind, 8_000 * 3, rng)
        lvl = np.sqrt(np.mean(bandpass(x) ** 2))
        assert abs(20 * np.log10(lvl)) < 0.5, kind
    with pytest.raises(ValueError):
        make_noise("jackhammer", 100, rng)


def test_line_dropouts_and_ulaw():
    rng = np.random.default_rng(4)
    speech = speak("Hello?", Voice.random(rng), rng).astype(np.float64)
    n = len(speech) + 8_000
    cfg = LineConfig(noise="white", snr_db=30, level_dbfs=-20, dropouts=[(100, 40)])
    res = transmit(n, np.pad(speech, (0, 8_000)), None, cfg, rng)
    assert res.samples.dtype == np.int16 and len(res.samples) == n
    assert not res.samples[800:800 + 320].any() and res.samples[800 + 320 : 800 + 400].any()
    assert abs(res.speech_level_dbfs - -20) < 1.5


def test_overrides_are_checked():
    with pytest.raises(TypeError):
        make_clip("fax", 1, colour="blue")
    with pytest.raises(ValueError):
        make_clip("no_such_category", 1)
    c = make_clip("machine_personal", 2, beep_kind="pure", beep_hz=1_000.0, beep_level_dbfs=-10, noise="white",
                  snr_db=30.0, hot=False, clip_pct=0.0)
    assert c.beep_hz == 1_000 and "noise white" in c.notes and "beep pure 1000 Hz" in c.notes

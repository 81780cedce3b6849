"""The families of issue 12: every family makes valid, labelled, deterministic clips, and each
does to the audio what its label says (clipping, level, loss, codec, beep gap and level).
No TTS engine is needed: families that need one are checked for skipping cleanly."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from ari_amd.synth import engines
from ari_amd.synth.__main__ import main as synth_main
from ari_amd.synth.families import (
    FAMILIES,
    FAMILY_COLUMNS,
    REPORT_FAMILIES,
    TUNE_FAMILIES,
    Family,
    as_written,
    select,
)
from ari_amd.synth.line import LineConfig, active_level, db, g711_round_trip, transmit
from ari_amd.synth.scenes import LABEL_COLUMNS, SCENES
from ari_amd.synth.trunk import FRAME, gsm_like, packet_loss

SR = 8_000
TRUTHS = {"human", "machine", "fax", "nobody", "sit"}
ENABLE = {"human", "machine_start", "fax", "unknown"}
DME = {"human", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax", "unknown"}
NUMPY_FAMILIES = [n for n, f in FAMILIES.items() if f.engine is None]


def _num(notes: str, pattern: str) -> float:
    m = re.search(pattern, notes)
    assert m, f"{pattern!r} not in {notes!r}"
    return float(m.group(1))


def test_split_is_disjoint_and_covers_every_family() -> None:
    assert not set(TUNE_FAMILIES) & set(REPORT_FAMILIES)
    assert set(TUNE_FAMILIES) | set(REPORT_FAMILIES) == set(FAMILIES)
    assert 10 <= len(FAMILIES) <= 20
    assert [f.name for f in select("all")] == list(TUNE_FAMILIES + REPORT_FAMILIES)
    with pytest.raises(ValueError):
        select(names=["no_such_family"])


def test_every_family_names_scenes_that_exist() -> None:
    for fam in FAMILIES.values():
        assert fam.description and fam.categories
        for recipe in fam.categories.values():
            assert recipe.scene in SCENES


@pytest.mark.parametrize("name", NUMPY_FAMILIES)
def test_family_makes_valid_labelled_clips_deterministically(name: str) -> None:
    fam = FAMILIES[name]
    for category in fam.categories:
        clip = fam.make(category, 0, seed=3)
        assert clip.samples.dtype == np.int16 and 3 * SR < len(clip.samples) < 40 * SR
        assert np.any(clip.samples) or category == "silence"  # dead air may be digital zero
        row = {**clip.row("x.wav"), "family": name}
        assert tuple(row) == FAMILY_COLUMNS[: len(LABEL_COLUMNS)] + ("family",)
        assert row["category"] == category
        assert row["truth"] in TRUTHS and row["expected_enable"] in ENABLE and row["expected_dme"] in DME
        if row["beep_start_ms"]:
            assert int(row["greeting_end_ms"]) < int(row["beep_start_ms"]) <= int(row["beep_end_ms"]) < clip.duration_ms
        if row["truth"] == "human":
            assert int(row["speech_onset_ms"]) < int(row["first_utterance_end_ms"])
    # the same (seed, family, category, index) gives the same clip; another index another one
    first = next(iter(fam.categories))
    clip, again, other = (fam.make(first, i, seed=3) for i in (0, 0, 1))
    assert np.array_equal(clip.samples, again.samples) and clip.notes == again.notes
    assert not np.array_equal(other.samples, clip.samples)


def _speech_span(clip) -> np.ndarray:  # type: ignore[no-untyped-def]
    on = np.zeros(len(clip.samples), dtype=bool)
    for p in clip.parts:
        if p.kind == "speech":
            on[p.start_ms * 8 : p.end_ms * 8] = True
    return on


def test_hot_clipped_family_clips_two_to_three_percent_of_the_speech() -> None:
    fam = FAMILIES["hot_clipped"]
    for category in ("human_residential", "machine_personal"):
        clip = fam.make(category, 0, seed=1)
        x = np.abs(clip.samples.astype(np.int32))
        at_top = x >= x.max() - 1  # full scale, as the last G.711 leg codes it
        share = 100 * at_top[_speech_span(clip)].mean()
        assert 1.0 <= share <= 4.0, share
        assert 1.0 <= _num(clip.notes, r"clipped ([\d.]+)%") <= 4.0


def test_quiet_family_speech_is_near_minus_35_dbfs() -> None:
    clip = FAMILIES["quiet_line"].make("human_business", 0, seed=2)
    x = clip.samples.astype(np.float64) / 32768
    level = db(active_level(x[_speech_span(clip)], 20.0))
    assert -39 < level < -31, level
    assert -37 < _num(clip.notes, r"level (-[\d.]+) dBFS") < -33


def test_loss_drops_the_stated_share_of_frames() -> None:
    rng = np.random.default_rng(5)
    x = (np.sin(np.arange(10 * SR) * 0.3) * 8000).astype(np.int16)
    for pct in (1.0, 3.0, 5.0):
        loss = packet_loss(x, rng, pct, conceal=False)
        frames = loss.samples[: len(x) // FRAME * FRAME].reshape(-1, FRAME)
        silent = np.nonzero(~frames.any(axis=1))[0]
        assert list(silent) == loss.lost_frames
        assert abs(loss.pct - pct) < 0.3
    concealed = packet_loss(x, np.random.default_rng(5), 3.0, conceal=True)
    first = concealed.lost_frames[0]
    assert concealed.samples[first * FRAME : (first + 1) * FRAME].any()  # repeated, not silence


def test_loss_family_label_matches_the_audio() -> None:
    clip = FAMILIES["loss_zeros"].make("human_business", 0, seed=4)
    pct = _num(clip.notes, r"packet loss ([\d.]+)% of 20 ms frames")
    assert 1.0 <= pct <= 5.0 or pct == pytest.approx(1.0, abs=0.5)
    frames = clip.samples[: len(clip.samples) // FRAME * FRAME].reshape(-1, FRAME)
    assert 100 * np.mean(~frames.any(axis=1)) >= pct - 0.01  # digital zero frames: at least the lost ones


def test_alaw_differs_from_mulaw() -> None:
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0, 3000, SR), -32768, 32767).astype(np.int16)
    a, u = g711_round_trip(x, "alaw"), g711_round_trip(x, "ulaw")
    assert not np.array_equal(a, u)
    assert np.array_equal(g711_round_trip(a, "alaw"), a)  # A-law levels are fixed points
    assert np.max(np.abs(a.astype(int) - x)) < 1100 and np.max(np.abs(u.astype(int) - x)) < 1100
    clip = FAMILIES["alaw"].make("machine_personal", 0, seed=1)
    assert "codec alaw" in clip.notes and FAMILIES["alaw"].subtype == "ALAW"
    # the family's WAV is a second (tandem) A-law coding after the line's level change
    written = as_written(clip.samples, "ALAW")
    assert np.array_equal(as_written(written, "ALAW"), written)
    assert not np.array_equal(as_written(clip.samples, "ULAW"), written)


def test_beep_gap_and_level_are_as_labelled() -> None:
    fam = FAMILIES["beep_hard"]
    for i in range(2):
        late = fam.make("machine_beep_late", i, seed=6)
        gap = late.beep_start_ms - late.greeting_end_ms  # type: ignore[operator]
        assert 1_900 <= gap <= 8_200, gap
        quiet = fam.make("machine_beep_quiet", i, seed=6)
        under = _num(quiet.notes, r"beep (-?\d+) dB under the speech")
        assert 19 <= under <= 31
        x = quiet.samples.astype(np.float64) / 32768
        beep = x[quiet.beep_start_ms * 8 : quiet.beep_end_ms * 8]  # type: ignore[operator]
        speech = x[_speech_span(quiet)]
        assert 15 < db(active_level(speech, 20.0)) - db(float(np.sqrt(np.mean(beep**2)))) < 35


def test_new_noise_kinds_and_absolute_noise_level() -> None:
    rng = np.random.default_rng(1)
    for kind in ("babble6", "crackle", "street_swell", "room_music"):
        cfg = LineConfig(noise=kind, level_dbfs=-40.0, snr_db=0.0)
        res = transmit(4 * SR, None, None, cfg, rng)
        assert -46 < db(float(np.sqrt(np.mean((res.samples / 32768.0) ** 2)))) < -34, kind
    clip = FAMILIES["field_babble"].make("human_residential", 0, seed=1)
    assert "noise babble6 at -1" in clip.notes  # -18 dBFS, give or take the line's gain


def test_gsm_like_keeps_level_and_changes_the_waveform() -> None:
    t = np.arange(2 * SR) / SR
    x = (np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 3 * t) * 10_000).astype(np.int16)
    y = gsm_like(x)
    assert len(y) == len(x) and not np.array_equal(x, y)
    assert abs(db(np.std(y.astype(float))) - db(np.std(x.astype(float)))) < 3


def test_engine_families_skip_with_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines.shutil, "which", lambda name: None)  # nothing installed
    monkeypatch.setenv("ARI_AMD_PROMPTS", "/nonexistent")
    monkeypatch.setenv("ARI_AMD_LAB_ROOT", "/nonexistent")
    for fam in FAMILIES.values():
        why = fam.unavailable()
        if fam.engine is None:
            assert why is None
        else:
            assert why and "install the Debian packages" in why, fam.name
    assert "asterisk-core-sounds-en-wav" in (FAMILIES["asterisk_pitched"].unavailable() or "")
    assert "festival" in (FAMILIES["tts_festival"].unavailable() or "")


def test_cli_writes_each_family_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(engines.shutil, "which", lambda name: None)
    assert synth_main(["families", str(tmp_path), "--families", "field_people,tts_flite", "--per-category", "1",
                       "--seed", "2"]) == 0
    assert "tts_flite skipped" in capsys.readouterr().err
    folder = tmp_path / "field_people"
    with open(folder / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == FAMILY_COLUMNS
    assert sorted(r["category"] for r in rows) == sorted(FAMILIES["field_people"].categories)
    assert all(r["family"] == "field_people" and (folder / r["file"]).is_file() for r in rows)
    assert not (tmp_path / "tts_flite").exists()
    first = (folder / rows[0]["file"]).read_bytes()
    synth_main(["families", str(tmp_path / "again"), "--families", "field_people", "--per-category", "1", "--seed", "2"])
    assert (tmp_path / "again" / "field_people" / rows[0]["file"]).read_bytes() == first


def test_family_overrides_are_drawn_per_clip() -> None:
    fam: Family = FAMILIES["tempo"]
    notes = {fam.make("human_business", i, seed=0).notes.split(";")[0] for i in range(3)}
    assert len(notes) > 1 and all(n.startswith("tempo x") for n in notes)


@pytest.mark.skipif(engines.shutil.which("sox") is None, reason="sox re-pitches the prompts")
def test_prompt_family_reads_a_prompts_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ari_amd.synth import Voice, speak
    from ari_amd.synth.corpus import write_wav
    from ari_amd.synth.families import _PROMPT_TEXT

    # stand-ins for Asterisk's recordings: the numpy voice saying each prompt's name
    names = {tok for d in _PROMPT_TEXT.values() for t in d["text"] for tok in t.replace(",", " ").split()}
    names = {n for n in names if not n.startswith("{")} | {f"digits/{d}" for d in range(10)}
    (tmp_path / "digits").mkdir()
    rng = np.random.default_rng(0)
    voice = Voice.random(rng)
    for n in names:
        y = speak(n.split("/")[-1].replace("-", " "), voice, rng)
        write_wav(tmp_path / f"{n}.wav", np.round(y * 32767).astype(np.int16), "PCM_16")
    monkeypatch.setenv("ARI_AMD_PROMPTS", str(tmp_path))
    fam = FAMILIES["asterisk_pitched"]
    assert fam.unavailable() is None
    for category in ("human_residential", "machine_carrier"):
        clip = fam.make(category, 0, seed=1)
        assert clip.voice.startswith("allison(pitch ") and "cents)" in clip.voice
        assert clip.speech_onset_ms is not None and np.any(clip.samples)

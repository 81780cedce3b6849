"""`ari-amd classify / eval / explain` as a user runs them: a real process, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ari_amd.synth import write_corpus
from tests.sounds import line, silence, tone


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ari_amd.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("wavs")
    files = {
        "fax": line(silence(600), tone(2100, 3000), silence(500)),
        "dead": line(silence(7000)),
    }
    out = {}
    for name, samples in files.items():
        out[name] = d / f"{name}.wav"
        sf.write(out[name], samples, 8000, subtype="PCM_16")
    # 44.1 kHz stereo: resampled and mixed down on reading
    stereo = np.repeat(tone(2100, 3000)[:, None], 2, axis=1)
    t44 = np.interp(np.arange(int(len(stereo) * 44100 / 8000)) * 8000 / 44100, np.arange(len(stereo)), stereo[:, 0])
    out["fax44"] = d / "fax44.wav"
    sf.write(out["fax44"], np.stack([t44, t44], axis=1), 44100)
    out["bad"] = d / "not-audio.wav"
    out["bad"].write_text("this is not a wav file")
    return out


def test_classify_prints_one_line_per_file(wavs: dict[str, Path]) -> None:
    r = run("classify", str(wavs["fax"]), str(wavs["dead"]))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].split("\t")[1] == "fax"
    assert lines[1].split("\t")[1:3] == ["unknown", "5000ms"]


def test_classify_json_has_the_fields(wavs: dict[str, Path]) -> None:
    r = run("classify", "--json", "--mode", "DetectMessageEnd", str(wavs["fax44"]))
    record = json.loads(r.stdout)
    assert {"file", "answered_by", "duration_ms", "cause"} <= record.keys()
    assert record["answered_by"] == "fax"


def test_an_unreadable_file_is_reported_and_the_rest_still_done(wavs: dict[str, Path]) -> None:
    r = run("classify", str(wavs["bad"]), str(wavs["fax"]), "/no/such/file.wav")
    assert r.returncode == 1
    assert "not-audio.wav" in r.stderr and "/no/such/file.wav" in r.stderr
    assert r.stdout.strip().split("\t")[1] == "fax"


def test_a_bad_parameter_names_itself(wavs: dict[str, Path]) -> None:
    r = run("classify", "--speech-threshold", "9000", str(wavs["fax"]))
    assert r.returncode == 2
    assert "MachineDetectionSpeechThreshold must be 1000-6000 ms" in r.stderr
    r = run("classify", "--timeout", "2", str(wavs["fax"]))
    assert "MachineDetectionTimeout must be 3-59 s" in r.stderr


def test_eval_scores_a_labelled_folder(tmp_path: Path) -> None:
    write_corpus(tmp_path, per_category=1, seed=3, categories=["fax", "silence", "machine_carrier"])
    r = run("eval", "--json", str(tmp_path))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["clips"] == 3
    assert s["by_category"]["fax"]["correct"] == 1
    assert s["confusion"]["nobody"] == {"unknown": 1}
    text = run("eval", "--mode", "DetectMessageEnd", str(tmp_path)).stdout
    assert "false-machine" in text and "machine_end_beep by category" in text


def test_eval_without_labels_says_so(tmp_path: Path) -> None:
    r = run("eval", str(tmp_path))
    assert r.returncode == 2
    assert "labels.csv" in r.stderr


def test_explain_draws_a_png(wavs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "t.png"
    r = run("explain", str(wavs["fax"]), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000


def test_tune_ranks_settings_and_suggests_one(tmp_path: Path) -> None:
    write_corpus(tmp_path, per_category=1, seed=4, categories=["human_residential", "machine_carrier"])
    r = run("tune", "--false-machine-cost", "5", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "suggested: MachineDetectionSpeechThreshold=" in r.stdout
    costs = [float(line.split()[3]) for line in r.stdout.splitlines()[1:9] if line.strip() and line.split()[0].isdigit()]
    assert costs == sorted(costs)
    assert run("tune", "--false-human-cost", "0", str(tmp_path)).returncode == 2

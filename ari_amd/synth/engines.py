"""Voices from outside this package: Debian's text-to-speech engines and Asterisk's recorded
English prompts. Each is optional: ``available()`` says whether it can speak here and, when
not, ``missing()`` names the Debian package that would make it.

| engine | Debian packages | voices |
| --- | --- | --- |
| espeak-ng | espeak-ng | every English voice (``espeak-ng --voices=en``) x every variant (+f3, +klatt...) |
| mbrola | mbrola, mbrola-us1, mbrola-us2, mbrola-us3, mbrola-en1 (contrib/non-free) | via espeak-ng (mb-us1...) |
| flite | flite | ``flite -lv`` (kal, kal16, awb, rms, slt) |
| festival | festival, festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts... | /usr/share/festival/voices/*/* |
| asterisk prompts | asterisk-core-sounds-en-wav (Allison Smith) | re-pitched with sox |

All audio comes back as float64 at 8 kHz (full scale 1.0), converted, re-pitched and
time-stretched with sox (package ``sox``), which every engine here needs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

SR = 8_000
SOX = "sox"  # always with -R: no dither, so a family is the same bytes from the same seed
LAB_ROOT_DEFAULT = "/var/lib/ari-amd/lab-root"  # scripts/lab's default; ARI_AMD_LAB_ROOT overrides
PROMPTS_SUBDIR = "usr/share/asterisk/sounds/en_US_f_Allison"
MBROLA_VOICES = ("us1", "us2", "us3", "en1")
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")
_RAW = ["-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r", str(SR)]


class EngineError(RuntimeError):
    """An engine that was thought available failed on a text."""


def _run(cmd: list[str], data: bytes | None = None, timeout: float = 60) -> bytes:
    try:
        p = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EngineError(f"{cmd[0]}: {exc}") from exc
    if p.returncode != 0:
        raise EngineError(f"{' '.join(cmd[:3])}...: exit {p.returncode}: {p.stderr.decode(errors='replace')[:200]}")
    return p.stdout


def sox_to_8k(path_or_bytes: str | bytes, effects: Sequence[str] = ()) -> np.ndarray:
    """A WAV file (path) or WAV bytes -> float64 mono at 8 kHz, through sox ``effects``."""
    src = ["-"] if isinstance(path_or_bytes, bytes) else [str(path_or_bytes)]
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else None
    out = _run([SOX, "-R", "-V1", *src, *_RAW, "-", *effects], data)
    return np.frombuffer(out, dtype=np.int16).astype(np.float64) / 32768


def stretch(x: np.ndarray, tempo: float) -> np.ndarray:
    """Time-stretch (pitch kept) with sox's WSOLA ``tempo``: > 1 is faster."""
    if abs(tempo - 1.0) < 0.005 or len(x) == 0:
        return x
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16).tobytes()
    out = _run([SOX, "-R", "-V1", *_RAW, "-", *_RAW, "-", "tempo", "-s", f"{tempo:.4f}"], pcm)
    return np.frombuffer(out, dtype=np.int16).astype(np.float64) / 32768


def _normalise(x: np.ndarray) -> np.ndarray:
    # the scenes set levels themselves; peak 0.5 like voice.speak so nothing clips on the way
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    pad = np.zeros(int(0.05 * SR))
    return np.concatenate([pad, x * (0.5 / peak if peak > 0 else 1.0), pad])


@dataclass(frozen=True)
class ExternalVoice:
    """A speaker outside the numpy voice: ``say(text, rng)`` -> float64 at 8 kHz."""

    name: str  # labels.csv's voice column: engine:voice, or allison(pitch +N cents)
    engine: str
    voice: str
    pitch_cents: int = 0
    options: tuple[str, ...] = field(default=())

    def say(self, text: str, rng: np.random.Generator) -> np.ndarray:
        effects = ["pitch", str(self.pitch_cents)] if self.pitch_cents else []
        if self.engine == "prompts":
            return _normalise(_prompts(self.voice, text, effects))
        with tempfile.TemporaryDirectory(prefix="ari-amd-tts-") as tmp:
            wav = Path(tmp) / "out.wav"
            if self.engine in ("espeak-ng", "mbrola"):
                _run(["espeak-ng", "-v", self.voice, *self.options, "-w", str(wav), text])
            elif self.engine == "flite":
                _run(["flite", "-voice", self.voice, *self.options, "-t", text, "-o", str(wav)])
            elif self.engine == "festival":
                _run(["text2wave", "-eval", f"(voice_{self.voice})", "-o", str(wav)], text.encode())
            else:
                raise EngineError(f"unknown engine {self.engine}")
            x = sox_to_8k(str(wav), effects)
        act = np.nonzero(np.abs(x) > 1e-4)[0]
        return _normalise(x[act[0] : act[-1] + 1] if len(act) else x)


# ---------------------------------------------------------------------------------------------
# What is installed


@cache
def _espeak_list(kind: str) -> tuple[tuple[str, str], ...]:
    """(language, file) rows of ``espeak-ng --voices=KIND``."""
    if shutil.which("espeak-ng") is None:
        return ()
    try:
        out = _run(["espeak-ng", f"--voices={kind}"], timeout=20).decode()
    except EngineError:
        return ()
    rows = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            rows.append((cols[1], cols[4]))
    return tuple(rows)


def espeak_voices() -> list[str]:
    """espeak-ng's own English voices (not the MBROLA ones), by language code."""
    return sorted({lang for lang, f in _espeak_list("en") if not f.startswith("mb/") and lang.startswith("en")})


def espeak_variants() -> list[str]:
    return sorted({f.split("/", 1)[1] for _, f in _espeak_list("variant") if f.startswith("!v/")})


def mbrola_voices() -> list[str]:
    """MBROLA English voices espeak-ng can drive here (the binary and the voice data)."""
    if shutil.which("mbrola") is None or shutil.which("espeak-ng") is None:
        return []
    dirs = ("/usr/share/mbrola", "/usr/share/mbrola/voices")
    return [f"mb-{v}" for v in MBROLA_VOICES if any(Path(d, v, v).is_file() for d in dirs)]


@cache
def flite_voices() -> tuple[str, ...]:
    if shutil.which("flite") is None:
        return ()
    try:
        out = _run(["flite", "-lv"], timeout=20).decode()
    except EngineError:
        return ()
    names = out.split(":", 1)[-1].split()
    return tuple(v for v in names if v != "awb_time")  # awb_time only says the time


def festival_voices() -> list[str]:
    if shutil.which("text2wave") is None or not FESTIVAL_VOICE_DIR.is_dir():
        return []
    # English only: festival files voices by language (english/, us/); Italian, Czech... stay out
    return sorted(p.name for lang in FESTIVAL_VOICE_DIR.iterdir() if lang.name in ("english", "us")
                  for p in lang.iterdir() if p.is_dir())


def prompts_dir() -> Path | None:
    """Asterisk's English prompts (Allison): $ARI_AMD_PROMPTS, else the lab root's copy."""
    env = os.environ.get("ARI_AMD_PROMPTS")
    candidates = [Path(env)] if env else []
    candidates.append(Path(os.environ.get("ARI_AMD_LAB_ROOT", LAB_ROOT_DEFAULT)) / PROMPTS_SUBDIR)
    candidates.append(Path("/") / PROMPTS_SUBDIR)
    for c in candidates:
        if (c / "hello.wav").is_file() and (c / "digits" / "1.wav").is_file():
            return c
    return None


def _prompts(folder: str, script: str, effects: Sequence[str]) -> np.ndarray:
    """A prompt script: file names (``vm-theperson``), single digits (read from digits/), and
    commas for a short pause, played back to back as Asterisk would."""
    parts = []
    for tok in script.replace(",", " , ").split():
        if tok == ",":
            parts.append(np.zeros(int(0.25 * SR)))
            continue
        # a script may also be plain words that are prompts' names ("Hello?" -> hello)
        tok = tok if (Path(folder) / f"{tok}.wav").is_file() else re.sub(r"[^\w-]", "", tok).lower()
        name = f"digits/{tok}" if re.fullmatch(r"\d", tok) else tok
        path = Path(folder) / f"{name}.wav"
        if not path.is_file():
            raise EngineError(f"no prompt {path}")
        x = sox_to_8k(str(path))
        act = np.nonzero(np.abs(x) > 3e-4)[0]  # the recordings carry their own edges of room tone
        parts.append(x[act[0] : act[-1] + 1] if len(act) else x)
        parts.append(np.zeros(int(0.06 * SR)))
    x = np.concatenate(parts) if parts else np.zeros(0)
    if effects:
        pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16).tobytes()
        x = np.frombuffer(_run([SOX, "-R", "-V1", *_RAW, "-", *_RAW, "-", *effects], pcm), dtype=np.int16) / 32768
    return np.asarray(x, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Drawing a voice


ENGINE_PACKAGES = {
    "espeak-ng": "espeak-ng sox",
    "mbrola": "mbrola mbrola-us1 mbrola-us2 mbrola-us3 (Debian contrib/non-free) espeak-ng sox",
    "flite": "flite sox",
    "festival": "festival festvox-kallpc16k festvox-kdlpc16k (and other festvox-* voices) sox",
    "prompts": "asterisk-core-sounds-en-wav (or set ARI_AMD_PROMPTS / ARI_AMD_LAB_ROOT) sox",
}


def available(engine: str) -> bool:
    if shutil.which(SOX) is None:
        return False
    voices: dict[str, Callable[[], object]] = {
        "espeak-ng": espeak_voices,
        "mbrola": mbrola_voices,
        "flite": flite_voices,
        "festival": festival_voices,
        "prompts": prompts_dir,
    }
    return bool(voices[engine]())


def missing(engine: str) -> str:
    """Why ``engine`` cannot speak here, naming the Debian packages to install."""
    return f"{engine} not available: install the Debian packages {ENGINE_PACKAGES[engine]}"


def random_voice(engine: str, rng: np.random.Generator) -> ExternalVoice:
    """One voice of ``engine``, drawn with some variety of pitch and rate."""
    if engine == "espeak-ng":
        v = str(rng.choice(espeak_voices()))
        variants = espeak_variants()
        if variants and rng.random() < 0.8:
            v += "+" + str(rng.choice(variants))
        opts: tuple[str, ...] = ("-s", str(int(rng.integers(140, 190))), "-p", str(int(rng.integers(25, 75))))
        return ExternalVoice(f"espeak-ng:{v}", engine, v, 0, opts)
    if engine == "mbrola":
        v = str(rng.choice(mbrola_voices()))
        opts = ("-s", str(int(rng.integers(140, 180))), "-p", str(int(rng.integers(30, 70))))
        return ExternalVoice(f"mbrola:{v}", engine, v, 0, opts)
    if engine == "flite":
        v = str(rng.choice(list(flite_voices())))
        cents = int(rng.integers(-200, 201))
        opts = ("--setf", f"duration_stretch={rng.uniform(0.85, 1.15):.2f}")
        return ExternalVoice(f"flite:{v}" + (f"(pitch {cents:+d} cents)" if cents else ""), engine, v, cents, opts)
    if engine == "festival":
        v = str(rng.choice(festival_voices()))
        cents = int(rng.integers(-200, 201))
        return ExternalVoice(f"festival:{v}" + (f"(pitch {cents:+d} cents)" if cents else ""), engine, v, cents)
    if engine == "prompts":
        folder = prompts_dir()
        if folder is None:
            raise EngineError(missing("prompts"))
        # other pitches than the dev corpus's: 1.5-5 semitones up or down
        cents = int(rng.integers(150, 501)) * int(rng.choice([-1, 1]))
        return ExternalVoice(f"allison(pitch {cents:+d} cents)", engine, str(folder), cents)
    raise ValueError(f"unknown engine {engine!r}")

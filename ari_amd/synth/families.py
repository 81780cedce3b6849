"""Families of call audio the detector was never tuned on (issue 12).

A family is one way calls differ from the dev corpus (a line, a codec, a kind of loss, beeps,
voices, the field's failure cases), applied to the usual call scenes. Each has a name, a
one-line description, the categories it makes (a category may be a scene under another
name, e.g. ``machine_beep_late`` is ``machine_personal`` with a 2-8 s gap), overrides drawn
per clip and an optional post-processing of the finished clip (GSM, packet loss).

The split is the point: tune the detector on ``TUNE_FAMILIES`` only; ``REPORT_FAMILIES`` are
held out, read only to report. A change counts when it holds on every family.

A family that needs something not installed here (a TTS engine, Asterisk's prompts) is
skipped with a message naming the Debian package; nothing fails for want of it.

Each clip is labelled with the dev corpus's labels.csv columns plus ``family``; its content
depends only on (seed, family, category, index).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ari_amd.synth import engines, texts
from ari_amd.synth.corpus import write_wav
from ari_amd.synth.line import g711_round_trip
from ari_amd.synth.scenes import DEV_CATEGORIES, LABEL_COLUMNS, Clip, make_clip
from ari_amd.synth.tones import BEEP_KINDS, EXTRA_BEEP_KINDS
from ari_amd.synth.trunk import band_limit, gsm_round_trip, packet_loss

FAMILY_COLUMNS = LABEL_COLUMNS + ("family",)
Overrides = Callable[[np.random.Generator], dict[str, Any]]
Post = Callable[[Clip, np.random.Generator], Clip]


def _none(rng: np.random.Generator) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Recipe:
    """How one category of a family is made: a scene and its own overrides."""

    scene: str
    overrides: Overrides = _none


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    categories: dict[str, Recipe]
    line: Overrides = _none  # overrides for every clip (drawn before the category's own)
    post: Post | None = None
    engine: str | None = None  # a voice from engines.py that this family needs
    subtype: str = "ULAW"  # the WAV coding its folder is written in (the last leg's G.711 law)

    def unavailable(self) -> str | None:
        """Why this family cannot be made here, or None."""
        if self.engine and not engines.available(self.engine):
            return f"family {self.name} skipped: {engines.missing(self.engine)}"
        return None

    def make(self, category: str, index: int, seed: int = 0) -> Clip:
        """Clip ``index`` of ``category``; depends only on (seed, family, category, index)."""
        recipe = self.categories[category]
        rng = family_rng(seed, self.name, category, index)
        ov = self.line(rng)
        ov.update(recipe.overrides(rng))
        if self.engine and "voice" not in ov:
            ov["voice"] = engines.random_voice(self.engine, rng)
        clip = make_clip(recipe.scene, rng, **ov)
        clip.category = category
        if self.post is not None:
            clip = self.post(clip, rng)
        return clip


def family_rng(seed: int, family: str, category: str, index: int) -> np.random.Generator:
    key = hashlib.sha256(f"{seed}:{family}:{category}:{index}".encode()).digest()[:8]
    return np.random.default_rng(int.from_bytes(key, "little"))


# ---------------------------------------------------------------------------------------------
# Pieces the families share

SPEECH_CATEGORIES = tuple(c for c in DEV_CATEGORIES if c not in ("fax", "silence"))
BEEP_CATEGORIES = ("machine_personal", "machine_carrier", "machine_short", "machine_multi_gap")


def _cats(names: Iterable[str], overrides: Overrides = _none) -> dict[str, Recipe]:
    return {c: Recipe(c, overrides) for c in names}


def _add_note(clip: Clip, note: str) -> Clip:
    clip.notes = f"{clip.notes}; {note}" if clip.notes else note
    return clip


def _beep_under(lo_db: float, hi_db: float, speech: tuple[float, float] = (-24, -16), **more: Any) -> Overrides:
    """Speech at ``speech`` dBFS (by default below the line's peak limit, so it stays where it
    is put) and the beep ``lo_db``-``hi_db`` dB under it."""

    def draw(rng: np.random.Generator) -> dict[str, Any]:
        lvl = float(rng.uniform(*speech))
        return {"level_dbfs": lvl, "beep_level_dbfs": lvl - float(rng.uniform(lo_db, hi_db)), **more}

    return draw


def _noise(kinds: tuple[str, ...], lo: float, hi: float) -> Overrides:
    def draw(rng: np.random.Generator) -> dict[str, Any]:
        return {"noise": str(rng.choice(kinds)), "snr_db": float(np.round(rng.uniform(lo, hi), 1))}

    return draw


def _loss(conceal: bool) -> Post:
    def post(clip: Clip, rng: np.random.Generator) -> Clip:
        loss = packet_loss(clip.samples, rng, float(rng.uniform(1.0, 5.0)), conceal)
        clip.samples = loss.samples
        return _add_note(clip, loss.note())

    return post


def _gsm(clip: Clip, rng: np.random.Generator) -> Clip:
    # a cellular leg in the middle: band-limited, GSM-coded, then G.711 again to reach us
    lo, hi = float(rng.uniform(250, 400)), float(rng.uniform(2_900, 3_400))
    y, how = gsm_round_trip(band_limit(clip.samples, lo, hi))
    clip.samples = g711_round_trip(y, "ulaw")
    return _add_note(clip, f"trunk {how}, band {lo:.0f}-{hi:.0f} Hz, then mu-law")


def _babble_at(dbfs: float) -> Overrides:
    def draw(rng: np.random.Generator) -> dict[str, Any]:
        return {"noise": "babble6", "noise_dbfs": dbfs, "level_dbfs": float(rng.uniform(-18, -10)),
                "hot": False, "clip_pct": 0.0}

    return draw


def _with(base: Overrides, **more: Any) -> Overrides:
    def draw(rng: np.random.Generator) -> dict[str, Any]:
        d = base(rng)
        d.update({k: (v(rng) if callable(v) else v) for k, v in more.items()})
        return d

    return draw


def _uniform(lo: float, hi: float) -> Callable[[np.random.Generator], float]:
    return lambda rng: float(rng.uniform(lo, hi))


# Asterisk's own English prompts as scripts (engines._prompts reads them): what Allison says
_PROMPT_TEXT: dict[str, dict[str, Any]] = {
    "human_residential": {"text": ["hello", "hello , hello"], "second_hello": False},
    "human_slow_start": {"text": ["one-moment-please", "hello , one-moment-please"], "length_s": (1.0, 2.5),
                         "second_hello": False},
    "human_business": {"text": ["transfer", "hello transfer", "pls-hold-while-try"], "second_hello": False},
    "machine_personal": {"text": ["vm-nobodyavail", "vm-theperson {digits} vm-isunavail"]},
    "machine_carrier": {"text": ["vm-theperson {digits} vm-isunavail vm-intro", "vm-nobodyavail vm-intro"]},
    "machine_no_beep": {"text": ["vm-mailboxfull vm-goodbye", "number-not-answering please-try-call-later"],
                        "end": "silence"},
    "attendant_ringback": {"text": ["pls-hold-while-try", "one-moment-please transfer"]},
}


def _prompts(category: str) -> Recipe:
    scene = "human_residential" if category == "human_slow_start" else category
    return Recipe(scene, lambda rng: dict(_PROMPT_TEXT[category]))


# ---------------------------------------------------------------------------------------------
# The families

_ALL_BEEPS = BEEP_KINDS + EXTRA_BEEP_KINDS

FAMILIES: dict[str, Family] = {f.name: f for f in (
    # --- tune ---------------------------------------------------------------------------------
    Family("noise_new", "noise kinds the dev corpus lacks: six-talker babble, crackle, swelling street, room music, "
           "5-25 dB SNR",
           _cats(DEV_CATEGORIES), line=_noise(("babble6", "crackle", "street_swell", "room_music"), 5, 25)),
    Family("hot_clipped", "hot lines: speech driven until 2-3% of its samples sit at full scale "
           "(fax tones at -3 dBFS, clipped)",
           {**_cats(SPEECH_CATEGORIES), **_cats(BEEP_CATEGORIES, _beep_under(0, 12)),  # the line drives the beep too
            "fax": Recipe("fax", lambda rng: {"tone_dbfs": float(rng.uniform(-4, -2)), "hot": True})},
           line=lambda rng: {"full_scale_pct": float(rng.uniform(2.0, 3.0)), "clip_pct": 0.0}),
    Family("alaw", "an A-law trunk instead of mu-law", _cats(DEV_CATEGORIES), line=lambda rng: {"codec": "alaw"},
           subtype="ALAW"),
    Family("loss_zeros", "1-5% of 20 ms packets lost, some in bursts, played as silence (no concealment)",
           _cats(DEV_CATEGORIES), line=lambda rng: {"dropouts": False}, post=_loss(False)),
    Family("beep_shapes", "beeps of every shape (pure, harmonic, two-tone, dual, glide, double, decaying), 0.1-2 s, "
           "0-30 dB under the greeting, 0.2-8 s after it",
           _cats(BEEP_CATEGORIES, _with(_beep_under(0, 30), beep_kind=lambda rng: str(rng.choice(_ALL_BEEPS)),
                                        beep_dur_s=_uniform(0.1, 2.0), gap_s=_uniform(0.2, 8.0)))),
    Family("tts_espeak", "every English espeak-ng voice and variant", _cats(SPEECH_CATEGORIES), engine="espeak-ng"),
    Family("tts_flite", "flite's voices (kal, kal16, awb, rms, slt), re-pitched +-2 semitones",
           _cats(SPEECH_CATEGORIES), engine="flite"),
    Family("field_babble", "field failures: speech in six-talker babble at -18 dBFS, 'One moment, please.' (2 s) "
           "in babble, hold music under babble",
           {"human_residential": Recipe("human_residential", _babble_at(-18.0)),
            "human_one_moment": Recipe("human_residential", _with(_babble_at(-18.0), text="One moment, please.",
                                                                   length_s=(1.8, 2.2), second_hello=False)),
            "human_business": Recipe("human_business", _babble_at(-18.0)),
            "machine_personal": Recipe("machine_personal", _babble_at(-18.0)),
            "machine_carrier": Recipe("machine_carrier", _babble_at(-18.0)),
            "machine_no_beep": Recipe("machine_no_beep", _with(_babble_at(-18.0), end="music"))}),
    Family("field_people", "field failures: first words >= 1 s, 'Hello? ... Hello?' 1.3-2.5 s apart, "
           "long personal hellos (2.5-4 s), an attendant then ringback",
           {"human_slow_start": Recipe("human_residential",
                                       lambda rng: {"text": texts.HELLO_SLOW, "length_s": (1.0, 2.3),
                                                    "second_hello": False}),
            "human_hello_hello": Recipe("human_residential",
                                        lambda rng: {"text": ["Hello?", "Hello.", "Yeah, hello?"], "second_hello": True,
                                                     "second_gap_s": float(rng.uniform(1.3, 2.5))}),
            "human_long_hello": Recipe("human_residential",
                                       lambda rng: {"text": texts.HELLO_PERSONAL_LONG, "length_s": (2.5, 4.0),
                                                    "second_hello": False}),
            "attendant_ringback": Recipe("attendant_ringback")}),
    # --- report (held out) --------------------------------------------------------------------
    Family("quiet_line", "quiet lines: speech (and fax tones) at -35 dBFS, 15-35 dB SNR",
           {**_cats(SPEECH_CATEGORIES), **_cats(BEEP_CATEGORIES, _beep_under(-6, 10, speech=(-36.5, -33.5))),
            "fax": Recipe("fax", lambda rng: {"tone_dbfs": float(rng.uniform(-36.5, -33.5))})},
           line=lambda rng: {"level_dbfs": float(rng.uniform(-36.5, -33.5)), "hot": False, "clip_pct": 0.0,
                             "snr_db": float(np.round(rng.uniform(15, 35), 1))}),
    Family("gsm_trunk", "a compressed cellular leg: band limit 250-400 to 2900-3400 Hz, GSM 06.10, then mu-law",
           _cats(DEV_CATEGORIES), post=_gsm),
    Family("loss_plc", "1-5% of 20 ms packets lost, some in bursts, concealed (repeat and fade)",
           _cats(DEV_CATEGORIES), line=lambda rng: {"dropouts": False}, post=_loss(True)),
    Family("beep_hard", "beeps 2-8 s after the greeting, beeps 20-30 dB under it, carrier messages that read a number",
           {"machine_beep_late": Recipe("machine_personal", lambda rng: {"gap_s": float(rng.uniform(2.0, 8.0))}),
            "machine_beep_quiet": Recipe("machine_personal", _beep_under(20, 30)),
            "machine_carrier_digits": Recipe("machine_carrier",
                                             lambda rng: {"text": [t for t in texts.CARRIER_CORE
                                                                   if "{digits}" in t]})}),
    Family("field_beeps", "field failures: quiet beeps in broadband or street noise, double and decaying beeps, "
           "hold music then a beep",
           {"machine_beep_in_noise": Recipe("machine_personal", _with(
               _beep_under(12, 22),
               noise=lambda rng: str(rng.choice(["white", "pink", "street_steps", "street_swell"])),
               snr_db=_uniform(8, 18))),
            "machine_beep_double_decay": Recipe("machine_personal",
                                                lambda rng: {"beep_kind": str(rng.choice(["double", "decaying"]))}),
            "machine_hold_beep": Recipe("machine_hold_beep")}),
    Family("tempo", "speech 0.7-0.85x or 1.2-1.45x its fitted pace", _cats(SPEECH_CATEGORIES),
           line=lambda rng: {"tempo_scale": float(rng.uniform(0.7, 0.85) if rng.random() < 0.5
                                                  else rng.uniform(1.2, 1.45))}),
    Family("tts_mbrola", "MBROLA's English voices (us1, us2, us3, en1) through espeak-ng", _cats(SPEECH_CATEGORIES),
           engine="mbrola"),
    Family("tts_festival", "festival's English voices", _cats(SPEECH_CATEGORIES), engine="festival"),
    Family("asterisk_pitched", "Asterisk's English prompts (Allison) 1.5-5 semitones up or down",
           {c: _prompts(c) for c in _PROMPT_TEXT}, engine="prompts"),
)}

TUNE_FAMILIES = ("noise_new", "hot_clipped", "alaw", "loss_zeros", "beep_shapes", "tts_espeak", "tts_flite",
                 "field_babble", "field_people")
REPORT_FAMILIES = ("quiet_line", "gsm_trunk", "loss_plc", "beep_hard", "field_beeps", "tempo", "tts_mbrola",
                   "tts_festival", "asterisk_pitched")
SPLITS = {"tune": TUNE_FAMILIES, "report": REPORT_FAMILIES, "all": TUNE_FAMILIES + REPORT_FAMILIES}


def select(split: str = "tune", names: Iterable[str] | None = None) -> list[Family]:
    """The families of ``split``, or exactly ``names`` (any split) when given."""
    if names is not None:
        names = list(names)
        unknown = [n for n in names if n not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown families {', '.join(unknown)}; one of {', '.join(FAMILIES)}")
        return [FAMILIES[n] for n in names]
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}")
    return [FAMILIES[n] for n in SPLITS[split]]


# ---------------------------------------------------------------------------------------------
# Writing folders


@dataclass
class Written:
    family: str
    folder: Path
    rows: list[dict[str, str]] = field(default_factory=list)
    skipped: str | None = None


def meta(family: Family, per_category: int, seed: int) -> dict[str, Any]:
    """What a folder was made from: a folder with the same meta can be reused as it is."""
    return {"family": family.name, "per_category": per_category, "seed": seed, "categories": list(family.categories)}


def plan(family: Family, per_category: int, seed: int) -> list[tuple[str, int, str]]:
    """(category, index, file name) of every clip of a family's folder; names are shuffled so
    a file name says nothing about its category."""
    jobs = [(c, i) for c in family.categories for i in range(per_category)]
    order = np.random.default_rng([seed, len(jobs)]).permutation(len(jobs))
    return sorted(((jobs[j][0], jobs[j][1], f"clip-{k:03d}.wav") for k, j in enumerate(order)), key=lambda t: t[2])


def as_written(samples: np.ndarray, subtype: str) -> np.ndarray:
    """The samples as a WAV of ``subtype`` holds them (a G.711 WAV re-quantises)."""
    return samples if subtype == "PCM_16" else g711_round_trip(samples, "alaw" if subtype == "ALAW" else "ulaw")


def write_family(family: Family, outdir: str | Path, per_category: int = 6, seed: int = 0,
                 subtype: str | None = None) -> Written:
    """OUTDIR/<family>/: clip-NNN.wav + labels.csv (+ family.json, what made it). ``subtype``
    (ULAW, ALAW, PCM_16) defaults to the family's own."""
    subtype = subtype or family.subtype
    folder = Path(outdir) / family.name
    why = family.unavailable()
    if why:
        return Written(family.name, folder, skipped=why)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for category, index, name in plan(family, per_category, seed):
        clip = family.make(category, index, seed)
        write_wav(folder / name, clip.samples, subtype)
        rows.append({**clip.row(name), "family": family.name})
    write_labels(folder, rows)
    write_meta(folder, family, per_category, seed)
    return Written(family.name, folder, rows)


def write_meta(folder: Path, family: Family, per_category: int, seed: int) -> None:
    (folder / "family.json").write_text(json.dumps(meta(family, per_category, seed)) + "\n")


def is_made(folder: Path, family: Family, per_category: int, seed: int) -> bool:
    """Does ``folder`` hold this family as made with these settings (labels and every WAV)?"""
    try:
        if json.loads((folder / "family.json").read_text()) != meta(family, per_category, seed):
            return False
        with open(folder / "labels.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, ValueError):
        return False
    return len(rows) == per_category * len(family.categories) and all((folder / r["file"]).is_file() for r in rows)


def write_labels(folder: Path, rows: list[dict[str, str]]) -> None:
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(FAMILY_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


__all__ = [
    "Family", "Recipe", "FAMILIES", "TUNE_FAMILIES", "REPORT_FAMILIES", "SPLITS", "FAMILY_COLUMNS",
    "select", "as_written", "write_family", "write_labels", "write_meta", "is_made", "plan", "family_rng", "meta",
    "Written",
]

"""A source-filter voice in pure numpy: speech-like audio without a TTS engine.

How it works
------------
Text is turned into phones (``phones.py``), phones into timed segments (closures, bursts,
aspiration, frication, voiced sonorants and vowels) with formant targets, durations, stress
and pitch accents. Rendering is done at 16 kHz and decimated to 8 kHz:

* **Voiced sound** is pitch-synchronous: each glottal pulse is the closed-form impulse
  response of a source + vocal-tract model (three real poles shaping the glottal flow
  derivative, five formant resonances: an all-pole cascade evaluated by partial fractions),
  with that pulse's formants, placed at its exact fractional time and overlap-added. Formant
  transitions, jitter, shimmer and creak come for free.
* **Noise** (fricatives, stop bursts, aspiration through the formants, breathiness) is white
  noise shaped frame by frame in an STFT (16 ms frames, 4 ms hop).
* **Prosody**: pitch follows a declining baseline per phrase, rise-fall accents on stressed
  syllables, a final fall (statements) or rise (questions), slow wander and micro-intonation;
  loudness follows syllables (stress, phrase-final decay, declination).

Everything is deterministic from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ari_amd.synth.phones import PHONES, VOWELS, parse

SR = 16_000  # render rate
OUT_SR = 8_000
CTRL_HZ = 1_000  # control tracks: one value per ms
IR_LEN = 320  # 20 ms impulse response per glottal pulse
_BASE_RATE = 1.6  # Klatt's durations are careful speech; phone greetings run faster
_NFFT_NOISE = 256
_HOP_NOISE = 64


@dataclass(frozen=True)
class Voice:
    """A speaker. ``Voice.random(rng)`` draws one; fields may be replaced (dataclasses.replace)."""

    name: str
    f0: float  # median pitch, Hz (90-260)
    formant_scale: float  # vocal tract length: 1.0 adult male, ~1.15-1.2 female
    rate: float  # speaking-rate factor (1.0 = Klatt durations; > 1 faster)
    jitter: float  # pulse-time perturbation, fraction of the period (0.004-0.015)
    shimmer_db: float  # pulse-to-pulse amplitude sd, dB (0.2-0.8)
    breathiness: float  # aspiration noise during voicing, relative (0-0.15)
    tilt_hz: float  # return-phase corner of the glottal pulse: lower is softer/darker
    pitch_range: float  # accent height, semitones (2-8)
    creak: float  # chance of a creaky (vocal fry) ending on a statement
    f4: float = 3_400.0
    f5: float = 4_300.0
    vowel_jitter: float = 0.04  # how far this speaker's vowels stray from the table

    @classmethod
    def random(cls, rng: np.random.Generator, sex: str | None = None) -> Voice:
        sex = sex or ("f" if rng.random() < 0.5 else "m")
        if sex == "f":
            f0 = float(rng.uniform(165, 260))
            scale = float(rng.uniform(1.1, 1.22))
        else:
            f0 = float(rng.uniform(90, 150))
            scale = float(rng.uniform(0.95, 1.06))
        lively = float(rng.uniform(0, 1))  # monotone read-out prompt ... animated talker
        return cls(
            name=f"synth:{sex}{int(round(f0))}",
            f0=f0,
            formant_scale=scale,
            rate=float(rng.uniform(0.85, 1.2)),
            jitter=float(rng.uniform(0.004, 0.014)),
            shimmer_db=float(rng.uniform(0.25, 0.8)),
            breathiness=float(rng.uniform(0.03, 0.15) * (1.3 if sex == "f" else 1.0)),
            tilt_hz=float(rng.uniform(2_200, 5_500)),
            pitch_range=float(2.0 + 6.0 * lively),
            creak=float(rng.uniform(0.0, 0.5) if sex == "m" else rng.uniform(0.0, 0.3)),
            f4=float(rng.uniform(3_250, 3_650) * scale),
            f5=float(rng.uniform(4_100, 4_600) * scale),
            vowel_jitter=float(rng.uniform(0.02, 0.06)),
        )


@dataclass
class Seg:
    kind: str  # vowel, closure, burst, asp, fric, son, sil
    phone: str
    dur: float  # seconds
    f_start: tuple[float, float, float] = (500.0, 1500.0, 2500.0)
    f_end: tuple[float, float, float] | None = None
    av_db: float | None = None  # voicing level (None: unvoiced)
    noise: str | None = None
    an_db: float = -80.0
    stress: int = -1  # vowels: 0/1/2
    accent: float = 0.0  # pitch accent, semitones
    phrase: int = 0
    boundary: str = ""  # on the last vowel of a phrase: "," "." "?" "!"
    micro: float = 0.0  # micro-intonation offset at vowel onset (st)
    wide: float = 1.0  # bandwidth multiplier (nasals)


@dataclass
class Plan:
    """Timed segments for one utterance; ``duration`` is known before rendering."""

    text: str
    segs: list[Seg]
    n_syllables: int
    tempo: float = 1.0
    lead: float = 0.0  # silence kept before the first sound
    creaky_end: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return sum(s.dur for s in self.segs) / self.tempo

    def with_tempo(self, tempo: float) -> Plan:
        return replace(self, tempo=tempo)


# ---------------------------------------------------------------------------------------------
# Text -> segments


def _syllabify(phones: list[str]) -> list[tuple[list[str], str, list[str], int]]:
    """-> [(onset, nucleus, coda, stress)] with maximal onsets of two consonants at most."""
    vowel_idx = [i for i, p in enumerate(phones) if p[:-1] in VOWELS]
    if not vowel_idx:
        return [([], "AX", [p.rstrip("012") for p in phones], 0)]
    sylls = []
    onset_start = 0
    for n, vi in enumerate(vowel_idx):
        nxt = vowel_idx[n + 1] if n + 1 < len(vowel_idx) else None
        onset = [p for p in phones[onset_start:vi]]
        if nxt is None:
            coda = phones[vi + 1 :]
            next_start = len(phones)
        else:
            between = phones[vi + 1 : nxt]
            if len(between) <= 1 or len(between) == 2 and between[1] in ("L", "R", "W", "Y") and between[0] in (
                "P", "B", "T", "D", "K", "G", "F", "TH", "S", "SH"
            ):
                split = 0
            else:
                split = len(between) - 1
            coda = between[:split]
            next_start = vi + 1 + split
        v = phones[vi]
        sylls.append((onset, v[:-1], coda, int(v[-1])))
        onset_start = next_start
    return sylls


def _jit(rng: np.random.Generator, sd: float = 0.1) -> float:
    return float(np.clip(1.0 + rng.normal(0.0, sd), 0.7, 1.35))


def plan_speech(text: str, voice: Voice, rng: np.random.Generator, tempo: float = 1.0) -> Plan:
    """Text -> a Plan of timed segments. ``tempo`` > 1 speaks faster."""
    sentences = parse(text)
    if not sentences:
        raise ValueError(f"nothing to say in {text!r}")
    sc = voice.formant_scale
    # this speaker's own vowel space: a fixed perturbation per vowel
    vowel_bias = {
        v: tuple(1.0 + rng.normal(0.0, voice.vowel_jitter, 3)) for v in sorted(VOWELS)
    }

    def ftarget(ph: str, which: str = "start") -> tuple[float, float, float]:
        p = PHONES[ph]
        f = p.f_end if (which == "end" and p.f_end) else p.f
        b = vowel_bias.get(ph, (1.0, 1.0, 1.0))
        # female vowels scale F1 more than F3
        mult = (sc**1.15, sc**1.05, sc**0.95)
        return tuple(float(fi * bi * m) for fi, bi, m in zip(f, b, mult))  # type: ignore[return-value]

    segs: list[Seg] = []
    phrase = 0
    n_syl = 0
    for s_i, sentence in enumerate(sentences):
        # a lone "Hello?" is said slower than the same word inside a sentence
        n_vowels = sum(1 for w in sentence for p in w.phones if p[:-1] in VOWELS)
        rate = voice.rate * _BASE_RATE * float(np.clip((n_vowels / 10) ** 0.3, 0.6, 1.0))
        for w_i, word in enumerate(sentence):
            sylls = _syllabify(word.phones)
            last_word_of_phrase = word.pause_after != "" or w_i == len(sentence) - 1
            for y_i, (onset, nuc, coda, stress) in enumerate(sylls):
                n_syl += 1
                last_syl = last_word_of_phrase and y_i == len(sylls) - 1
                if word.function:
                    stress = 0 if len(sylls) == 1 and nuc not in ("AY", "AW", "OY") else min(stress, 2)
                    if len(sylls) == 1:
                        stress = 0
                # --- onset consonants
                cluster = len(onset) > 1
                for c in onset:
                    segs.extend(_consonant(c, True, stress, cluster, last_syl, rate, rng, ftarget))
                # --- vowel
                p = PHONES[nuc]
                d = p.dur_ms
                dmin = 0.45 * d
                k = {1: 1.0, 2: 0.8, 0: 0.5}[stress]
                if word.function:
                    k *= 0.75
                if len(sylls) > 1 and not last_syl:
                    k *= 0.85
                if coda and PHONES[coda[0].rstrip("012")].voiced is False:
                    k *= 0.85  # vowels shorten before voiceless consonants
                dur = (dmin + (d - dmin) * k) * (1.4 if last_syl else 1.0)
                dur = max(0.04, dur / 1000.0 * _jit(rng, 0.1) / rate)
                av = p.av_db + {1: 0.0, 2: -1.0, 0: -2.5}[stress] + float(rng.normal(0, 1.0))
                vseg = Seg(
                    "vowel", nuc, dur, ftarget(nuc), ftarget(nuc, "end") if p.f_end else None,
                    av_db=av, stress=stress, phrase=phrase,
                )
                if onset and not PHONES[onset[-1]].voiced:
                    vseg.micro = 0.8
                elif onset and PHONES[onset[-1]].kind in ("stop", "fric"):
                    vseg.micro = -0.6
                if last_syl:
                    vseg.boundary = word.pause_after or "."
                segs.append(vseg)
                # --- coda
                for c in coda:
                    segs.extend(_consonant(c, False, stress, len(coda) > 1, last_syl, rate, rng, ftarget))
            # pauses
            if word.pause_after in (".", "?", "!") and s_i < len(sentences) - 1:
                segs.append(Seg("sil", "_", float(rng.uniform(0.25, 0.45)), phrase=phrase))
                phrase += 1
            elif word.pause_after == ",":
                segs.append(Seg("sil", "_", float(rng.uniform(0.1, 0.3)), phrase=phrase))
                phrase += 1
            elif w_i < len(sentence) - 1 and rng.random() < 0.35:
                segs.append(Seg("sil", "_", float(rng.uniform(0.03, 0.15)), phrase=phrase))
    _coarticulate(segs)
    _assign_accents(segs, voice, rng)
    creaky = rng.random() < voice.creak and any(s.boundary in (".", "!") for s in segs[-4:])
    return Plan(text, segs, n_syl, tempo, creaky_end=bool(creaky))


def _consonant(c: str, onset: bool, stress: int, cluster: bool, last_syl: bool, rate: float, rng: np.random.Generator,
               ftarget: Callable[[str], tuple[float, float, float]]) -> list[Seg]:
    p = PHONES[c]
    k = 1.0
    if cluster:
        k *= 0.75
    if stress == 0:
        k *= 0.8
    if last_syl and not onset:
        k *= 1.25
    d = p.dur_ms * k * _jit(rng, 0.12) / rate / 1000.0
    f = ftarget(c)
    if p.kind == "stop":
        if c == "DX":
            return [Seg("son", c, max(0.015, d), f, av_db=p.av_db)]
        out = [Seg("closure", c, max(0.02, d * 0.7), f, av_db=p.av_db if p.voiced else None)]
        released = onset or rng.random() < 0.6
        if released:
            out.append(Seg("burst", c, float(rng.uniform(0.006, 0.014)), f, noise=p.noise, an_db=p.an_db))
            if not p.voiced:
                asp = (rng.uniform(0.035, 0.065) if (onset and stress > 0 and not cluster)
                       else rng.uniform(0.01, 0.025))
                out.append(Seg("asp", c, float(asp) / rate, f, noise="asp", an_db=p.an_db - 4))
        return out
    if p.kind == "affr":
        return [
            Seg("closure", c, max(0.02, d * 0.45), f, av_db=p.av_db if p.voiced else None),
            Seg("fric", c, max(0.03, d * 0.6), f, av_db=p.av_db if p.voiced else None, noise=p.noise, an_db=p.an_db),
        ]
    if p.kind == "fric":
        return [Seg("fric", c, max(0.03, d), f, av_db=p.av_db if p.voiced else None, noise=p.noise, an_db=p.an_db)]
    if p.kind == "aspirate":
        return [Seg("asp", c, max(0.03, d), f, noise="asp", an_db=p.an_db + float(rng.normal(0, 2)))]
    wide = 2.5 if p.kind == "nasal" else 1.0
    return [Seg("son", c, max(0.03, d), f, av_db=p.av_db, wide=wide)]


_COART = {"closure": 0.5, "burst": 0.5, "asp": 1.0, "fric": 0.35, "son": 0.25}


def _coarticulate(segs: list[Seg]) -> None:
    """Pull consonant targets toward the neighbouring vowel (loci, not fixed targets)."""
    vowel_pos = [i for i, s in enumerate(segs) if s.kind == "vowel"]
    if not vowel_pos:
        return
    for i, s in enumerate(segs):
        if s.kind in _COART:
            after = [j for j in vowel_pos if j > i]
            before = [j for j in vowel_pos if j < i]
            j = after[0] if after and (not before or after[0] - i <= i - before[-1]) else before[-1]
            v = segs[j].f_start if j > i else (segs[j].f_end or segs[j].f_start)
            a = _COART[s.kind]
            if s.kind == "son" and s.wide > 1.0:
                a = 0.15
            s.f_start = tuple(fs + a * (fv - fs) for fs, fv in zip(s.f_start, v))  # type: ignore[assignment]


def _assign_accents(segs: list[Seg], voice: Voice, rng: np.random.Generator) -> None:
    phrases: dict[int, list[Seg]] = {}
    for s in segs:
        if s.kind == "vowel":
            phrases.setdefault(s.phrase, []).append(s)
    for vs in phrases.values():
        stressed = [v for v in vs if v.stress == 1]
        if not stressed:
            stressed = vs[:1]
        n = 0
        for v in stressed:
            if n == 0 or rng.random() < 0.55:
                v.accent = float(rng.uniform(0.35, 1.0) * voice.pitch_range * (0.8**n))
                n += 1


# ---------------------------------------------------------------------------------------------
# Rendering


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return x
    k = np.hanning(width + 2)[1:-1]
    k /= k.sum()
    pad = width // 2 + 1
    xp = np.concatenate([np.full(pad, x[0]), x, np.full(pad, x[-1])])
    return np.convolve(xp, k, mode="same")[pad:-pad]


def _noise_shapes(freqs: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    f: NDArray[np.float64] = np.maximum(freqs, 1.0)

    def bump(center: float, width: float, floor_db: float) -> NDArray[np.float64]:
        db = -0.5 * ((f - center * scale) / (width * scale)) ** 2 * 8.686
        return 10 ** (np.maximum(db, floor_db) / 20)

    shapes = {
        "s": bump(5_800, 1_500, -35) * np.where(f < 1_000, (f / 1_000) ** 2, 1.0),
        "sh": bump(2_900, 900, -30),
        "f": np.minimum(1.0, (f / 1_200)) * 10 ** (-np.maximum(0, f - 6_000) / 8_000),
        "lab": 1.0 / np.sqrt(1 + (f / 1_200) ** 2) * np.minimum(1.0, f / 300),
        "alv": bump(4_200, 1_500, -25),
        "vel": bump(2_000, 500, -22),
    }
    for k, v in shapes.items():
        shapes[k] = v / np.sqrt(np.mean(v**2))
    return shapes


def _formant_mag(freqs: np.ndarray, F: np.ndarray, B: np.ndarray) -> np.ndarray:
    """|H| of analog resonators normalised at DC; F, B: [frames, K] -> [frames, bins]."""
    f = freqs[None, :, None].astype(np.float32)
    Fk = F[:, None, :].astype(np.float32)
    Bk = B[:, None, :].astype(np.float32)
    den = (1 - (f / Fk) ** 2) ** 2 + (f * Bk / Fk**2) ** 2
    prod: NDArray[np.float32] = np.prod(den, axis=2)
    return 1.0 / np.sqrt(prod)


def render(plan: Plan, voice: Voice, rng: np.random.Generator) -> np.ndarray:
    """Plan -> float32 samples at 8 kHz, peak ~0.5. The first and last sample are silence."""
    segs = plan.segs
    tempo = plan.tempo
    durs = np.array([s.dur / tempo for s in segs])
    starts = np.concatenate([[0.0], np.cumsum(durs)[:-1]]) + 0.03
    total = float(durs.sum()) + 0.03 + 0.06
    nc = int(np.ceil(total * CTRL_HZ)) + 1
    tc = np.arange(nc) / CTRL_HZ
    sc = voice.formant_scale

    # ---- formant tracks
    pts_t, pts_f = [], []
    for s, t0, d in zip(segs, starts, durs):
        if s.kind == "sil":
            continue
        if s.kind == "vowel":
            end = s.f_end or tuple(fi * (1 + rng.normal(0, 0.03)) for fi in s.f_start)
            if s.f_end:
                pts_t += [t0 + 0.15 * d, t0 + 0.85 * d]
            else:
                pts_t += [t0 + 0.3 * d, t0 + 0.7 * d]
            pts_f += [s.f_start, end]
        else:
            pts_t.append(t0 + 0.5 * d)
            pts_f.append(s.f_start)
    pts_f_arr = np.array(pts_f, dtype=float)
    F = np.stack([_smooth(np.interp(tc, pts_t, pts_f_arr[:, k]), 25) for k in range(3)], axis=1)
    w4 = _smooth(rng.normal(0, 1, nc).cumsum() * 0.002, 101)
    w5 = _smooth(rng.normal(0, 1, nc).cumsum() * 0.002, 101)
    F4 = voice.f4 * (1 + np.clip(w4 - w4.mean(), -0.05, 0.05))
    F5 = np.maximum(voice.f5 * (1 + np.clip(w5 - w5.mean(), -0.05, 0.05)), F4 + 500)
    F = np.column_stack([F, F4, F5])
    F[:, 1] = np.maximum(F[:, 1], F[:, 0] + 200)
    F[:, 2] = np.maximum(F[:, 2], F[:, 1] + 250)
    F[:, 3] = np.maximum(F[:, 3], F[:, 2] + 300)
    # bandwidths; nasals widen theirs
    wide = np.ones(nc)
    for s, t0, d in zip(segs, starts, durs):
        if s.wide != 1.0:
            i0, i1 = int(t0 * CTRL_HZ), int((t0 + d) * CTRL_HZ) + 1
            wide[i0:i1] = s.wide
    wide = _smooth(wide, 15)
    breath_bw = 1.0 + 2.0 * voice.breathiness
    B = np.column_stack(
        [
            (60 + 0.08 * F[:, 0]) * wide * breath_bw,
            (70 + 0.05 * F[:, 1]) * wide,
            (100 + 0.04 * F[:, 2]) * wide,
            np.full(nc, 220.0),
            np.full(nc, 300.0),
        ]
    )

    # ---- voicing level (dB) and noise levels
    av_db = np.full(nc, -120.0)
    an = {k: np.zeros(nc) for k in ("s", "sh", "f", "lab", "alv", "vel", "asp")}
    phrase_bounds: dict[int, list[float]] = {}
    for s, t0, d in zip(segs, starts, durs):
        phrase_bounds.setdefault(s.phrase, [t0, t0 + d])[1] = t0 + d
    for s, t0, d in zip(segs, starts, durs):
        i0, i1 = int(round(t0 * CTRL_HZ)), int(round((t0 + d) * CTRL_HZ))
        i1 = max(i1, i0 + 1)
        pb = phrase_bounds[s.phrase]
        decl = -3.0 * (t0 - pb[0]) / max(0.3, pb[1] - pb[0])
        if s.av_db is not None:
            lvl = np.full(i1 - i0, s.av_db + decl)
            if s.kind == "vowel":
                x = np.linspace(0, 1, i1 - i0)
                # a syllable's energy peaks early and decays: fast rise, slower fall
                pk = float(rng.uniform(0.15, 0.35))
                lvl += (-8.0 * (1 - np.minimum(1, x / pk)) ** 2
                        - float(rng.uniform(3, 7)) * np.maximum(0, (x - pk) / (1 - pk)) ** 1.6)
                if s.boundary:
                    lvl += -10.0 * np.maximum(0, (x - 0.45) / 0.55) ** 1.5
                lvl += 1.0 * (s.stress == 1)
            av_db[i0:i1] = np.maximum(av_db[i0:i1], lvl)
        if s.noise:
            a = 10 ** ((s.an_db + decl) / 20)
            n = i1 - i0
            if s.kind == "burst":
                env = np.exp(-np.arange(n) / max(1.0, n / 2.5))
            else:
                x = np.linspace(0, 1, n)
                env = np.minimum(1, np.minimum(x / 0.2, (1 - x) / 0.25) + 0.15)
            an[s.noise][i0:i1] = np.maximum(an[s.noise][i0:i1], a * env)
    # creaky ending
    jit_track = np.full(nc, voice.jitter)
    shim_track = np.full(nc, voice.shimmer_db)
    av_lin = 10 ** (av_db / 20)
    av_lin[av_db <= -100] = 0.0
    av_lin = _smooth(av_lin, 5)

    # ---- pitch (semitones re voice.f0)
    st = np.zeros(nc)
    for _pidx, (p0, p1) in phrase_bounds.items():
        m = (tc >= p0) & (tc < p1)
        if not m.any():
            continue
        L = max(0.3, p1 - p0)
        st[m] += 1.5 + rng.uniform(-0.5, 1.0) - rng.uniform(2.0, 4.0) * (tc[m] - p0) / L
    for s, t0, d in zip(segs, starts, durs):
        if s.kind != "vowel":
            continue
        if s.accent:
            c = t0 + d * rng.uniform(0.2, 0.7)
            sig = max(0.05, d * 0.6)
            st += s.accent * np.exp(-0.5 * ((tc - c) / sig) ** 2)
        if s.micro:
            m = (tc >= t0) & (tc < t0 + 0.05)
            st[m] += s.micro * (1 - (tc[m] - t0) / 0.05)
        if s.boundary:
            m = tc >= t0
            x = np.clip((tc[m] - t0) / d, 0, 1.3)
            if s.boundary == "?":
                st[m] += rng.uniform(3.0, 8.0) * x**1.5
            elif s.boundary == ",":
                st[m] += rng.uniform(-1.0, 2.5) * x
            else:
                st[m] -= rng.uniform(2.0, 5.0) * x
    walk = _smooth(rng.normal(0, 1, nc).cumsum() * 0.03, 201)
    st += walk - walk.mean()
    # pitch never sits still: a 2-6 Hz drift of about half a semitone
    drift = _smooth(rng.normal(0, 1, nc), 90)
    st += drift * (0.5 / (drift.std() + 1e-9))
    f0 = voice.f0 * 2 ** (st / 12)
    if plan.creaky_end:
        voiced_idx = np.nonzero(av_lin > 1e-3)[0]
        if len(voiced_idx):
            end_t = voiced_idx[-1] / CTRL_HZ
            m = tc > end_t - rng.uniform(0.12, 0.25)
            f0[m] = np.minimum(f0[m], rng.uniform(40, 65))
            jit_track[m] = 0.06
            shim_track[m] = 2.5
    f0 = np.clip(f0, 40, 450)

    # ---- glottal pulses (vectorised): phase integral, crossings, jitter
    phase = np.concatenate([[0.0], np.cumsum(f0[:-1]) / CTRL_HZ]) + rng.uniform(0, 1)
    k = np.arange(int(np.ceil(phase[0])), int(np.floor(phase[-1])) + 1)
    tp = np.interp(k, phase, tc)
    per = 1.0 / np.interp(tp, tc, f0)
    tp = tp + rng.normal(0, 1, len(tp)) * np.interp(tp, tc, jit_track) * per
    ap = np.interp(tp, tc, av_lin)
    keep = (ap > 1e-3) & (tp > 0) & (tp < total - IR_LEN / SR)
    tp, ap, per = tp[keep], ap[keep], per[keep]
    ap = ap * 10 ** (rng.normal(0, 1, len(tp)) * np.interp(tp, tc, shim_track) / 20)
    n16 = int(np.ceil(total * SR))
    voiced = np.zeros(n16)
    if len(tp):
        Fp = np.stack([np.interp(tp, tc, F[:, j]) for j in range(5)], axis=1)
        Bp = np.stack([np.interp(tp, tc, B[:, j]) for j in range(5)], axis=1)
        f0p = 1.0 / per
        cplx = -np.pi * Bp + 2j * np.pi * Fp  # [n, 5]
        real = -2 * np.pi * np.column_stack([0.8 * f0p, 1.8 * f0p, np.full(len(tp), voice.tilt_hz)])
        poles = np.concatenate([cplx, np.conj(cplx), real.astype(complex)], axis=1)  # [n, 13]
        diff = poles[:, :, None] - poles[:, None, :]
        idx = np.arange(poles.shape[1])
        diff[:, idx, idx] = 1.0
        # numerator s * gain; gain normalises each resonator at DC and the source at its peak
        gain = np.prod(np.abs(cplx) ** 2, axis=1) * (-real[:, 0] - real[:, 1]) * (-real[:, 2])
        resid = poles * gain[:, None] / np.prod(diff, axis=2)
        use = np.r_[0:5, 10:13]  # conjugate pairs give 2*Re of the upper one
        weight = np.r_[np.full(5, 2.0), np.ones(3)]
        pos = tp * SR
        i0 = np.floor(pos).astype(np.int64)
        frac = pos - i0
        t = (np.arange(IR_LEN)[None, :] - frac[:, None]) / SR  # [n, L]
        t = np.maximum(t, 0.0).astype(np.float32)
        # any per-pulse scale is fine (each pulse is normalised below): keep float32 in range
        resid = resid / np.max(np.abs(resid), axis=1, keepdims=True)
        h = np.zeros((len(tp), IR_LEN), dtype=np.float32)
        for j, wj in zip(use, weight):
            # Re(r e^{pt}) = |r| e^{Re(p) t} cos(Im(p) t + arg r): real float32 maths is much faster
            amp = (wj * np.abs(resid[:, j, None])).astype(np.float32)
            arg = np.angle(resid[:, j, None]).astype(np.float32)
            decay = poles[:, j, None].real.astype(np.float32)
            omega = poles[:, j, None].imag.astype(np.float32)
            h += amp * np.exp(decay * t) * np.cos(omega * t + arg)
        taper = np.ones(IR_LEN)
        taper[-48:] = np.hanning(96)[48:]
        h *= taper
        # Each pulse carries the same energy in the phone band: loudness is set by the phone's
        # level (av_db), not by how a DC-normalised cascade lifts everything above F1.
        h = h.astype(np.float64)
        Hs = np.fft.rfft(h, 512, axis=1)
        fb = np.fft.rfftfreq(512, 1 / SR)
        inband = (fb >= 300) & (fb <= 3_400)
        e = np.sum(np.abs(Hs[:, inband]) ** 2, axis=1)
        h *= (ap / np.sqrt(e + 1e-30))[:, None]
        ix = (i0[:, None] + np.arange(IR_LEN)[None, :]).ravel()
        # numpy's stubs give bincount an intp result even with weights (it is float64 then)
        voiced = np.bincount(ix, weights=h.ravel(), minlength=n16)[:n16]  # type: ignore[assignment]
        # reference level: loud voiced stretches -> unit RMS
        loud = np.interp(np.arange(n16) / SR, tc, av_lin) > 0.5
        ref = np.sqrt(np.mean(voiced[loud] ** 2)) if loud.sum() > 160 else np.sqrt(np.mean(voiced**2) + 1e-20)
        voiced /= max(ref, 1e-12)

    # ---- noise: STFT-shaped white noise
    an["asp"] = np.maximum(an["asp"], voice.breathiness * av_lin)
    nfr = n16 // _HOP_NOISE + 1
    tf = (np.arange(nfr) * _HOP_NOISE) / SR
    freqs = np.fft.rfftfreq(_NFFT_NOISE, 1 / SR)
    shapes = _noise_shapes(freqs, sc)
    power = np.zeros((nfr, len(freqs)))
    any_noise = False
    for kind, track in an.items():
        a = np.interp(tf, tc, track)
        if not np.any(a > 0):
            continue
        any_noise = True
        if kind == "asp":
            Ff = np.stack([np.interp(tf, tc, F[:, j]) for j in range(5)], axis=1)
            Bf = np.stack([np.interp(tf, tc, B[:, j]) for j in range(5)], axis=1)
            mag = _formant_mag(freqs, Ff, Bf) * np.minimum(1.0, freqs / 600)[None, :]
            mag /= np.sqrt(np.mean(mag**2, axis=1, keepdims=True)) + 1e-12
            power += (a[:, None] * mag) ** 2
        else:
            power += (a[:, None] * shapes[kind][None, :]) ** 2
    out = voiced
    if any_noise:
        env = np.sqrt(power)
        pad = _NFFT_NOISE
        white = rng.normal(0, 1, n16 + 2 * pad)
        win = np.sqrt(np.hanning(_NFFT_NOISE + 1)[:-1])
        starts_n = np.arange(nfr) * _HOP_NOISE
        frames = white[starts_n[:, None] + np.arange(_NFFT_NOISE)[None, :] + pad // 2] * win
        spec = np.fft.rfft(frames, axis=1) * env
        frames = np.fft.irfft(spec, _NFFT_NOISE, axis=1) * win
        noise = np.zeros(n16 + 2 * pad)
        ix = (starts_n[:, None] + np.arange(_NFFT_NOISE)[None, :]).ravel()
        noise[: ix.max() + 1] += np.bincount(ix, weights=frames.ravel())
        # frames are centred at their start + N/2; shift back so frame j is centred at tf[j]
        noise = noise[_NFFT_NOISE // 2 : _NFFT_NOISE // 2 + n16] / (_NFFT_NOISE / _HOP_NOISE / 2)
        out = voiced + noise

    y = decimate2(out)
    n_lead = int(0.02 * OUT_SR)
    y[:n_lead] *= np.linspace(0, 1, n_lead) ** 2
    y[-n_lead:] *= np.linspace(1, 0, n_lead) ** 2
    peak = np.max(np.abs(y))
    if peak > 0:
        y = y * (0.5 / peak)
    return y.astype(np.float32)


def decimate2(x: np.ndarray) -> np.ndarray:
    """16 kHz -> 8 kHz: FFT low-pass with a cosine edge from 3.5 to 4 kHz, then every 2nd sample."""
    n = len(x) - len(x) % 2
    nfft = 1 << int(np.ceil(np.log2(max(n, 2) + 256)))  # zero tail; FFT of any length is slow
    X = np.fft.rfft(x[:n], nfft)
    f = np.fft.rfftfreq(nfft, 1 / SR)
    g = np.clip((4_000 - f) / 500, 0, 1)
    # five formants alone roll off too fast above F3; the missing higher poles lift 2.5-4 kHz
    # (Klatt's higher-pole correction), here as a gentle shelf
    X *= (0.5 - 0.5 * np.cos(np.pi * g)) * np.sqrt(1 + (np.minimum(f, 3_400) / 2_800) ** 4)
    return np.fft.irfft(X, nfft)[:n:2]


def speak(text: str, voice: Voice, rng: np.random.Generator, tempo: float = 1.0) -> np.ndarray:
    """Text -> float32 8 kHz speech (peak 0.5), starting and ending in silence."""
    return render(plan_speech(text, voice, rng, tempo), voice, rng)


# ---------------------------------------------------------------------------------------------
# Babble: four talkers at once

_BABBLE_TEXT = [
    "so I told him we would be there by seven, but the traffic was terrible",
    "did you see the game last night, it went to overtime again",
    "can you pass me that folder, the blue one on the left",
    "we need to order more paper before friday or the printer stops",
    "my sister is moving to denver next month for a new job",
    "the meeting got moved to three thirty, nobody told me",
    "I think the coffee machine is broken again, it just hums",
    "yes, table four wants the check, and table nine is waiting",
    "she said the package should arrive sometime after lunch",
    "honestly I have no idea where they parked the car",
]


def talker_stream(duration_s: float, rng: np.random.Generator, voice: Voice | None = None,
                  loop_s: float | None = None) -> np.ndarray:
    """One person talking on and off for ``duration_s`` (8 kHz float32). With ``loop_s`` the
    talk is made for that long and repeated (seamlessly, as a circular buffer)."""
    n = int(duration_s * OUT_SR)
    m_loop = min(n, int(loop_s * OUT_SR)) if loop_s else n
    out = np.zeros(m_loop, dtype=np.float32)
    voice = voice or Voice.random(rng)
    pos = int(rng.uniform(0, 0.8) * OUT_SR)
    while pos < m_loop:
        text = _BABBLE_TEXT[int(rng.integers(len(_BABBLE_TEXT)))]
        words = text.split()
        a = int(rng.integers(0, max(1, len(words) - 4)))
        chunk = " ".join(words[a : a + int(rng.integers(4, 12))])
        y = speak(chunk, voice, rng)
        idx = (pos + np.arange(len(y))) % m_loop if loop_s else np.arange(pos, min(pos + len(y), m_loop))
        np.add.at(out, idx, y[: len(idx)])
        pos += len(y) + int(rng.uniform(0.05, 0.35) * OUT_SR)
    if m_loop < n:
        out = np.tile(out, n // m_loop + 1)[:n]
    return out


def babble(duration_s: float, rng: np.random.Generator, talkers: int = 4) -> np.ndarray:
    """``talkers`` voices mixed at slightly different levels, float32 8 kHz, RMS ~0.1."""
    n = int(duration_s * OUT_SR)
    mix = np.zeros(n, dtype=np.float64)
    for _ in range(talkers):
        # each talker's few seconds repeat, with a different period per talker: the mix does not
        s = talker_stream(duration_s, rng, loop_s=float(rng.uniform(4.5, 7.5)))
        s = np.roll(s, int(rng.integers(0, max(1, len(s)))))
        rms = np.sqrt(np.mean(s.astype(np.float64) ** 2)) + 1e-12
        mix += s / rms * 10 ** (rng.uniform(-4, 2) / 20)
    mix *= 0.1 / (np.sqrt(np.mean(mix**2)) + 1e-12)
    return mix.astype(np.float32)

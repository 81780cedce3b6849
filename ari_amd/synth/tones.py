"""What else a caller can hear: voicemail beeps, fax (V.25 answer tone, V.21 HDLC flags, CNG),
special information tones, ringback and music.

Every generator returns float64 samples at 8 kHz, full scale 1.0. Levels are RMS in dBFS
(20*log10(rms)), so a tone "at -6 dBFS" peaks at about -3 dBFS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SR = 8_000

BEEP_KINDS = ("pure", "harmonic", "two-tone", "dual-tone", "glide", "double")
# Asked for by name only (make_beep's random draw keeps to BEEP_KINDS so old clips stay the same)
EXTRA_BEEP_KINDS = ("decaying",)
COMMON_BEEP_HZ = (425, 440, 500, 600, 700, 800, 850, 900, 950, 1000, 1100, 1200, 1400, 1600, 1800)
SIT_HZ = (913.8, 1370.6, 1776.7)  # low segment frequencies; the high ones are 985.2, 1428.5
SIT_HIGH_HZ = (985.2, 1428.5, 1776.7)
FAX_VARIANTS = ("ANS", "ANS/", "ANSam", "ANSam/")


def level(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale to an RMS of ``dbfs`` over the non-silent samples."""
    x = np.asarray(x, dtype=np.float64)
    on = np.abs(x) > 1e-9
    r = np.sqrt(np.mean(x[on] ** 2)) if on.any() else 0.0
    return x * (10 ** (dbfs / 20) / r) if r > 0 else x


def ramp(x: np.ndarray, ms: float = 5.0) -> np.ndarray:
    """Raised-cosine fade in and out (no clicks)."""
    n = min(len(x) // 2, int(ms * SR / 1000))
    if n > 0:
        w = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
        x = x.copy()
        x[:n] *= w
        x[-n:] *= w[::-1]
    return x


def tone(hz: float | list[float], dur_s: float, amps: list[float] | None = None, glide_to: float | None = None,
         phase: float = 0.0) -> np.ndarray:
    """Sum of sines (``hz`` may be several); ``glide_to`` sweeps the first linearly."""
    n = int(round(dur_s * SR))
    t = np.arange(n) / SR
    # numpy's stubs make np.isscalar a TypeGuard, not a TypeIs: hz is a float in the first branch and a
    # list in the second, which mypy cannot see
    freqs: list[float] = [hz] if np.isscalar(hz) else list(hz)  # type: ignore[list-item, arg-type]
    amps = amps or [1.0] * len(freqs)
    out = np.zeros(n)
    for i, (f, a) in enumerate(zip(freqs, amps)):
        if i == 0 and glide_to is not None:
            inst = f + (glide_to - f) * t / max(dur_s, 1e-9)
            ph = 2 * np.pi * np.cumsum(inst) / SR
        else:
            ph = 2 * np.pi * f * t
        out += a * np.sin(ph + phase * (i + 1))
    return out


# ---------------------------------------------------------------------------------------------
# Beeps


@dataclass
class Beep:
    samples: np.ndarray
    kind: str
    hz: float  # main frequency (labels.csv beep_hz)
    freqs: list[float]  # all of them, main first
    level_dbfs: float
    description: str
    pulses: list[tuple[int, int]] = field(default_factory=list)  # sample ranges that sound


def make_beep(
    rng: np.random.Generator,
    kind: str | None = None,
    hz: float | None = None,
    dur_s: float | None = None,
    level_dbfs: float | None = None,
) -> Beep:
    """A voicemail beep: 400-2000 Hz, 0.12-1.5 s, -25 to -6 dBFS, of one of BEEP_KINDS."""
    kind = kind or str(rng.choice(BEEP_KINDS, p=[0.4, 0.12, 0.12, 0.08, 0.12, 0.16]))
    if kind not in BEEP_KINDS + EXTRA_BEEP_KINDS:
        raise ValueError(f"unknown beep kind {kind!r}; one of {', '.join(BEEP_KINDS + EXTRA_BEEP_KINDS)}")
    if hz is None:
        if rng.random() < 0.5:
            hz = float(rng.choice(COMMON_BEEP_HZ)) * float(rng.uniform(0.995, 1.005))
        else:
            hz = float(rng.uniform(400, 2_000))
    hz = float(hz)
    dur = float(dur_s if dur_s is not None else rng.uniform(0.12, 1.5))
    lvl = float(level_dbfs if level_dbfs is not None else rng.uniform(-25, -6))
    ramp_ms = float(rng.uniform(2, 10))
    pulses = []
    if kind == "pure":
        x = ramp(tone(hz, dur), ramp_ms)
        freqs, desc = [hz], f"pure {hz:.0f} Hz"
    elif kind == "harmonic":
        hz = min(hz, 1_700.0)
        a2 = float(rng.uniform(0.2, 0.5))
        x = ramp(tone([hz, 2 * hz], dur, [1.0, a2]), ramp_ms)
        freqs, desc = [hz], f"{hz:.0f} Hz + 2nd harmonic {a2:.2f}"
    elif kind == "two-tone":
        other = float(np.clip(hz * rng.choice([0.6, 0.75, 1.33, 1.8]), 400, 2_000))
        d1 = float(rng.uniform(0.1, 0.4))
        d2 = max(dur - d1, d1 + 0.05)
        x = np.concatenate([ramp(tone(other, d1), ramp_ms), ramp(tone(hz, d2), ramp_ms)])
        dur = d1 + d2
        freqs, desc = [hz, other], f"two-tone {other:.0f} then {hz:.0f} Hz"
    elif kind == "dual-tone":
        other = float(np.clip(hz * rng.uniform(0.45, 0.8), 400, 2_000))
        rel = float(rng.uniform(0.4, 0.8))
        x = ramp(tone([hz, other], dur, [1.0, rel]), ramp_ms)
        freqs, desc = [hz, other], f"dual-tone {hz:.0f} + {other:.0f} Hz ({rel:.1f})"
    elif kind == "glide":
        span = hz * float(rng.uniform(0.015, 0.05)) * rng.choice([-1, 1])
        x = ramp(tone(hz - span / 2, dur, glide_to=hz + span / 2), ramp_ms)
        freqs, desc = [hz], f"glide {hz - span / 2:.0f}->{hz + span / 2:.0f} Hz"
    elif kind == "decaying":
        # a chime: struck, then dying away 15-30 dB by its end (no steady level to lock on to)
        fall_db = float(rng.uniform(15, 30))
        t = np.arange(int(round(dur * SR))) / SR
        x = ramp(tone(hz, dur) * 10 ** (-fall_db * t / max(dur, 1e-9) / 20), 1.0)
        freqs, desc = [hz], f"decaying {hz:.0f} Hz, -{fall_db:.0f} dB"
    else:  # double
        p = float(rng.uniform(0.1, 0.32))
        gap = float(rng.uniform(0.06, 0.2))
        one = ramp(tone(hz, p), ramp_ms)
        x = np.concatenate([one, np.zeros(int(round(gap * SR))), one])
        n1 = len(one)
        pulses = [(0, n1), (n1 + int(round(gap * SR)), len(x))]
        dur = len(x) / SR
        freqs, desc = [hz], f"double {hz:.0f} Hz, pulses {p * 1000:.0f} ms"
    if not pulses:
        pulses = [(0, len(x))]
    x = level(x, lvl)
    return Beep(x, kind, hz, freqs, lvl, f"{desc}, {len(x) / SR:.2f} s", pulses)


# ---------------------------------------------------------------------------------------------
# Fax


def fax_answer_tone(rng: np.random.Generator, variant: str | None = None, hz: float | None = None,
                    dur_s: float | None = None) -> tuple[np.ndarray, str, float]:
    """V.25 answer tone at 2100 Hz: plain (ANS), with 180-degree phase reversals every 450 ms
    (ANS/), with 15 Hz amplitude modulation of 20% (ANSam, V.8), or both (ANSam/).
    -> (samples at unit amplitude, variant, hz)."""
    variant = variant or str(rng.choice(FAX_VARIANTS))
    hz = float(hz if hz is not None else 2_100 + rng.uniform(-12, 12))
    dur = float(dur_s if dur_s is not None else rng.uniform(2.6, 4.0))
    n = int(round(dur * SR))
    t = np.arange(n) / SR
    ph = 2 * np.pi * hz * t
    if variant.endswith("/"):
        ph = ph + np.pi * np.floor(t / 0.45)
    x = np.sin(ph)
    if variant.startswith("ANSam"):
        x *= 1 + 0.2 * np.sin(2 * np.pi * 15.0 * t)
    return ramp(x, 3), variant, hz


def hdlc_bits(payload: bytes, flags: int) -> list[int]:
    """``flags`` 0x7E flags, then ``payload`` bit-stuffed (LSB first), then one closing flag."""
    flag = [0, 1, 1, 1, 1, 1, 1, 0]
    bits = flag * flags
    ones = 0
    for byte in payload:
        for i in range(8):
            b = (byte >> i) & 1
            bits.append(b)
            ones = ones + 1 if b else 0
            if ones == 5:
                bits.append(0)
                ones = 0
    return bits + flag


def fsk(bits: list[int], baud: float = 300.0, mark: float = 1_650.0, space: float = 1_850.0) -> np.ndarray:
    """Continuous-phase binary FSK (V.21 channel 2 by default: mark=1 1650 Hz, space=0 1850 Hz)."""
    n = int(round(len(bits) * SR / baud))
    idx = np.minimum((np.arange(n) * baud / SR).astype(int), len(bits) - 1)
    f = np.where(np.asarray(bits)[idx] == 1, mark, space)
    return np.sin(2 * np.pi * np.cumsum(f) / SR)


def v21_burst(rng: np.random.Generator, dur_s: float | None = None) -> np.ndarray:
    """About 1 s of V.21 HDLC: a preamble of flags, then a short DIS/CSI-like frame."""
    dur = float(dur_s if dur_s is not None else rng.uniform(0.85, 1.15))
    frame_bytes = int(rng.integers(6, 20))
    frame_bits = frame_bytes * 8 * 1.05 + 16
    n_flags = max(4, int((dur * 300 - frame_bits) / 8))
    payload = bytes([0xFF, 0x13, 0x80]) + bytes(rng.integers(0, 256, frame_bytes - 3, dtype=np.uint8))
    return ramp(fsk(hdlc_bits(payload, n_flags)), 2)


def cng(dur_s: float, phase_s: float = 0.0) -> np.ndarray:
    """Calling tone of a sending fax: 1100 Hz, 0.5 s on / 3 s off (unit amplitude)."""
    n = int(round(dur_s * SR))
    t = np.arange(n) / SR + phase_s
    on = (t % 3.5) < 0.5
    return np.sin(2 * np.pi * 1_100 * t) * on


# ---------------------------------------------------------------------------------------------
# SIT, ringback, music


SIT_CODES = {  # segment lengths (s) and frequency set per ITU/Telcordia SIT code
    "IC": ((0.274, 0.274, 0.380), (0, 0, 0)),  # intercept / vacant code
    "VC": ((0.380, 0.274, 0.380), (1, 0, 0)),  # vacant code
    "NC": ((0.380, 0.380, 0.380), (0, 0, 0)),  # no circuit
    "RO": ((0.274, 0.380, 0.380), (1, 0, 0)),  # reorder
    "IO": ((0.380, 0.274, 0.380), (0, 1, 0)),
}


def sit(rng: np.random.Generator, code: str | None = None) -> tuple[np.ndarray, str]:
    """The three rising special information tones (unit amplitude) -> (samples, code)."""
    code = code or str(rng.choice(list(SIT_CODES)))
    durs, highs = SIT_CODES[code]
    parts = []
    for i, (d, hi) in enumerate(zip(durs, highs)):
        f = (SIT_HIGH_HZ if hi else SIT_HZ)[i]
        parts.append(ramp(tone(f, d), 3))
        parts.append(np.zeros(int(rng.uniform(0, 0.004) * SR)))
    return np.concatenate(parts), code


def ringback(dur_s: float, on_s: float = 2.0, off_s: float = 4.0, phase_s: float = 0.0) -> np.ndarray:
    """North American ringback: 440 + 480 Hz, 2 s on / 4 s off (unit amplitude per tone)."""
    n = int(round(dur_s * SR))
    t = np.arange(n) / SR + phase_s
    x = 0.5 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t))
    cyc = t % (on_s + off_s)
    gate = np.clip(np.minimum(cyc, on_s - cyc) / 0.01, 0, 1)
    return x * gate


def uk_ringback(dur_s: float, phase_s: float = 0.0) -> np.ndarray:
    """UK/European-style ringback: 400 + 450 Hz, 0.4 s on, 0.2 s off, 0.4 s on, 2 s off."""
    n = int(round(dur_s * SR))
    t = np.arange(n) / SR + phase_s
    x = 0.5 * (np.sin(2 * np.pi * 400 * t) + np.sin(2 * np.pi * 450 * t))
    cyc = t % 3.0
    on = (cyc < 0.4) | ((cyc >= 0.6) & (cyc < 1.0))
    gate = np.convolve(on.astype(np.float64), np.ones(80) / 80, mode="same")  # 10 ms edges
    return x * gate


_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 1, 4))


def _note(hz: float, dur_s: float, timbre: str, rng: np.random.Generator) -> np.ndarray:
    n = int(round(dur_s * SR))
    t = np.arange(n) / SR
    x = np.zeros(n)
    vib = 1 + 0.003 * np.sin(2 * np.pi * rng.uniform(4.5, 6) * t) if timbre != "pluck" else 1.0
    for k in range(1, 9):
        if hz * k > 3_600:
            break
        a = (1.0 / k) if timbre != "organ" else (1.0 if k in (1, 2, 4) else 0.3) / k**0.5
        x += a * np.sin(2 * np.pi * hz * k * np.cumsum(np.broadcast_to(vib, t.shape)) / SR + rng.uniform(0, 6.28))
    if timbre == "pluck":
        env = np.exp(-t / rng.uniform(0.25, 0.6))
    else:
        env = np.minimum(1, t / 0.03) * (0.75 + 0.25 * np.exp(-t / 0.3))
    rel = min(n, int(0.06 * SR))
    env[-rel:] *= np.linspace(1, 0, rel)
    return x * env


def _mix_in(out: np.ndarray, x: np.ndarray, at: int) -> None:
    m = min(len(x), len(out) - at)
    if m > 0:
        out[at : at + m] += x[:m]


def music(rng: np.random.Generator, dur_s: float) -> np.ndarray:
    """Hold-music-like audio: chords that change every 0.8-2 s, a bass line and a melody whose
    notes change every 0.2-0.5 s. Unit-ish RMS."""
    n = int(round(dur_s * SR))
    out = np.zeros(n + SR)
    root = 196.0 * 2 ** (int(rng.integers(0, 12)) / 12)
    timbre = str(rng.choice(["pad", "organ", "pluck"]))
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    chord_s = float(rng.uniform(0.8, 2.0))

    def scale_hz(degree: int, octave: int = 0) -> float:
        o, d = divmod(degree, 7)
        return root * 2 ** ((_MAJOR[d] + 12 * (o + octave)) / 12)

    pos = 0.0
    ci = 0
    while pos < dur_s:
        deg = prog[ci % len(prog)]
        a = int(pos * SR)
        for _j, step in enumerate((0, 2, 4)):
            _mix_in(out, _note(scale_hz(deg + step), chord_s, timbre, rng) * 0.35, a)
        _mix_in(out, _note(scale_hz(deg, -1), chord_s, "pad", rng) * 0.5, a)
        mpos = pos
        while mpos < pos + chord_s:
            d = float(rng.choice([0.2, 0.25, 0.375, 0.5]))
            mdeg = deg + int(rng.choice([0, 2, 4, 5, 7]))
            if rng.random() < 0.85:
                _mix_in(out, _note(scale_hz(mdeg, 1), d, timbre, rng) * 0.45, int(mpos * SR))
            mpos += d
        pos += chord_s
        ci += 1
    out = out[:n]
    return ramp(out / (np.sqrt(np.mean(out**2)) + 1e-12), 20)

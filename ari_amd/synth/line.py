"""The telephone line: background noise, band-pass, levels, clipping, G.711, packet loss.

All functions work on float64/float32 arrays at 8 kHz with full scale = 1.0, except
``LineResult.samples`` (int16, what the caller hears).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ari_amd.detect.g711 import ALAW_TO_LINEAR, decode_ulaw, encode_ulaw

SR = 8_000
BAND = (300.0, 3_400.0)
SPEECH_PEAK = 0.95  # speech peaks (phone band) stay below this unless the line is hot
NOISE_KINDS = ("white", "pink", "brown", "hum60", "babble4", "street_steps")
# Not drawn by LineConfig.random (that would change every existing clip): the families use them.
EXTRA_NOISE_KINDS = ("babble6", "crackle", "street_swell", "room_music")
CODECS = ("ulaw", "alaw")


# ---------------------------------------------------------------------------------------------
# Filters and levels


def bandpass(x: np.ndarray, lo: float = BAND[0], hi: float = BAND[1], sr: int = SR) -> np.ndarray:
    """Zero-phase FFT band-pass with Butterworth-like skirts (3rd order low, 10th order high),
    the shape of a telephone channel: -3 dB at ``lo`` and ``hi``, ~-15 dB at 4 kHz."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return x
    pad = 2_048
    n = len(x) + pad
    nfft = 1 << int(np.ceil(np.log2(n)))
    X = np.fft.rfft(x, nfft)
    f = np.maximum(np.fft.rfftfreq(nfft, 1 / sr), 1e-3)
    H = 1.0 / np.sqrt(1 + (lo / f) ** 6) / np.sqrt(1 + (f / hi) ** 20)
    return np.fft.irfft(X * H, nfft)[: len(x)]


def lowpass(x: np.ndarray, hz: float, order: int = 4, sr: int = SR) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    nfft = 1 << int(np.ceil(np.log2(len(x) + 2_048)))
    X = np.fft.rfft(x, nfft)
    f = np.fft.rfftfreq(nfft, 1 / sr)
    return np.fft.irfft(X / np.sqrt(1 + (f / hz) ** (2 * order)), nfft)[: len(x)]


def rms(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0


def db(v: float) -> float:
    return float(20 * np.log10(max(v, 1e-12)))


def frame_db(x: np.ndarray, frame: int = 80) -> np.ndarray:
    """Power of consecutive ``frame``-sample frames (10 ms at 8 kHz), dBFS."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x) // frame
    if n == 0:
        return np.zeros(0)
    p: NDArray[np.float64] = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    return 10 * np.log10(p + 1e-20)


def active_level(x: np.ndarray, floor_db: float = 40.0) -> float:
    """RMS over the 10 ms frames within ``floor_db`` of the loudest: the level of speech
    while it is speaking (pauses and silence do not count), linear."""
    e = frame_db(x)
    if len(e) == 0:
        return 0.0
    act = e > e.max() - floor_db
    return float(np.sqrt(np.mean(10 ** (e[act] / 10))))


def activity(x: np.ndarray, floor_db: float = 40.0, ref_db: float | None = None) -> np.ndarray:
    """Per 10 ms frame: is there sound (within ``floor_db`` of the loudest frame or of ref_db)."""
    e = frame_db(x)
    if len(e) == 0:
        return np.zeros(0, dtype=bool)
    top = e.max() if ref_db is None else ref_db
    return e > top - floor_db


# ---------------------------------------------------------------------------------------------
# Noise: each returns ``n`` samples with unit RMS inside the 300-3400 Hz band


def _unit_band(x: np.ndarray) -> np.ndarray:
    return x / (rms(bandpass(x)) + 1e-20)


def _colored(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """1/f**exponent power spectrum."""
    nfft = 1 << int(np.ceil(np.log2(max(n, 2))))
    spec = rng.normal(0, 1, nfft // 2 + 1) + 1j * rng.normal(0, 1, nfft // 2 + 1)
    f = np.fft.rfftfreq(nfft, 1 / SR)
    f[0] = f[1]
    spec *= f ** (-exponent / 2)
    return np.fft.irfft(spec, nfft)[:n]


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return _unit_band(rng.normal(0, 1, n))


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return _unit_band(_colored(n, rng, 1.0))


def brown_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Rumble: 1/f^2 with the lowest octaves rolled off so it is not just DC drift."""
    x = _colored(n, rng, 2.0)
    nfft = 1 << int(np.ceil(np.log2(max(n, 2) + 2_048)))
    X = np.fft.rfft(x, nfft)
    f = np.maximum(np.fft.rfftfreq(nfft, 1 / SR), 1e-3)
    x = np.fft.irfft(X / np.sqrt(1 + (20.0 / f) ** 4), nfft)[:n]
    return _unit_band(x)


def hum_noise(n: int, rng: np.random.Generator, mains: float = 60.0) -> np.ndarray:
    """Mains buzz: the fundamental and harmonics to ~2 kHz (odd ones stronger), drifting
    slightly in level, over a faint hiss."""
    t = np.arange(n) / SR
    f0 = mains * (1 + rng.normal(0, 3e-4))
    x = np.zeros(n)
    for k in range(1, int(2_000 / f0) + 1):
        amp = (1.0 if k % 2 else 0.45) / k**0.7 * 10 ** (rng.normal(0, 3) / 20)
        drift = 1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 6.3))
        x += amp * drift * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    t = np.arange(n) / SR
    wobble = 1 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.3, 2.0) * t + rng.uniform(0, 6.3))
    x = _unit_band(x) * wobble
    return x + float(rng.uniform(0.1, 0.3)) * pink_noise(n, rng)


def street_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Low-passed noise whose loudness steps every 0.05-0.4 s (traffic, voices, a door), with
    the odd vehicle swelling past."""
    base = lowpass(_colored(n, rng, 1.0), float(rng.uniform(600, 1_000)), order=2)
    gain_db = np.zeros(n)
    pos = 0
    lvl = 0.0
    while pos < n:
        seg = int(rng.uniform(0.05, 0.4) * SR)
        lvl = float(np.clip(lvl + rng.choice([-1, 1]) * rng.uniform(1, 6), -6, 6))
        gain_db[pos : pos + seg] = lvl
        pos += seg
    # and a flutter: a fresh +-2 dB every 40-80 ms
    block = int(rng.uniform(0.04, 0.08) * SR)
    gain_db += np.repeat(rng.normal(0, 2.0, n // block + 1), block)[:n]
    ramp = int(rng.uniform(0.005, 0.03) * SR)
    k = np.hanning(ramp) / np.hanning(ramp).sum()
    gain_db = np.convolve(np.pad(gain_db, ramp, mode="edge"), k, mode="same")[ramp:-ramp]
    t = np.arange(n) / SR
    for _ in range(int(rng.poisson(n / SR / 6))):
        c, w = rng.uniform(0, n / SR), rng.uniform(1.0, 3.0)
        gain_db += rng.uniform(3, 6) * np.exp(-0.5 * ((t - c) / (w / 2.5)) ** 2)
    return _unit_band(base * 10 ** (gain_db / 20))


def babble_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    from ari_amd.synth.voice import babble  # local: voice imports nothing from here

    return _unit_band(babble(n / SR + 0.01, rng)[:n].astype(np.float64))


def babble6_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Six talkers: denser than babble4, fewer gaps to hear through."""
    from ari_amd.synth.voice import babble

    return _unit_band(babble(n / SR + 0.01, rng, talkers=6)[:n].astype(np.float64))


def crackle_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """A bad line: faint hiss plus clicks (short decaying impulses) in random bursts."""
    x = 0.15 * _colored(n, rng, 0.5)
    clicks = np.zeros(n)
    rate = float(rng.uniform(15, 60))  # clicks per second while crackling
    burst_on = np.repeat(rng.random(n // 800 + 1) < 0.45, 800)[:n]  # 100 ms blocks that crackle
    hits = np.nonzero((rng.random(n) < rate / SR) & burst_on)[0]
    clicks[hits] = rng.choice([-1.0, 1.0], len(hits)) * rng.lognormal(0, 0.7, len(hits))
    decay = np.exp(-np.arange(24) / float(rng.uniform(2, 6)))
    x += np.convolve(clicks, decay)[:n]
    return _unit_band(x)


def street_swell_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Traffic that swells and fades (a vehicle passing every few seconds, +6..+15 dB over a
    low rumble): the noise floor moves as fast as speech does."""
    base = lowpass(_colored(n, rng, 1.2), float(rng.uniform(500, 1_200)), order=2)
    t = np.arange(n) / SR
    gain_db = np.full(n, -8.0)
    c = float(rng.uniform(-1, 2))
    while c < n / SR + 2:
        w = float(rng.uniform(1.0, 4.0))
        gain_db = np.maximum(gain_db, -8 + rng.uniform(6, 15) * np.exp(-0.5 * ((t - c) / (w / 2.5)) ** 2))
        c += float(rng.uniform(1.5, 5.0))
    return _unit_band(base * 10 ** (gain_db / 20))


def room_music_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Music playing in the room behind the speaker: chords, dulled by distance."""
    from ari_amd.synth.tones import music

    x = lowpass(music(rng, n / SR + 0.01)[:n], float(rng.uniform(1_500, 2_500)), order=2)
    return _unit_band(x + 0.05 * _colored(n, rng, 1.0))


def make_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of background noise of one of NOISE_KINDS or EXTRA_NOISE_KINDS, unit RMS
    in the phone band."""
    if n <= 0:
        return np.zeros(0)
    makers = {
        "white": white_noise,
        "pink": pink_noise,
        "brown": brown_noise,
        "hum60": hum_noise,
        "babble4": babble_noise,
        "street_steps": street_noise,
        "babble6": babble6_noise,
        "crackle": crackle_noise,
        "street_swell": street_swell_noise,
        "room_music": room_music_noise,
    }
    if kind not in makers:
        raise ValueError(f"unknown noise kind {kind!r}; one of {', '.join(NOISE_KINDS + EXTRA_NOISE_KINDS)}")
    return makers[kind](n, rng)


# ---------------------------------------------------------------------------------------------
# The channel


@dataclass
class LineConfig:
    """How one call's line behaves. ``Line.random`` draws one the way the dev corpus did."""

    noise: str | None = "pink"  # None: digital silence between sounds
    snr_db: float = 25.0  # speech (or reference tone) over noise, both in 300-3400 Hz
    level_dbfs: float = -18.0  # active speech level after the line
    hot: bool = False  # a hot line: level -9..-3 dBFS, clipping at full scale
    clip_pct: float = 0.0  # mild clipping inside the line, % of samples
    ulaw: bool = True  # G.711 mu-law round trip, then a small level change
    level_change_db: float = 0.0
    dropouts: list[tuple[int, int]] = field(default_factory=list)  # (start_ms, length_ms)
    codec: str = "ulaw"  # which G.711 law the round trip uses (when ``ulaw`` is true)
    noise_dbfs: float | None = None  # the noise's own level in the phone band, overriding snr_db
    full_scale_pct: float = 0.0  # a hot line: drive speech until this % of its samples hit full scale

    @classmethod
    def random(cls, rng: np.random.Generator, duration_ms: int, **overrides: Any) -> LineConfig:
        hot = bool(rng.random() < 2 / 27)
        cfg = cls(
            noise=str(rng.choice(NOISE_KINDS)),
            snr_db=float(np.round(rng.uniform(5, 40), 1)),
            level_dbfs=float(rng.uniform(-9, -3) if hot else rng.uniform(-25, -9)),
            hot=hot,
            clip_pct=float(rng.uniform(0.3, 2.0)) if (not hot and rng.random() < 1 / 27) else 0.0,
            ulaw=True,
            level_change_db=float(rng.uniform(-1.0, 0.5)),
        )
        if rng.random() < 3 / 27:
            cfg.dropouts = random_dropouts(rng, duration_ms)
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise TypeError(f"unknown line setting {k!r}")
            setattr(cfg, k, v)
        return cfg


@dataclass
class LineResult:
    samples: np.ndarray  # int16 at 8 kHz
    speech_level_dbfs: float | None  # after the line's gain
    gain_db: float  # applied to everything so peaks stay below full scale
    clipped_pct: float
    dropouts: list[tuple[int, int]]


def g711_round_trip(pcm: np.ndarray, law: str = "ulaw") -> np.ndarray:
    """int16 -> G.711 ``law`` -> int16: what a trunk of that law does to the audio."""
    if law == "ulaw":
        return decode_ulaw(encode_ulaw(pcm))
    if law != "alaw":
        raise ValueError(f"law must be one of {CODECS}")
    # nearest A-law level: G.711 decodes to the middle of each step, so nearest == encode+decode
    levels = np.unique(ALAW_TO_LINEAR.astype(np.int32))
    x = np.asarray(pcm, dtype=np.int32)
    i = np.clip(np.searchsorted(levels, x), 1, len(levels) - 1)
    lo, hi = levels[i - 1], levels[i]
    return np.where(x - lo <= hi - x, lo, hi).astype(np.int16)


def random_dropouts(rng: np.random.Generator, duration_ms: int) -> list[tuple[int, int]]:
    """1-5 losses of 20-60 ms anywhere in the call."""
    k = int(rng.integers(1, 6))
    return [(int(rng.integers(0, max(1, duration_ms - 60))), int(rng.integers(20, 61))) for _ in range(k)]


def transmit(
    n: int,
    speech: np.ndarray | None,
    other: np.ndarray | None,
    cfg: LineConfig,
    rng: np.random.Generator,
    ref_dbfs: float | None = None,
) -> LineResult:
    """Put one call's far-end audio through the line.

    ``speech``: the speech track (any scale): its active level in the phone band is set to
    ``cfg.level_dbfs``. ``other``: tones, music, fax, already at their own absolute levels
    (full scale 1.0). The noise sits ``cfg.snr_db`` below the speech level, or below
    ``ref_dbfs`` (e.g. the fax tone's level) when there is no speech, or at ``cfg.level_dbfs``
    itself when there is neither (a line with nothing but noise). Then: band-pass, gain that
    keeps peaks below full scale (or a hot line clipping at full scale), mild clipping,
    mu-law round trip and a small level change, dropouts.
    """
    mix = np.zeros(n)
    has_speech = speech is not None and bool(np.any(speech))
    speech_db = cfg.level_dbfs
    if has_speech:
        sp_band = bandpass(np.asarray(speech, dtype=np.float64)[:n])
        g = 10 ** (cfg.level_dbfs / 20) / max(active_level(sp_band), 1e-12)
        peak = float(np.max(np.abs(sp_band))) * g
        if not cfg.hot and peak > SPEECH_PEAK:
            # the far end's gain keeps speech peaks below full scale: a loud talker is turned down
            g *= SPEECH_PEAK / peak
            speech_db = cfg.level_dbfs + db(SPEECH_PEAK / peak)
        mix += np.asarray(speech, dtype=np.float64)[:n] * g
        ref = speech_db
    elif ref_dbfs is not None:
        ref = ref_dbfs
    else:
        ref = cfg.level_dbfs + cfg.snr_db  # so that the noise lands at cfg.level_dbfs
    if other is not None:
        mix += np.asarray(other, dtype=np.float64)[:n]
    if cfg.noise:
        if cfg.noise_dbfs is not None:  # the noise's level is the given one: the SNR follows from it
            cfg.snr_db = float(round(ref - cfg.noise_dbfs, 1))
        noise_db = ref - cfg.snr_db
        mix += make_noise(cfg.noise, n, rng) * 10 ** (noise_db / 20)
    mix = bandpass(mix)
    gain = 1.0
    clipped = 0.0
    if cfg.full_scale_pct > 0 and has_speech:
        # drive the whole line (speech and all) until that share of the sounding speech
        # samples sits at full scale: a loud talker on a line with too much gain
        on = np.repeat(activity(bandpass(np.asarray(speech, dtype=np.float64)[:n])), 80)
        on = np.concatenate([on, np.zeros(max(0, n - len(on)), dtype=bool)])[:n]
        peak_q = float(np.quantile(np.abs(mix[on]), 1 - cfg.full_scale_pct / 100)) if on.any() else 1.0
        gain = 1.0 / max(peak_q, 1e-9)
        mix *= gain
        clipped = float(np.mean(np.abs(mix[on]) >= 1.0) * 100) if on.any() else 0.0
        mix = np.clip(mix, -1.0, 1.0)
    elif cfg.hot:
        clipped = float(np.mean(np.abs(mix) >= 1.0) * 100)
        mix = np.clip(mix, -1.0, 1.0)
    else:
        peak = float(np.max(np.abs(mix))) if n else 0.0
        if peak > 0.99:
            gain = 0.99 / peak
            mix *= gain
        if cfg.clip_pct > 0 and n:
            thr = float(np.quantile(np.abs(mix), 1 - cfg.clip_pct / 100))
            clipped = float(np.mean(np.abs(mix) > thr) * 100)
            mix = np.clip(mix, -thr, thr)
    pcm = np.clip(np.round(mix * 32768), -32768, 32767).astype(np.int16)
    if cfg.ulaw:
        pcm = g711_round_trip(pcm, cfg.codec)
        k = 10 ** (cfg.level_change_db / 20)
        pcm = np.clip(np.round(pcm.astype(np.float64) * k), -32768, 32767).astype(np.int16)
        gain *= k
    for start, length in cfg.dropouts:
        a = start * SR // 1000
        pcm[a : a + length * SR // 1000] = 0
    return LineResult(
        samples=pcm,
        speech_level_dbfs=speech_db + db(gain) if has_speech else None,
        gain_db=db(gain),
        clipped_pct=clipped,
        dropouts=list(cfg.dropouts),
    )

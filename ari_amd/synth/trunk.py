"""What a trunk does to the call after the far end's line: a compressed (GSM-like) leg, band
limits, and packet loss with or without concealment. Each works on int16 samples at 8 kHz
(``Clip.samples``) and returns new ones; the families (``families.py``) apply them to clips.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import numpy as np

from ari_amd.synth.line import SR, bandpass

FRAME = 160  # 20 ms: one RTP packet of G.711
SOX = "sox"


def sox_has_gsm() -> bool:
    """Debian's sox (package ``sox``, libsox-fmt-base) encodes and decodes GSM 06.10."""
    if shutil.which(SOX) is None:
        return False
    try:
        out = subprocess.run([SOX, "-h"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.startswith("AUDIO FILE FORMATS") and " gsm " in f"{line} " for line in out.splitlines())


def gsm_round_trip(pcm: np.ndarray) -> tuple[np.ndarray, str]:
    """int16 -> GSM 06.10 full rate -> int16 with sox; without sox's GSM a numpy
    approximation. -> (samples, which one was used: "gsm0610" or "gsm-like")."""
    x = np.asarray(pcm, dtype=np.int16)
    if sox_has_gsm():
        raw = ["-t", "raw", "-r", str(SR), "-e", "signed", "-b", "16", "-c", "1"]
        enc = subprocess.run(
            [SOX, "-R", *raw, "-", "-t", "gsm", "-"], input=x.tobytes(), capture_output=True, check=True
        )
        dec = subprocess.run([SOX, "-R", "-t", "gsm", "-r", str(SR), "-", *raw, "-"], input=enc.stdout,
                             capture_output=True, check=True)
        y = np.frombuffer(dec.stdout, dtype=np.int16)
        out = np.zeros(len(x), dtype=np.int16)
        out[: min(len(x), len(y))] = y[: len(x)]
        return out, "gsm0610"
    return gsm_like(x), "gsm-like"


def gsm_like(pcm: np.ndarray) -> np.ndarray:
    """A stand-in for a 13 kbit/s codec when sox's GSM is absent: per 20 ms frame, the
    spectrum's envelope is kept only to 16 coarse bands quantised in 2 dB steps and the fine
    structure weaker than 25 dB under the frame's peak is dropped: the smeared, slightly
    rough sound of a low-rate speech codec, not its bit-exact output."""
    x = np.asarray(pcm, dtype=np.float64) / 32768
    n = len(x)
    if n < FRAME:
        return np.asarray(pcm, dtype=np.int16).copy()
    win = np.sqrt(np.hanning(2 * FRAME + 1)[:-1])  # sine window: analysis x synthesis sums to 1 at 50%
    pad = np.concatenate([np.zeros(FRAME), x, np.zeros(2 * FRAME)])
    starts = np.arange(0, len(pad) - 2 * FRAME + 1, FRAME)
    frames = np.stack([pad[s : s + 2 * FRAME] for s in starts]) * win
    spec = np.fft.rfft(frames, axis=1)
    mag = np.abs(spec)
    edges = np.linspace(0, mag.shape[1], 17).astype(int)
    env = np.zeros_like(mag)
    for a, b in zip(edges[:-1], edges[1:]):
        band_db = 10 * np.log10(np.mean(mag[:, a:b] ** 2, axis=1) + 1e-12)
        env[:, a:b] = (10 ** (np.round(band_db / 2) * 2 / 20))[:, None]
    fine = mag / (np.sqrt(np.mean(mag**2, axis=1, keepdims=True)) + 1e-12)
    keep = mag > mag.max(axis=1, keepdims=True) * 10 ** (-25 / 20)
    new = env * np.minimum(fine, 4.0) * keep * np.exp(1j * np.angle(spec))
    y_frames = np.fft.irfft(new, 2 * FRAME, axis=1) * win
    y = np.zeros(len(pad))
    for k, s in enumerate(starts):
        y[s : s + 2 * FRAME] += y_frames[k]
    y = bandpass(y[FRAME : FRAME + n], 200, 3_400)
    # the envelope above is a power per band: match the input's loudness frame by frame
    gain: float = np.sqrt(np.mean(x**2)) / (np.sqrt(np.mean(y**2)) + 1e-12)
    return np.clip(np.round(y * gain * 32768), -32768, 32767).astype(np.int16)


def band_limit(pcm: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """A narrower channel than 300-3400 Hz (old trunks, cellular legs)."""
    y = bandpass(np.asarray(pcm, dtype=np.float64) / 32768, lo, hi)
    return np.clip(np.round(y * 32768), -32768, 32767).astype(np.int16)


@dataclass
class Loss:
    samples: np.ndarray
    lost_frames: list[int]  # indices of the 20 ms frames that were lost
    frames: int  # how many 20 ms frames the call has
    conceal: bool

    @property
    def pct(self) -> float:
        return 100.0 * len(self.lost_frames) / max(self.frames, 1)

    def note(self) -> str:
        how = "repeat-and-fade concealment" if self.conceal else "no concealment (zeros)"
        return f"packet loss {self.pct:.1f}% of 20 ms frames ({len(self.lost_frames)}), {how}"


def packet_loss(pcm: np.ndarray, rng: np.random.Generator, pct: float, conceal: bool,
                burst: float = 0.3) -> Loss:
    """Lose exactly round(pct% of the call's 20 ms frames), some in bursts (a lost frame's
    neighbour is lost with probability ``burst``). Without concealment a lost frame is
    silence (what a receiver that plays nothing does); with it, the last good frame is
    repeated, fading 6 dB per consecutive loss to silence after 5 (G.711 Appendix I style),
    joined with short crossfades."""
    x = np.asarray(pcm, dtype=np.int16)
    frames = len(x) // FRAME
    want = int(round(frames * pct / 100))
    lost: set[int] = set()
    while len(lost) < min(want, frames):
        f = int(rng.integers(0, frames))
        while f < frames and len(lost) < want:
            lost.add(f)
            if rng.random() >= burst:
                break
            f += 1
    y = x.astype(np.float64)
    run = 0
    last_good = np.zeros(FRAME)
    tail_gain = 0.0  # the concealment's gain at the end of the last lost frame
    for f in range(frames):
        a = f * FRAME
        if f not in lost:
            if run and conceal:  # 5 ms crossfade from the concealment into the real signal
                k = np.linspace(0, 1, 40)
                y[a : a + 40] = y[a : a + 40] * k + last_good[:40] * tail_gain * (1 - k)
            last_good = y[a : a + FRAME].copy()
            run = 0
            continue
        run += 1
        if not conceal:
            y[a : a + FRAME] = 0.0
            continue
        g0 = _conceal_gain(run - 1)
        tail_gain = _conceal_gain(run)
        y[a : a + FRAME] = last_good * np.linspace(g0, tail_gain, FRAME)
    return Loss(np.clip(np.round(y), -32768, 32767).astype(np.int16), sorted(lost), frames, conceal)


def _conceal_gain(run: int) -> float:
    """Gain of the repeated frame after ``run`` lost frames: -6 dB each, silence after 5."""
    return 10 ** (-6 * run / 20) if run < 5 else 0.0

"""Per-frame features, computed for many 20 ms frames in one vectorised step.

Energy says *whether* something is there, periodicity says *whether it is voiced*,
and the spectral peaks say *whether it is a tone and at what pitch*. Everything the
state machines need is here, so the per-frame Python work above stays small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 8_000
FRAME = 160  # 20 ms at 8 kHz: one RTP packet, the detector's clock tick
FRAME_MS = 20
NFFT = 256  # 31.25 Hz bins; 160 samples + 96 lags of zero padding keep the autocorrelation linear
BIN_HZ = SAMPLE_RATE / NFFT
BAND_LO = 8  # 250 Hz: below is hum and rumble, not voice or beep
BAND_HI = 113  # 3531 Hz: the telephone band's top
PITCH_LAGS = slice(20, 101)
CPT_BINS = slice(int(350 / BIN_HZ), int(550 / BIN_HZ) + 1)
FSK_BINS = slice(int(1_550 / BIN_HZ), int(1_950 / BIN_HZ) + 1)  # 80-400 Hz fundamental
FLOOR_DB = -100.0  # digital silence reads as this, not -inf
DEAD_DB = -90.0  # below this a frame is digital silence: a lost packet filled with zeros

_WINDOW = np.hanning(FRAME).astype(np.float32)
_LAG_CORRECTION = (FRAME / (FRAME - np.arange(PITCH_LAGS.start, PITCH_LAGS.stop))).astype(np.float32)


@dataclass(frozen=True)
class Features:
    """One row per frame."""

    energy_db: np.ndarray  # frame power, dBFS
    band_db: np.ndarray  # power in 250-3500 Hz, dBFS-like
    periodicity: np.ndarray  # normalised autocorrelation peak at a voice pitch lag, 0..1
    peak_hz: np.ndarray  # strongest spectral peak in band (interpolated)
    peak_frac: np.ndarray  # share of band power within +-1 bin of that peak
    peak2_hz: np.ndarray  # second peak, at least 4 bins away
    peak2_frac: np.ndarray
    fsk_frac: np.ndarray  # share of band power in 1550-1950 Hz: V.21 fax signalling lives there
    cpt_frac: np.ndarray  # share in 350-550 Hz: ringback (440+480, 400+450, 425) lives there

    def __len__(self) -> int:
        return len(self.energy_db)


def analyze(frames: np.ndarray) -> Features:
    """frames: float32 [n, FRAME], full scale = 1.0."""
    n = frames.shape[0]
    power = np.einsum("ij,ij->i", frames, frames) / FRAME
    energy_db = 10.0 * np.log10(power + 1e-10)

    spectrum = np.fft.rfft(frames * _WINDOW, NFFT, axis=1)
    psd = spectrum.real**2 + spectrum.imag**2
    band = psd[:, BAND_LO:BAND_HI]
    band_total = band.sum(axis=1) + 1e-12
    rows = np.arange(n)

    def peak(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = np.argmax(b, axis=1)
        km, kp = np.maximum(k - 1, 0), np.minimum(k + 1, b.shape[1] - 1)
        left, mid, right = b[rows, km], b[rows, k], b[rows, kp]
        frac = (left + mid + right) / band_total
        # Parabolic interpolation on log power: ~3 Hz accuracy for a clean tone.
        la, lb, lc = (np.log(v + 1e-20) for v in (left, mid, right))
        denom = la - 2 * lb + lc
        offset = np.where(np.abs(denom) > 1e-9, 0.5 * (la - lc) / np.where(denom == 0, 1, denom), 0.0)
        return k, (k + BAND_LO + np.clip(offset, -0.5, 0.5)) * BIN_HZ, frac

    k1, hz1, frac1 = peak(band)
    cols = np.arange(band.shape[1])
    masked = np.where(np.abs(cols[None, :] - k1[:, None]) <= 3, 0.0, band)
    _, hz2, frac2 = peak(masked)

    # Autocorrelation from the unwindowed spectrum (zero-padded, so linear up to 96 lags).
    raw = np.fft.rfft(frames, NFFT, axis=1)
    acf = np.fft.irfft(raw.real**2 + raw.imag**2, NFFT, axis=1)
    periodicity = (acf[:, PITCH_LAGS] * _LAG_CORRECTION).max(axis=1) / (acf[:, 0] + 1e-10)

    fsk_frac = psd[:, FSK_BINS].sum(axis=1) / band_total
    cpt_frac = psd[:, CPT_BINS].sum(axis=1) / band_total
    band_db = 10.0 * np.log10(band_total * (2.0 / (NFFT * FRAME * 0.375)) + 1e-10)
    return Features(
        energy_db=np.maximum(energy_db, FLOOR_DB).astype(np.float32),
        band_db=np.maximum(band_db, FLOOR_DB).astype(np.float32),
        periodicity=np.clip(periodicity, 0.0, 1.0).astype(np.float32),
        peak_hz=hz1.astype(np.float32),
        peak_frac=frac1.astype(np.float32),
        peak2_hz=hz2.astype(np.float32),
        peak2_frac=frac2.astype(np.float32),
        fsk_frac=np.clip(fsk_frac, 0.0, 1.0).astype(np.float32),
        cpt_frac=np.clip(cpt_frac, 0.0, 1.0).astype(np.float32),
    )

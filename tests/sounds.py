"""Small signal builders for tests: tones, noise, silence at 8 kHz int16. Speech comes from ari_amd.synth."""

from __future__ import annotations

import numpy as np

SR = 8_000


def ms(n: int) -> int:
    return SR * n // 1000


def silence(duration_ms: int) -> np.ndarray:
    return np.zeros(ms(duration_ms))


def noise(duration_ms: int, dbfs: float = -60.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(ms(duration_ms)) * 10 ** (dbfs / 20)


def tone(hz: float | tuple[float, ...], duration_ms: int, dbfs: float = -12.0) -> np.ndarray:
    t = np.arange(ms(duration_ms)) / SR
    freqs = hz if isinstance(hz, tuple) else (hz,)
    x = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    ramp = min(len(t) // 2, ms(5))  # 5 ms ramps: no clicks
    env = np.ones(len(t))
    env[:ramp] = np.linspace(0, 1, ramp)
    env[len(t) - ramp :] = np.linspace(1, 0, ramp)
    return x * env * np.sqrt(2) * 10 ** (dbfs / 20)


def phase_reversed_tone(hz: float, duration_ms: int, every_ms: int, dbfs: float = -12.0) -> np.ndarray:
    """V.25 answer tone with 180-degree phase reversals."""
    t = np.arange(ms(duration_ms)) / SR
    flips = np.where((np.arange(len(t)) // ms(every_ms)) % 2 == 1, np.pi, 0.0)
    return np.sin(2 * np.pi * hz * t + flips) * np.sqrt(2) * 10 ** (dbfs / 20)


def line(*parts: np.ndarray, noise_dbfs: float = -60.0, seed: int = 0) -> np.ndarray:
    """Concatenate parts over a constant line noise; return int16."""
    x = np.concatenate(parts)
    x = x + np.random.default_rng(seed).standard_normal(len(x)) * 10 ** (noise_dbfs / 20)
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)

"""How speech-like is the speech? Statistics of the first utterance of every speech clip in a
labelled folder (the dev corpus or one written by ``write_corpus``), for comparing the two:

    python -m ari_amd.synth.compare ../shared/corpus/dev /tmp/synth --min-snr 25

For each folder, the median (and 10th-90th percentile) over clips of:

* ``mod_centroid_hz`` / ``mod_2_8``: the 10 ms energy envelope's modulation spectrum
  (0.5-20 Hz) centroid and share in 2-8 Hz: syllabic rhythm.
* ``env_std_db``: spread of 10 ms frame levels over the sounding frames: how far from flat.
* ``flatness``: spectral flatness (300-3400 Hz) of loud 32 ms frames: harmonic vs noisy.
* ``centroid_hz``: spectral centroid of loud frames.
* ``peak_frac``: share of the band's power within +-31 Hz of the strongest peak (20 ms
  frames), median: how tone-like a frame is.
* ``tone_run_ms``: longest run of loud frames whose strongest peak holds >= 60% of the band
  and moves < 12 Hz per frame: the longest stretch a naive beep detector could mistake.
* ``f0_hz`` / ``f0_range_st``: median pitch and its 10-90th percentile range in semitones.
* ``ltas_hi_db``: long-term spectrum, 2.75-3.4 kHz relative to 250-750 Hz.

Only numpy; nothing here is used by the generator itself.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ari_amd.audio import load

SR = 8_000


def _frames(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    m = 1 + (len(x) - n) // hop
    if m <= 0:
        return np.zeros((0, n))
    frames: NDArray[np.float64] = x[np.arange(n)[None, :] + hop * np.arange(m)[:, None]]
    return frames


def speech_stats(x: np.ndarray) -> dict[str, float]:
    """Statistics of one stretch of speech (float, full scale 1)."""
    x = np.asarray(x, dtype=np.float64)
    out: dict[str, float] = {}
    env = np.sqrt(np.mean(_frames(x, 80, 80) ** 2, axis=1) + 1e-12)
    e = env - env.mean()
    spec = np.abs(np.fft.rfft(e * np.hanning(len(e)), 4_096)) ** 2
    fr = np.fft.rfftfreq(4_096, 0.01)
    band = (fr >= 0.5) & (fr <= 20)
    out["mod_centroid_hz"] = float((fr[band] * spec[band]).sum() / spec[band].sum())
    out["mod_2_8"] = float(spec[(fr >= 2) & (fr <= 8)].sum() / spec[band].sum())
    edb = 20 * np.log10(env)
    out["env_std_db"] = float(edb[edb > edb.max() - 40].std())

    f32 = _frames(x, 256, 128) * np.hanning(256)
    P = np.abs(np.fft.rfft(f32, axis=1)) ** 2 + 1e-12
    fq = np.fft.rfftfreq(256, 1 / SR)
    b = (fq >= 300) & (fq <= 3_400)
    lvl = 10 * np.log10(P[:, b].sum(axis=1))
    loud = lvl > lvl.max() - 25
    out["flatness"] = float(np.median((np.exp(np.log(P[:, b]).mean(axis=1)) / P[:, b].mean(axis=1))[loud]))
    out["centroid_hz"] = float(np.median(((P[:, b] * fq[b]).sum(axis=1) / P[:, b].sum(axis=1))[loud]))
    lt = P[loud].mean(axis=0)
    out["ltas_hi_db"] = float(10 * np.log10(lt[(fq >= 2_750) & (fq <= 3_400)].sum()
                                            / lt[(fq >= 250) & (fq < 750)].sum()))

    f20 = _frames(x, 160, 160)
    S = np.abs(np.fft.rfft(f20 * np.hanning(160), 256, axis=1)) ** 2
    lo, hi = 8, 113  # 250-3531 Hz in 31.25 Hz bins
    bandp = S[:, lo:hi]
    k = np.argmax(bandp, axis=1)
    rows = np.arange(len(k))
    frac = (bandp[rows, np.maximum(k - 1, 0)] + bandp[rows, k] + bandp[rows, np.minimum(k + 1, hi - lo - 1)]) / (
        bandp.sum(axis=1) + 1e-20
    )
    e20 = 10 * np.log10(np.mean(f20**2, axis=1) + 1e-20)
    loud20 = e20 > e20.max() - 30
    out["peak_frac"] = float(np.median(frac[loud20]))
    hz = (k + lo) * SR / 256
    run = best = 0
    for i in range(len(k)):
        tonal = loud20[i] and frac[i] >= 0.6
        run = run + 1 if (tonal and run and abs(hz[i] - hz[i - 1]) < 12) else (1 if tonal else 0)
        best = max(best, run)
    out["tone_run_ms"] = float(best * 20)

    f0 = []
    f40 = _frames(x, 320, 80)
    e40 = np.mean(f40**2, axis=1)
    for fr_, en in zip(f40, e40):
        if en < e40.max() * 10**-2.5:
            continue
        fr_ = fr_ - fr_.mean()
        if not fr_.any():
            continue
        ac = np.correlate(fr_, fr_, "full")[319:]
        ac = ac / (ac[0] + 1e-12) * 320 / (320 - np.arange(320))
        seg = ac[SR // 420 : SR // 70]
        if not np.all(np.isfinite(seg)) or seg.max() <= 0:
            continue
        cand = np.nonzero(seg >= 0.9 * seg.max())[0][0]
        while cand + 1 < len(seg) and seg[cand + 1] > seg[cand]:
            cand += 1
        if seg[cand] > 0.55:
            f0.append(SR / (SR // 420 + cand))
    if len(f0) > 10:
        f0a = np.array(f0)
        out["f0_hz"] = float(np.median(f0a))
        out["f0_range_st"] = float(12 * np.log2(np.percentile(f0a, 90) / np.percentile(f0a, 10)))
    return out


def folder_stats(folder: str | Path, min_snr: float = 25.0, min_s: float = 1.5) -> list[dict[str, float]]:
    """speech_stats of the first utterance of every clean enough speech clip in ``folder``."""
    folder = Path(folder)
    out = []
    with open(folder / "labels.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["truth"] not in ("human", "machine") or not r["speech_onset_ms"] or "clipped" in r["notes"]:
                continue
            if float(r["snr_db"] or 0) < min_snr:
                continue
            a, b = int(r["speech_onset_ms"]) * 8, int(r["first_utterance_end_ms"]) * 8
            if (b - a) / SR < min_s:
                continue
            x = load(folder / r["file"]).astype(np.float64) / 32768
            out.append(speech_stats(x[a:b]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ari_amd.synth.compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--min-snr", type=float, default=25.0)
    args = ap.parse_args(argv)
    results = {f: folder_stats(f, args.min_snr) for f in args.folders}
    keys = sorted({k for rs in results.values() for r in rs for k in r})
    print(f"{'':16}" + "".join(f"{Path(f).name[-22:]:>26}" for f in results))
    print(f"{'clips':16}" + "".join(f"{len(rs):>26}" for rs in results.values()))
    for k in keys:
        cells = []
        for rs in results.values():
            v = np.array([r[k] for r in rs if k in r])
            cells.append(f"{np.median(v):.3g} [{np.percentile(v, 10):.3g}-{np.percentile(v, 90):.3g}]"
                         if len(v) else "-")
        print(f"{k:16}" + "".join(f"{c:>26}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

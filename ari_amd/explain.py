"""`ari-amd explain`: one picture of why the detector decided what it did."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ari_amd.detect import Detector, Rule  # noqa: E402
from ari_amd.detect.features import SAMPLE_RATE  # noqa: E402

COLOURS = {
    "speech": "#2e9e4f", "beep": "#d62728", "fax": "#9467bd", "sit": "#ff7f0e", "tone": "#8c564b", "music": "#17becf"
}


def _spans(times: np.ndarray, mask: np.ndarray, step: int) -> list[tuple[int, int]]:
    spans, start = [], None
    for t, m in zip(times, mask):
        if m and start is None:
            start = t - step
        elif not m and start is not None:
            spans.append((start, t - step))
            start = None
    if start is not None:
        spans.append((start, int(times[-1])))
    return spans


def draw(samples: np.ndarray, det: Detector, out: Path, title: str = "") -> None:
    trace = det.trace or []
    params = det.params
    t = np.array([r.t_ms for r in trace]) if trace else np.zeros(1)
    fig, (ax_w, ax_e, ax_s) = plt.subplots(
        3, 1, figsize=(13, 7.5), sharex=True, gridspec_kw={"height_ratios": [1.2, 2.2, 0.9]}
    )
    # 1. Waveform, for orientation.
    secs = np.arange(len(samples)) * 1000.0 / SAMPLE_RATE
    ax_w.plot(secs, samples / 32768.0, lw=0.3, color="#555")
    ax_w.set_ylim(-1, 1)
    ax_w.set_ylabel("waveform")
    ax_w.set_title(title, loc="left", fontsize=11)

    # 2. Level against the adaptive floor and the background ceiling.
    if trace:
        ax_e.plot(t, [r.level_db for r in trace], lw=0.8, color="#333", label="level (250-3500 Hz)")
        ax_e.plot(t, [r.floor_db for r in trace], lw=1.2, color="#1f77b4", label="noise floor")
        ax_e.plot(t, [r.ceiling_db for r in trace], lw=1.0, color="#1f77b4", ls=":", label="background ceiling")
        ax_e.set_ylim(max(-95, min(r.floor_db for r in trace) - 15), 0)
    ax_e.set_ylabel("dBFS")
    ax_e.legend(loc="lower right", fontsize=8)

    # 3. What each frame was, and the utterances / tones the state machine kept.
    rows = {"speech (VAD)": 3, "tone": 2, "music": 1, "decided": 0}
    if trace:
        for name, attr in (("speech (VAD)", "speech"), ("tone", "tone"), ("music", "music")):
            for a, b in _spans(t, np.array([getattr(r, attr) for r in trace]), 20):
                colour = COLOURS[attr if attr in ("speech", "tone") else "music"]
                ax_s.broken_barh([(a, b - a)], (rows[name] - 0.35, 0.7), color=colour)
    final = det.verdicts[-1] if det.verdicts else None
    segments = final.segments if final else ()
    for seg in segments:
        colour = COLOURS.get(seg.kind, "#777")
        ax_s.broken_barh([(seg.start_ms, max(seg.end_ms - seg.start_ms, 20))], (-0.35, 0.7), color=colour)
        for ax in (ax_e,):
            ax.axvspan(seg.start_ms, seg.end_ms, color=colour, alpha=0.12)
    ax_s.set_yticks(list(rows.values()), list(rows.keys()), fontsize=8)
    ax_s.set_ylim(-0.8, 3.8)
    ax_s.set_xlabel("ms from answer (audio clock)")

    # Thresholds as they ran, each where it could have decided.
    speech = [s for s in segments if s.kind == "speech"]
    if not speech or speech[0].start_ms > params.silence_timeout_ms:
        ax_e.axvline(params.silence_timeout_ms, color="#999", ls="--", lw=0.8)
        ax_e.text(params.silence_timeout_ms, -3, " SilenceTimeout", fontsize=7, color="#666", va="top")
    if speech:
        onset = speech[0].start_ms
        ax_e.axvline(onset + params.speech_threshold_ms, color="#e377c2", ls="--", lw=0.8)
        ax_e.text(onset + params.speech_threshold_ms, -8, " SpeechThreshold\n from onset",
                  fontsize=7, color="#e377c2", va="top")
    if final is not None and final.rule is Rule.SPEECH_END and speech:
        last_end = speech[-1].end_ms
        ax_e.annotate("", xy=(last_end + params.speech_end_threshold_ms, -12), xytext=(last_end, -12),
                      arrowprops={"arrowstyle": "<->", "color": "#2ca02c", "lw": 0.8})
        ax_e.text(last_end, -13, " SpeechEndThreshold", fontsize=7, color="#2ca02c", va="top")
    for v in det.verdicts:
        for ax in (ax_w, ax_e, ax_s):
            ax.axvline(v.duration_ms, color="#d62728" if v.final else "#ff7f0e", lw=1.6)
        ax_w.text(v.duration_ms, 0.95, f" {v.answered_by.value} @ {v.duration_ms} ms",
                  color="#d62728" if v.final else "#ff7f0e", fontsize=9, va="top", fontweight="bold")
    if final is not None:
        fig.text(0.01, 0.005, f"{final.answered_by.value} at {final.duration_ms} ms: {final.cause}    "
                 f"[{params.mode.value}, SpeechThreshold {params.speech_threshold_ms}, "
                 f"SpeechEnd {params.speech_end_threshold_ms}, "
                 f"SilenceTimeout {params.silence_timeout_ms}, Timeout {params.timeout_ms // 1000}s]", fontsize=9)
    ax_s.set_xlim(0, max(secs[-1] if len(secs) else 0, t[-1] if trace else 0))
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)

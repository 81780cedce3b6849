"""`ari-amd tune`: which of Twilio's four parameters suit this traffic, for this cost of errors.

A dialer pays differently for its two mistakes: a person taken for a machine is a hung-up
customer (false machine); a machine taken for a person is an agent listening to voicemail
(false human). Given labelled calls and those two prices, try a grid of settings and rank them.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ari_amd.audio import load
from ari_amd.detect import AmdParams, AnsweredBy, Mode, classify
from ari_amd.evaluate import Clip, read_labels

SPEECH_THRESHOLDS = (1_600, 2_000, 2_400, 2_800, 3_200, 4_000, 5_000)
SPEECH_END_THRESHOLDS = (800, 1_000, 1_200, 1_500, 2_000, 2_500)
SILENCE_TIMEOUTS = (3_000, 5_000)


@dataclass(frozen=True)
class Trial:
    params: AmdParams
    cost: float
    accuracy: float
    false_machine: int
    false_human: int
    humans: int
    machines: int
    median_ms: float


def _called(kind: AnsweredBy) -> str:
    if kind is AnsweredBy.HUMAN:
        return "human"
    if kind.is_machine:
        return "machine"
    return "fax" if kind is AnsweredBy.FAX else "nobody"


def score(clips: list[tuple[Clip, np.ndarray]], params: AmdParams, fm_cost: float, fh_cost: float) -> Trial:
    fm = fh = other = right = 0
    times = []
    for clip, samples in clips:
        v = classify(samples, params)[-1]
        times.append(v.duration_ms)
        called = _called(v.answered_by)
        if called == clip.truth:
            right += 1
        elif clip.truth == "human" and called == "machine":
            fm += 1
        elif clip.truth == "machine" and called == "human":
            fh += 1
        else:
            other += 1
    humans = sum(c.truth == "human" for c, _ in clips)
    machines = sum(c.truth == "machine" for c, _ in clips)
    # Time matters a little: a second of waiting costs a hundredth of an error per call.
    cost = fm_cost * fm + fh_cost * fh + other + 0.01 * sum(times) / 1000.0
    return Trial(params, cost, right / len(clips), fm, fh, humans, machines, statistics.median(times))


def tune(folder: Path, fm_cost: float, fh_cost: float, mode: Mode = Mode.ENABLE) -> list[Trial]:
    clips = [(c, load(c.file)) for c in read_labels(folder, mode)]
    trials = [
        score(
            clips,
            AmdParams(mode=mode, speech_threshold_ms=st, speech_end_threshold_ms=se, silence_timeout_ms=sto),
            fm_cost,
            fh_cost,
        )
        for st, se, sto in itertools.product(SPEECH_THRESHOLDS, SPEECH_END_THRESHOLDS, SILENCE_TIMEOUTS)
    ]
    return sorted(trials, key=lambda t: t.cost)


def format_trials(trials: list[Trial], top: int = 8) -> str:
    default = next((t for t in trials if t.params == AmdParams(mode=t.params.mode)), None)
    lines = [
        f"{'SpeechThreshold':>15s} {'SpeechEndThreshold':>18s} {'SilenceTimeout':>14s} {'cost':>8s} {'accuracy':>8s} "
        f"{'false-machine':>13s} {'false-human':>11s} {'median ms':>9s}"
    ]
    shown = trials[:top] + ([default] if default is not None and default not in trials[:top] else [])
    for t in shown:
        p = t.params
        mark = "  (Twilio's defaults)" if t is default else ""
        lines.append(
            f"{p.speech_threshold_ms:>15d} {p.speech_end_threshold_ms:>18d} {p.silence_timeout_ms:>14d} {t.cost:>8.1f} "
            f"{100 * t.accuracy:>7.1f}% {t.false_machine:>6d}/{t.humans:<6d} {t.false_human:>5d}/{t.machines:<5d} "
            f"{t.median_ms:>9.0f}{mark}"
        )
    best = trials[0].params
    lines.append("")
    lines.append(
        f"suggested: MachineDetectionSpeechThreshold={best.speech_threshold_ms} "
        f"MachineDetectionSpeechEndThreshold={best.speech_end_threshold_ms} "
        f"MachineDetectionSilenceTimeout={best.silence_timeout_ms}"
    )
    return "\n".join(lines)

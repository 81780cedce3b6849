"""Scoring the detector against labelled call audio (the dev corpus's labels.csv format).

Accuracy is measured against who really answered: the `truth` column for the confusion
matrix and the false-machine / false-human rates, and the expected Twilio verdict of the
mode for the per-category table.
"""

from __future__ import annotations

import csv
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ari_amd.detect import AmdParams, Mode, Verdict

TRUTHS = ("human", "machine", "fax", "nobody")


class LabelsError(Exception):
    """labels.csv is missing or lacks a column we need."""


@dataclass(frozen=True)
class Clip:
    file: Path
    category: str
    truth: str
    expected: str  # the right verdict in the mode being scored
    row: dict[str, str]

    def ms(self, column: str) -> int | None:
        value = self.row.get(column, "")
        return int(value) if value.strip() else None


@dataclass(frozen=True)
class Outcome:
    clip: Clip
    verdict: Verdict  # the final one
    interim: tuple[Verdict, ...] = ()

    @property
    def correct(self) -> bool:
        return self.verdict.answered_by.value == self.clip.expected


def read_labels(folder: Path, mode: Mode) -> list[Clip]:
    path = folder / "labels.csv"
    if not path.is_file():
        raise LabelsError(f"{path}: not found (a labels.csv in the corpus format is needed)")
    column = "expected_enable" if mode is Mode.ENABLE else "expected_dme"
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"file", "category", "truth", column}
    if rows and not needed <= rows[0].keys():
        raise LabelsError(f"{path}: missing columns {sorted(needed - rows[0].keys())}")
    return [Clip(folder / r["file"], r["category"], r["truth"], r[column], r) for r in rows]


def _pct(n: int, d: int) -> float | None:
    return round(100.0 * n / d, 1) if d else None


def _quantiles(values: list[int]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None}
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return {"n": len(values), "p50": statistics.median(values), "p90": p90}


@dataclass
class Report:
    mode: Mode
    params: AmdParams
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        outs = self.outcomes
        by_cat: dict[str, list[Outcome]] = defaultdict(list)
        for o in outs:
            by_cat[o.clip.category].append(o)
        confusion: dict[str, Counter[str]] = {t: Counter() for t in TRUTHS}
        for o in outs:
            confusion.setdefault(o.clip.truth, Counter())[o.verdict.answered_by.value] += 1
        humans = [o for o in outs if o.clip.truth == "human"]
        machines = [o for o in outs if o.clip.truth == "machine"]
        false_machine = sum(o.verdict.answered_by.is_machine for o in humans)
        false_human = sum(o.verdict.answered_by.value == "human" for o in machines)

        time_by_truth = {t: _quantiles([o.verdict.duration_ms for o in outs if o.clip.truth == t]) for t in TRUTHS}
        # Humans: how long after the first utterance ended did we say so?
        human_lag = [
            o.verdict.duration_ms - end
            for o in humans
            if o.verdict.answered_by.value == "human" and (end := o.clip.ms("first_utterance_end_ms")) is not None
        ]
        fax_lag = [
            o.verdict.duration_ms - onset
            for o in outs
            if o.clip.truth == "fax"
            and o.verdict.answered_by.value == "fax"
            and (onset := o.clip.ms("speech_onset_ms")) is not None
        ]
        beeps = [o for o in outs if o.clip.ms("beep_end_ms") is not None]
        beep_hits = [o for o in beeps if o.verdict.answered_by.value == "machine_end_beep"]
        beep_delay = [o.verdict.duration_ms - (o.clip.ms("beep_end_ms") or 0) for o in beep_hits]
        early = [o for o in beep_hits if o.verdict.duration_ms < (o.clip.ms("beep_start_ms") or 0)]
        return {
            "mode": self.mode.value,
            "params": {
                "timeout_ms": self.params.timeout_ms,
                "speech_threshold_ms": self.params.speech_threshold_ms,
                "speech_end_threshold_ms": self.params.speech_end_threshold_ms,
                "silence_timeout_ms": self.params.silence_timeout_ms,
            },
            "clips": len(outs),
            "unreadable": self.errors,
            "accuracy_pct": _pct(sum(o.correct for o in outs), len(outs)),
            "by_category": {
                c: {
                    "correct": sum(o.correct for o in os), "clips": len(os),
                    "pct": _pct(sum(o.correct for o in os), len(os)),
                }
                for c, os in sorted(by_cat.items())
            },
            "confusion": {t: dict(sorted(c.items())) for t, c in confusion.items() if c},
            "false_machine_pct": _pct(false_machine, len(humans)),
            "false_human_pct": _pct(false_human, len(machines)),
            "time_to_verdict_ms": time_by_truth,
            "human_verdict_after_first_utterance_ms": _quantiles(human_lag),
            "fax_verdict_after_tone_onset_ms": _quantiles(fax_lag),
            "beep": {
                "by_category": {
                    c: _pct(
                        sum(o.verdict.answered_by.value == "machine_end_beep" for o in os if o.clip.ms("beep_end_ms")),
                        sum(1 for o in os if o.clip.ms("beep_end_ms")),
                    )
                    for c, os in sorted(by_cat.items())
                    if any(o.clip.ms("beep_end_ms") for o in os)
                },
                "clips_with_beep": len(beeps),
                "machine_end_beep_pct": _pct(len(beep_hits), len(beeps)),
                "delay_after_beep_end_ms": _quantiles(beep_delay),
                "verdicts_before_beep_start": len(early),
            },
        }


def format_summary(s: dict[str, Any]) -> str:
    """The report as a table a person reads."""
    lines = [f"mode {s['mode']}  {s['params']}", f"clips {s['clips']}  accuracy {s['accuracy_pct']}%"]
    lines.append(
        f"false-machine (humans called machine) {s['false_machine_pct']}%   "
        f"false-human (machines called human) {s['false_human_pct']}%"
    )
    lines.append("")
    lines.append(f"{'category':22s} {'correct':>9s} {'pct':>6s}")
    for cat, row in s["by_category"].items():
        lines.append(f"{cat:22s} {row['correct']:>4d}/{row['clips']:<4d} {row['pct']:>6}")
    lines.append("")
    confusion: dict[str, dict[str, int]] = s["confusion"]
    verdicts = sorted({v for row in confusion.values() for v in row})
    lines.append("truth \\ verdict  " + " ".join(f"{v:>19s}" for v in verdicts))
    for truth, row in confusion.items():
        lines.append(f"{truth:16s} " + " ".join(f"{row.get(v, 0):>19d}" for v in verdicts))
    lines.append("")
    ttv: dict[str, dict[str, Any]] = s["time_to_verdict_ms"]
    per_kind = (f"{t} p50 {q['p50']} p90 {q['p90']}" for t, q in ttv.items() if q["n"])
    lines.append("time to verdict (ms from answer): " + "  ".join(per_kind))
    h = s["human_verdict_after_first_utterance_ms"]
    lines.append(f"human verdict after the first utterance ends: p50 {h['p50']} p90 {h['p90']} ms (n={h['n']})")
    fx = s["fax_verdict_after_tone_onset_ms"]
    lines.append(f"fax verdict after the tone starts: p50 {fx['p50']} p90 {fx['p90']} ms (n={fx['n']})")
    b: dict[str, Any] = s["beep"]
    d: dict[str, Any] = b["delay_after_beep_end_ms"]
    lines.append(
        f"beep: {b['machine_end_beep_pct']}% of {b['clips_with_beep']} beep clips got machine_end_beep; "
        f"delay after beep end p50 {d['p50']} p90 {d['p90']} ms; "
        f"verdicts before the beep started: {b['verdicts_before_beep_start']}"
    )
    if s["mode"] == "DetectMessageEnd":
        lines.append("machine_end_beep by category: " + ", ".join(f"{c} {p}%" for c, p in b["by_category"].items()))
    if s["unreadable"]:
        lines.append(f"unreadable: {s['unreadable']}")
    return "\n".join(lines)

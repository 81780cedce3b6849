#!/usr/bin/env python3
"""The detector on families of calls it was never tuned on (issue 12): one row per family with
the floors' metrics, then accuracy per family and category.

    python bench/families.py [--split tune|report|all] [--families a,b] [--per-category N]
                             [--seed S] [--dir DIR] [--jobs 2] [--json out.json]

Each clip is made (ari_amd.synth.families) and classified (ari_amd.detect.classify) in both
modes, Enable and DetectMessageEnd, by ``--jobs`` worker processes. With ``--dir`` each
family's folder (as ``python -m ari_amd.synth families DIR`` writes it) is reused when it was
made with the same settings, else written there. Tune on ``--split tune`` only: the report
split is held out.

Floors (a cell that misses its floor is marked with !):
* Enable: residential humans (human_residential, _hello_hello, _slow_start, _one_moment)
  >= 96% human; voicemails (every machine category but short and multi_gap greetings) >= 97%
  any machine_*; fax 100% with p90 <= 600 ms after the answer tone starts; silence >= 97%
  unknown.
* DetectMessageEnd: beeps >= 97% machine_end_beep (>= 88% on beep_hard's late, quiet and
  read-number categories), p90 <= 250 ms after the beep ends, none before it starts; no
  machine_end_beep at all on attendant_ringback; no-beep greetings >= 93%
  machine_end_silence or machine_end_other.
* People (Enable, residential humans): human verdict minus first_utterance_end_ms p50 <= 1300,
  p90 <= 1800 ms.

Which families need what (a family whose engine is missing is skipped with a message):
tts_espeak needs espeak-ng and sox; tts_flite: flite; tts_festival: festival, festvox-kallpc16k,
festvox-kdlpc16k (festvox-us-slt-hts...); tts_mbrola: mbrola, mbrola-us1/us2/us3 (Debian
contrib/non-free); asterisk_pitched: asterisk-core-sounds-en-wav (found through
$ARI_AMD_PROMPTS, else $ARI_AMD_LAB_ROOT or /var/lib/ari-amd/lab-root, the lab's Debian root);
gsm_trunk uses sox's GSM 06.10 (else a numpy approximation). `scripts/install-tts` installs them.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import shlex
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ari_amd.audio import load
from ari_amd.detect import AmdParams, Mode, Verdict, classify
from ari_amd.evaluate import Clip as EvalClip
from ari_amd.evaluate import Outcome, Report
from ari_amd.synth.corpus import write_wav
from ari_amd.synth.families import (
    FAMILIES,
    SPLITS,
    Family,
    as_written,
    is_made,
    plan,
    select,
    write_labels,
    write_meta,
)

RESIDENTIAL = ("human_residential", "human_hello_hello", "human_slow_start", "human_one_moment")
NOT_VOICEMAIL = ("machine_short", "machine_multi_gap")  # reported, no floor
HARD_BEEPS = ("machine_beep_late", "machine_beep_quiet", "machine_carrier_digits")
FLOORS = {
    "resid_human": 96.0, "voicemail_machine": 97.0, "fax": 100.0, "fax_p90": 600, "silence_unknown": 97.0,
    "beep": 97.0, "beep_hard": 88.0, "beep_p90": 250, "before_beep": 0, "ringback_beep": 0, "no_beep_end": 93.0,
    "people_p50": 1300, "people_p90": 1800,
}
MODES = (Mode.ENABLE, Mode.DETECT_MESSAGE_END)


@dataclass(frozen=True)
class Job:
    family: str
    category: str
    index: int
    seed: int
    file: str
    folder: str | None  # write the WAV here (None: keep it in memory)
    reuse: bool  # read the WAV from folder instead of making it


def run_job(job: Job) -> tuple[Job, dict[str, str], dict[str, list[Verdict]]]:
    """Make (or read) one clip and classify it in both modes."""
    if job.reuse:
        assert job.folder is not None
        samples = load(Path(job.folder) / job.file)
        row: dict[str, str] = {}
    else:
        fam = FAMILIES[job.family]
        clip = fam.make(job.category, job.index, job.seed)
        # classify what the family's WAV holds, so a cached folder gives the same verdicts
        samples = as_written(clip.samples, fam.subtype)
        row = {**clip.row(job.file), "family": job.family}
        if job.folder is not None:
            write_wav(Path(job.folder) / job.file, samples, fam.subtype)
    return job, row, {m.value: classify(samples, AmdParams(mode=m)) for m in MODES}


def _pct(n: int, d: int) -> float | None:
    return round(100.0 * n / d, 1) if d else None


def _p90(values: list[int]) -> int | None:
    # the nearest-rank p90 that ari_amd.evaluate uses
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]


def family_metrics(outcomes: dict[str, list[Outcome]]) -> dict[str, Any]:
    """The floor metrics of one family (or of several pooled). ``outcomes`` by mode value."""
    en, dme = outcomes[Mode.ENABLE.value], outcomes[Mode.DETECT_MESSAGE_END.value]
    res = [o for o in en if o.clip.category in RESIDENTIAL]
    vm = [o for o in en if o.clip.truth == "machine" and o.clip.category not in NOT_VOICEMAIL]
    fax = [o for o in en if o.clip.truth == "fax"]
    sil = [o for o in en if o.clip.category == "silence"]
    fax_lag = [o.verdict.duration_ms - (o.clip.ms("speech_onset_ms") or 0)
               for o in fax if o.verdict.answered_by.value == "fax"]
    beep = Report(Mode.DETECT_MESSAGE_END, AmdParams(mode=Mode.DETECT_MESSAGE_END),
                  [o for o in dme if o.clip.ms("beep_end_ms") is not None]).summary()["beep"]
    hard = [o for o in dme if o.clip.category in HARD_BEEPS]
    ring = [o for o in dme if o.clip.category == "attendant_ringback"]
    nobeep = [o for o in dme if o.clip.category == "machine_no_beep"]
    people = Report(Mode.ENABLE, AmdParams(mode=Mode.ENABLE), res).summary()["human_verdict_after_first_utterance_ms"]
    return {
        "clips": len(en),
        "resid_human": (_pct(sum(o.verdict.answered_by.value == "human" for o in res), len(res)), len(res)),
        "voicemail_machine": (_pct(sum(o.verdict.answered_by.is_machine for o in vm), len(vm)), len(vm)),
        "fax": (_pct(sum(o.verdict.answered_by.value == "fax" for o in fax), len(fax)), len(fax)),
        "fax_p90": _p90(fax_lag),
        "silence_unknown": (_pct(sum(o.verdict.answered_by.value == "unknown" for o in sil), len(sil)), len(sil)),
        "beep": (beep["machine_end_beep_pct"], beep["clips_with_beep"]),
        "beep_hard": (_pct(sum(o.verdict.answered_by.value == "machine_end_beep" for o in hard), len(hard)), len(hard)),
        "beep_p90": beep["delay_after_beep_end_ms"]["p90"],
        "before_beep": beep["verdicts_before_beep_start"] if beep["clips_with_beep"] else None,
        "ringback_beep": (sum(o.verdict.answered_by.value == "machine_end_beep" or
                              any(v.answered_by.value == "machine_end_beep" for v in o.interim)
                              for o in ring), len(ring)),
        "no_beep_end": (_pct(sum(o.verdict.answered_by.value in ("machine_end_silence", "machine_end_other")
                                 for o in nobeep), len(nobeep)), len(nobeep)),
        "people_p50": people["p50"],
        "people_p90": people["p90"],
    }


def _misses(key: str, value: Any) -> bool:
    floor = FLOORS[key]
    if value is None:
        return False
    if key in ("fax_p90", "beep_p90", "before_beep", "people_p50", "people_p90"):
        return value > floor
    if key == "ringback_beep":
        return value[0] > floor
    return value[0] is not None and value[0] < floor


def _cell(key: str, value: Any) -> str:
    if value is None or (isinstance(value, tuple) and value[1] == 0):
        return "-"
    mark = " !" if _misses(key, value) else ""
    if key == "ringback_beep":
        return f"{value[0]}/{value[1]}{mark}"
    if isinstance(value, tuple):
        return f"{value[0]:g}% ({value[1]}){mark}"
    return f"{value:g}{mark}"


COLUMNS = (
    ("resid_human", "En resid. human"), ("voicemail_machine", "En voicemail machine"), ("fax", "En fax"),
    ("fax_p90", "En fax p90 ms"), ("silence_unknown", "En silence unknown"), ("beep", "DME beep"),
    ("beep_hard", "DME late/quiet/digits beep"), ("beep_p90", "DME beep p90 ms"), ("before_beep", "DME before beep"),
    ("ringback_beep", "DME ringback beeps"), ("no_beep_end", "DME no-beep end"), ("people_p50", "people p50 ms"),
    ("people_p90", "people p90 ms"),
)


def floors_table(metrics: dict[str, dict[str, Any]]) -> str:
    head = ["family", "clips"] + [c[1] for c in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fam, m in metrics.items():
        lines.append("| " + " | ".join([fam, str(m["clips"])] + [_cell(k, m[k]) for k, _ in COLUMNS]) + " |")
    return "\n".join(lines)


def category_table(outcomes: dict[str, dict[str, list[Outcome]]]) -> str:
    """Per family and category: % right in each mode and what the wrong ones said."""
    lines = ["| family | category | clips | Enable % right | DME % right | wrong verdicts (Enable; DME) |",
             "|---|---|---|---|---|---|"]
    for fam, by_mode in outcomes.items():
        cats: dict[str, dict[str, list[Outcome]]] = defaultdict(lambda: defaultdict(list))
        for mode, outs in by_mode.items():
            for o in outs:
                cats[o.clip.category][mode].append(o)
        for cat in sorted(cats):
            en, dme = cats[cat][Mode.ENABLE.value], cats[cat][Mode.DETECT_MESSAGE_END.value]

            def wrong(outs: list[Outcome]) -> str:
                c = Counter(o.verdict.answered_by.value for o in outs if not o.correct)
                return ", ".join(f"{v} {n}" for v, n in c.most_common()) or "-"

            lines.append(f"| {fam} | {cat} | {len(en)} | {_pct(sum(o.correct for o in en), len(en))} | "
                         f"{_pct(sum(o.correct for o in dme), len(dme))} | {wrong(en)}; {wrong(dme)} |")
    return "\n".join(lines)


def jobs_for(fam: Family, per_category: int, seed: int, folder: Path | None) -> tuple[list[Job], bool]:
    reuse = folder is not None and is_made(folder / fam.name, fam, per_category, seed)
    where = str(folder / fam.name) if folder is not None else None
    if where is not None:
        Path(where).mkdir(parents=True, exist_ok=True)
    return [Job(fam.name, c, i, seed, name, where, reuse) for c, i, name in plan(fam, per_category, seed)], reuse


def read_rows(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "labels.csv", newline="", encoding="utf-8") as fh:
        return {r["file"]: r for r in csv.DictReader(fh)}


def run(families: Iterable[Family], per_category: int, seed: int, folder: Path | None, jobs: int,
        log: Any = sys.stderr) -> tuple[dict[str, dict[str, list[Outcome]]], list[str]]:
    """-> outcomes by family and mode, and the skip messages."""
    skipped, work, reused = [], [], {}
    fams = []
    for fam in families:
        why = fam.unavailable()
        if why:
            skipped.append(why)
            print(why, file=log)
            continue
        js, reuse = jobs_for(fam, per_category, seed, folder)
        work.extend(js)
        fams.append(fam)
        if reuse:
            reused[fam.name] = read_rows(folder / fam.name)  # type: ignore[operator]
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    outcomes: dict[str, dict[str, list[Outcome]]] = {f.name: {m.value: [] for m in MODES} for f in fams}
    with mp.get_context("spawn").Pool(jobs) if jobs > 1 else _Serial() as pool:
        for job, row, verdicts in pool.imap_unordered(run_job, work, chunksize=2):
            if job.reuse:
                row = reused[job.family][job.file]
            rows[job.family].append(row)
            for mode in MODES:
                vs = verdicts[mode.value]
                column = "expected_enable" if mode is Mode.ENABLE else "expected_dme"
                clip = EvalClip(Path(job.file), row["category"], row["truth"], row[column], row)
                outcomes[job.family][mode.value].append(Outcome(clip, vs[-1], tuple(vs[:-1])))
    if folder is not None:
        for fam in fams:
            if fam.name not in reused:
                write_labels(folder / fam.name, sorted(rows[fam.name], key=lambda r: r["file"]))
                write_meta(folder / fam.name, fam, per_category, seed)
    return outcomes, skipped


class _Serial:
    """One process: the same interface as the Pool, for --jobs 1."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap_unordered(self, fn: Any, items: list[Job], chunksize: int = 1) -> Iterable[Any]:
        return map(fn, items)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=list(SPLITS), default="tune")
    ap.add_argument("--families", help=f"comma-separated, any split (overrides --split): {', '.join(FAMILIES)}")
    ap.add_argument("--per-category", type=int, default=6, metavar="N")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, help="cache: reuse (or write) each family's folder here")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--json", type=Path, metavar="OUT", help="also write the numbers as JSON")
    args = ap.parse_args(argv)
    try:
        fams = select(args.split, [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None)
    except ValueError as exc:
        ap.error(str(exc))
    started = time.perf_counter()
    outcomes, skipped = run(fams, args.per_category, args.seed, args.dir, max(1, args.jobs))
    metrics = {fam: family_metrics(by_mode) for fam, by_mode in outcomes.items()}
    pooled: dict[str, list[Outcome]] = {m.value: [o for by in outcomes.values() for o in by[m.value]] for m in MODES}
    if len(outcomes) > 1:
        metrics["all"] = family_metrics(pooled)
    cmd = "python bench/families.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    print(f"$ {cmd.strip()}\n")
    print(f"families ({args.split if not args.families else 'chosen'}): {', '.join(outcomes)}; "
          f"{args.per_category} clips per category, seed {args.seed}")
    for s in skipped:
        print(f"- {s}")
    print("\nFloors (cells: % (clips); ! misses its floor; - nothing to measure)\n")
    print(floors_table(metrics))
    print("\nPer family and category\n")
    print(category_table(outcomes))
    print(f"\n({time.perf_counter() - started:.0f} s)")
    if args.json:
        by_category = {f: {m: Report(Mode(m), AmdParams(mode=Mode(m)), outs).summary()["by_category"]
                           for m, outs in by.items()} for f, by in outcomes.items()}
        args.json.write_text(json.dumps({"command": cmd, "skipped": skipped, "floors": FLOORS, "families": metrics,
                                         "by_category": by_category}, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

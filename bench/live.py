"""Live vs offline, through the real lab: the same clips streamed by SIPp through Asterisk 22,
tapped and detected by ari-amd, against `ari-amd classify` on the WAV files.

    scripts/lab up
    .venv/bin/python bench/live.py [--corpus DIR] [--clips 40] [--concurrent 30]

Phase 1 places the clips one after another at a dialer's pace; phase 2 places `--concurrent`
calls at once; phase 3 (`--in-a-row N`) places N calls back to back, `--window` in flight. Each
reports verdict agreement with offline, the live minus offline duration
(ms on the audio clock: what the live path adds; SIPp starts streaming 20-60 ms after the ACK,
which is in this figure), agreement with who really answered when labels exist, and whether
any channel or bridge was left in Asterisk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ari_amd.ari import naming  # noqa: E402
from ari_amd.audio import load  # noqa: E402
from ari_amd.calls.config import Settings  # noqa: E402
from ari_amd.calls.engine import CallEngine  # noqa: E402
from ari_amd.calls.model import CallRequest  # noqa: E402
from ari_amd.detect import AmdParams, Mode, classify  # noqa: E402
from ari_amd.logs import configure_logging  # noqa: E402
from ari_amd.synth import generate  # noqa: E402
from ari_amd.synth.corpus import write_wav  # noqa: E402

LAB = REPO / "scripts" / "lab"
CALLEE_PORT = 5090
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "dev"


def pick_clips(corpus: Path | None, n: int, folder: Path) -> list[tuple[str, Path, str]]:
    """(name, wav, truth): every k-th clip of the corpus (all categories), or synthetic ones."""
    out = []
    if corpus is not None and (corpus / "labels.csv").exists():
        rows = list(csv.DictReader((corpus / "labels.csv").open()))
        step = max(1, len(rows) // n)
        for row in rows[::step][:n]:
            out.append((Path(row["file"]).stem, corpus / row["file"], row["truth"]))
        return out
    for i, clip in enumerate(generate(per_category=max(1, n // 9 + 1), seed=11)[:n]):
        path = folder / f"synth-{i:03d}.wav"
        write_wav(path, clip.samples)
        out.append((path.stem, path, clip.truth))
    return out


def truth_of(answered_by: str) -> str:
    if answered_by.startswith("machine"):
        return "machine"
    return {"human": "human", "fax": "fax", "unknown": "nobody"}.get(answered_by, answered_by)


async def run_phase(engine: CallEngine, clips: list[tuple[str, Path, str]], params: AmdParams, pacing: float,
                    label: str, window: int = 0) -> dict[str, object]:
    """Place every clip's call: `pacing` s apart, at most `window` in flight (0: no limit)."""
    calls = []
    t0 = time.monotonic()
    peak = 0
    for name, _, _ in clips:
        while window and engine.in_flight >= window:
            await asyncio.sleep(0.02)
        calls.append(await engine.place(CallRequest(f"PJSIP/sipp/sip:{name}@127.0.0.1:{CALLEE_PORT}", params)))
        peak = max(peak, engine.in_flight)
        if pacing:
            await asyncio.sleep(pacing)
    peak = max(peak, engine.in_flight)
    agree, right, deltas, missing = 0, 0, [], 0
    for (_name, path, truth), call in zip(clips, calls):
        live = await call.wait_verdict(120)
        want = classify(load(path), params)[-1]
        if live is None:
            missing += 1
            continue
        agree += live.answered_by == want.answered_by
        if live.answered_by != want.answered_by:
            print(f"{label}: {path.name} live {live.answered_by.value} at {live.duration_ms} ms ({live.cause}); "
                  f"offline {want.answered_by.value} at {want.duration_ms} ms ({want.cause})", file=sys.stderr)
        right += truth_of(live.answered_by.value) == truth
        deltas.append(live.duration_ms - want.duration_ms)
    for call in calls:
        with contextlib.suppress(TimeoutError):
            await call.wait_ended(15)
    wall = time.monotonic() - t0
    await asyncio.sleep(0.5)
    ours = {c.id for c in calls}
    left = [c.id for c in await engine.ari.list_channels()
            if c.id in ours or (naming.owner_of(c.id) or ("", ""))[1] in ours]
    left += [b.id for b in await engine.ari.list_bridges() if (naming.owner_of(b.id) or ("", ""))[1] in ours]
    deltas.sort()
    return {
        "phase": label,
        "calls": len(clips),
        "peak_in_flight": peak,
        "verdicts": len(clips) - missing,
        "agree": agree,
        "right_vs_truth": right,
        "delta_p50": statistics.median(deltas) if deltas else None,
        "delta_p90": deltas[int(0.9 * (len(deltas) - 1))] if deltas else None,
        "within_100ms": sum(abs(d) <= 100 for d in deltas),
        "left_behind": len(left),
        "wall_s": round(wall, 1),
    }


async def main_async(args: argparse.Namespace) -> int:
    corpus = Path(args.corpus) if args.corpus else (DEFAULT_CORPUS if DEFAULT_CORPUS.exists() else None)
    params = AmdParams(mode=Mode.parse(args.mode))
    with tempfile.TemporaryDirectory(prefix="ari-amd-live-") as tmp:
        clips = pick_clips(corpus, args.clips, Path(tmp))
        links = Path(tmp) / "callee"
        links.mkdir()
        for name, path, _ in clips:
            os.symlink(path.resolve(), links / f"{name}.wav")
        burst = [clips[i % len(clips)] for i in range(args.concurrent)]
        row = [clips[i % len(clips)] for i in range(args.in_a_row)]
        total = len(clips) + len(burst) + len(row)
        subprocess.run([str(LAB), "callee", "--dir", str(links), "--count", str(total), "--port", str(CALLEE_PORT),
                        "--max-time", "60", "--quiet"], check=True)
        settings = replace(Settings(), rtp_port_first=44000, rtp_port_last=44999)
        try:
            async with CallEngine(settings, app="ari-amd-bench-live") as engine:
                rows = [await run_phase(engine, clips, params, args.pacing, f"paced {args.pacing}s")]
                if burst:
                    rows.append(await run_phase(engine, burst, params, 0.0, "all at once"))
                if row:
                    rows.append(await run_phase(engine, row, params, 0.0, f"in a row, {args.window} at a time",
                                                window=args.window))
        finally:
            subprocess.run([str(LAB), "callee", "--stop", "--port", str(CALLEE_PORT), "--quiet"], check=False)
    source = str(corpus) if corpus else "synthetic clips (ari_amd.synth, seed 11)"
    print(f"\nlive vs offline, {params.mode.value}, clips from {source}")
    print("command: .venv/bin/python bench/live.py " + " ".join(sys.argv[1:]))
    print("\n| phase | calls | peak in flight | verdicts | same verdict as offline | right vs truth | "
          "live - offline p50 / p90 (ms) | within 100 ms | left in Asterisk | wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        n = r["calls"]
        print(f"| {r['phase']} | {n} | {r['peak_in_flight']} | {r['verdicts']} | {r['agree']}/{n} "
              f"({100 * r['agree'] / n:.1f}%) | {r['right_vs_truth']}/{n} | {r['delta_p50']} / {r['delta_p90']} | "
              f"{r['within_100ms']}/{r['verdicts']} | {r['left_behind']} | {r['wall_s']} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", help="a labelled folder (labels.csv); default ../shared/corpus/dev, else synthetic")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--concurrent", type=int, default=30, help="calls placed at once in phase 2 (clips repeat)")
    parser.add_argument("--in-a-row", type=int, default=0, help="phase 3: this many calls back to back (clips repeat)")
    parser.add_argument("--window", type=int, default=50, help="phase 3: calls in flight at most")
    parser.add_argument("--pacing", type=float, default=0.25, help="seconds between calls in phase 1")
    parser.add_argument("--mode", default="Enable")
    args = parser.parse_args()
    configure_logging("warning", json=False)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())

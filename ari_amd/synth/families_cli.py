"""python -m ari_amd.synth families OUTDIR [--split tune|report|all] [--families a,b]
[--per-category N] [--seed S] [--pcm]: each family in OUTDIR/<family>/ (WAVs + labels.csv)."""

from __future__ import annotations

import argparse
import sys
import time

from ari_amd.synth.families import FAMILIES, REPORT_FAMILIES, SPLITS, TUNE_FAMILIES, select, write_family


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ari_amd.synth families",
        description="Write families of labelled call audio the detector was never tuned on, one folder each. "
        f"tune: {', '.join(TUNE_FAMILIES)}. report (held out): {', '.join(REPORT_FAMILIES)}.",
    )
    ap.add_argument("outdir")
    ap.add_argument("--split", choices=list(SPLITS), default="tune")
    ap.add_argument("--families", help=f"comma-separated, any split (overrides --split): {', '.join(FAMILIES)}")
    ap.add_argument("--per-category", type=int, default=6, metavar="N")
    ap.add_argument("--seed", type=int, default=0, metavar="S")
    ap.add_argument("--pcm", action="store_true", help="16-bit PCM WAV instead of G.711 (mu-law; A-law for alaw)")
    args = ap.parse_args(argv)
    if args.per_category < 1:
        ap.error("--per-category must be at least 1")
    try:
        fams = select(args.split, [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None)
    except ValueError as exc:
        ap.error(str(exc))
    for fam in fams:
        t = time.monotonic()
        w = write_family(fam, args.outdir, args.per_category, args.seed, "PCM_16" if args.pcm else None)
        if w.skipped:
            print(w.skipped, file=sys.stderr)
        else:
            print(f"{fam.name}: {len(w.rows)} clips in {w.folder} ({time.monotonic() - t:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

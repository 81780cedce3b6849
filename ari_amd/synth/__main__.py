"""python -m ari_amd.synth OUTDIR [--per-category N] [--seed S] [--categories a,b] [--pcm]
python -m ari_amd.synth families OUTDIR [--split tune|report|all] [--families a,b] [--per-category N] [--seed S]"""

from __future__ import annotations

import argparse
import sys
import time

from ari_amd.synth.corpus import write_corpus
from ari_amd.synth.scenes import DEFAULT_CATEGORIES, SCENES


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["families"]:
        from ari_amd.synth.families_cli import main as families_main

        return families_main(argv[1:])
    ap = argparse.ArgumentParser(
        prog="python -m ari_amd.synth",
        description="Write a labelled corpus of synthetic call audio (8 kHz WAV + labels.csv).",
    )
    ap.add_argument("outdir")
    ap.add_argument("--per-category", type=int, default=10, metavar="N")
    ap.add_argument("--seed", type=int, default=0, metavar="S")
    ap.add_argument(
        "--categories",
        default=",".join(DEFAULT_CATEGORIES),
        help=f"comma-separated, from: {', '.join(SCENES)} (default: all but fax_calling)",
    )
    ap.add_argument("--pcm", action="store_true", help="16-bit PCM WAV instead of mu-law")
    args = ap.parse_args(argv)
    cats = [c.strip() for c in args.categories.split(",") if c.strip()]
    unknown = [c for c in cats if c not in SCENES]
    if unknown:
        ap.error(f"unknown categories: {', '.join(unknown)}")
    if args.per_category < 1:
        ap.error("--per-category must be at least 1")
    t = time.monotonic()
    rows = write_corpus(args.outdir, args.per_category, args.seed, cats, "PCM_16" if args.pcm else "ULAW")
    print(f"wrote {len(rows)} clips and labels.csv to {args.outdir} in {time.monotonic() - t:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The demo's call log: one synthetic call of each kind, the verdicts in both modes.

Until the lab runs these through Asterisk and SIPp, the same audio goes straight into the
detector: the verdicts are the ones the live path must reproduce.
"""

from __future__ import annotations

from ari_amd.detect import AmdParams, Mode, classify
from ari_amd.synth import make_clip

CALLS = (
    ("a person: \"Hello?\"", "human_residential"),
    ("a receptionist's long hello", "human_business"),
    ("voicemail, then a beep", "machine_personal"),
    ("a short voicemail greeting", "machine_short"),
    ("a carrier's voicemail prompt", "machine_carrier"),
    ("a fax machine", "fax"),
    ("dead air", "silence"),
)


def main() -> int:
    print(f"{'call':32s} {'truth':8s} | {'Enable: AnsweredBy':20s} {'ms':>6s} | {'DetectMessageEnd':20s} {'ms':>6s} | cause")
    print("-" * 130)
    for i, (what, category) in enumerate(CALLS):
        clip = make_clip(category, 100 + i, noise="pink", snr_db=25.0)
        enable = classify(clip.samples, AmdParams(mode=Mode.ENABLE))[-1]
        dme = classify(clip.samples, AmdParams(mode=Mode.DETECT_MESSAGE_END))[-1]
        print(
            f"{what:32s} {clip.truth:8s} | {enable.answered_by.value:20s} {enable.duration_ms:6d} | "
            f"{dme.answered_by.value:20s} {dme.duration_ms:6d} | {dme.cause}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

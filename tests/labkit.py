"""Shared pieces of the end-to-end tests that run ari-amd against the real lab (scripts/lab).

Each test process runs its own SIPp callee on SIP ports 4900-4995 (eight by pid, in turn; media
ports then 9600-9980 by scripts/lab's rule, clear of tests/test_ari_client.py's callees and of
Asterisk's RTP range) and its own ARI application name, so concurrent runs and a live
`ari-amd serve` on the same Asterisk are left alone. Every lab test takes its callee from here.
"""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ari_amd.audio import load
from ari_amd.calls.config import Settings
from ari_amd.detect import AmdParams, Verdict, classify
from ari_amd.synth import make_clip
from ari_amd.synth.corpus import write_wav

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "scripts" / "lab"
CALLEE_PORTS = [4900 + 8 * (os.getpid() % 12) + k for k in range(8)]  # used in turn: see callee()
_callee_starts = [random.randrange(len(CALLEE_PORTS))]  # not where the process before began
RTP_PORTS = (42000 + 100 * (os.getpid() % 20), 42099 + 100 * (os.getpid() % 20))


def lab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LAB), *args], capture_output=True, text=True, timeout=timeout)


_lab_tried: list[str] = []  # why the one `scripts/lab up` of this process failed, once tried


def require_lab() -> None:
    """The lab's Asterisk, brought up (as root, once per process) if it is not: tests start what
    they need. Skips, saying why, when it cannot run; with ARI_AMD_REQUIRE_LAB=1 (CI) it fails."""
    missing = pytest.fail if os.environ.get("ARI_AMD_REQUIRE_LAB") == "1" else pytest.skip
    if not LAB.exists():
        missing("scripts/lab is not in this checkout")
    try:
        if lab("status", timeout=30).returncode == 0:
            return
        if os.geteuid() != 0:
            missing("the lab is not up and needs root to start (sudo scripts/lab up)")
        if not _lab_tried:
            r = lab("up", timeout=600)  # a cold start builds the Asterisk root: about a minute
            _lab_tried.append("" if r.returncode == 0 else "; ".join((r.stdout + r.stderr).strip().splitlines()[-3:]))
    except (OSError, subprocess.TimeoutExpired) as e:
        missing(f"scripts/lab failed to run: {e}")
    if _lab_tried[0]:
        missing(f"scripts/lab up failed: {_lab_tried[0]}")


def settings(**overrides: object) -> Settings:
    """Lab settings with this process's RTP ports; ARI_AMD_TEST_RECORD_DIR keeps each call's audio."""
    base = Settings(rtp_port_first=RTP_PORTS[0], rtp_port_last=RTP_PORTS[1],
                    detection_record_dir=os.environ.get("ARI_AMD_TEST_RECORD_DIR", ""))
    return replace(base, **overrides)  # type: ignore[arg-type]


def app_name() -> str:
    return f"ari-amd-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def callee_port() -> int:
    """The SIP port of this process's current callee."""
    return CALLEE_PORTS[_callee_starts[0] % len(CALLEE_PORTS)]


def callee(*args: str) -> None:
    """A new callee, on the next of this process's ports. Not the same port again soon: a call
    of the test before, hung up after its callee was stopped, has its BYE retransmitted to that
    port for up to 32 s, and a new SIPp there counts the stray BYE as its one call and exits
    without answering."""
    stop_callee()
    _callee_starts[0] += 1
    r = lab("callee", *args, "--port", str(callee_port()), "--quiet")
    assert r.returncode == 0, f"scripts/lab callee {' '.join(args)} failed: {r.stdout}{r.stderr}"


def stop_callee() -> None:
    lab("callee", "--stop", "--port", str(callee_port()), "--quiet")


def endpoint(name: str) -> str:
    """Endpoint `sipp` with the Request-URI sip:<name>@our callee: it plays <name>.wav."""
    return f"PJSIP/sipp/sip:{name}@127.0.0.1:{callee_port()}"


def write_clips(folder: Path, specs: list[tuple[str, int]]) -> dict[str, Path]:
    """(category, seed) -> folder/<category>-<seed>.wav (8 kHz mu-law), by name."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for category, seed in specs:
        name = f"{category.replace('_', '-')}-{seed}"
        path = folder / f"{name}.wav"
        write_wav(path, make_clip(category, seed).samples)
        out[name] = path
    return out


def offline(path: Path, params: AmdParams) -> Verdict:
    """`ari-amd classify` on the same WAV the callee streams."""
    return offline_as_sent(path, params, 0)


def write_tone_wav(path: Path, seconds: float, hz: float = 440.0) -> None:
    t = np.arange(int(seconds * 8000)) / 8000
    write_wav(path, (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16))


def callee_lag_ms(recording: Path, clip: Path) -> int:
    """How much later than the answer the callee's clip began in what the tap heard.

    SIPp starts a clip after the caller's ACK, 5-20 ms on a quiet machine and over 100 ms on a
    loaded one: a lab artefact (a phone's audio flows at answer), in whole 20 ms frames of the
    digital silence Asterisk's snoop fills in before the first packet.
    """
    heard, sent = load(recording), load(clip)
    if not np.any(heard) or not np.any(sent):
        return 0
    lag = int(np.argmax(heard != 0)) - int(np.argmax(sent != 0))
    return max(0, round(lag / 160)) * 20


def offline_as_sent(clip: Path, params: AmdParams, lag_ms: int) -> Verdict:
    """`ari-amd classify` on the clip as the callee sent it: lag_ms of silence, then the clip."""
    return classify(np.concatenate([np.zeros(lag_ms * 8, np.int16), load(clip)]), params)[-1]

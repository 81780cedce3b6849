"""The live demo: real calls through the lab's Asterisk to SIPp callees, and who answered.

One call per kind of callee (a person, a receptionist, voicemail with a beep, a short
voicemail, a carrier's prompt, a fax, dead air), placed by ari-amd in both of Twilio's modes,
next to what Asterisk's own AMD() says of the same callee, printed as a call log. The
greetings are made by ari_amd.synth; SIPp streams them as the callee's audio.

    scripts/demo            (sets up the lab, then runs this)
    python -m ari_amd.demo --lab scripts/lab
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
from pathlib import Path

from ari_amd.ari import ChannelUserevent
from ari_amd.calls.config import Settings, load_settings
from ari_amd.calls.engine import CallEngine
from ari_amd.calls.model import Call, CallRequest
from ari_amd.detect import AmdParams, Mode
from ari_amd.logs import configure_logging
from ari_amd.synth import make_clip
from ari_amd.synth.corpus import write_wav

CALLS = (
    ("a person: \"Hello?\"", "human_residential", 3),
    ("a receptionist's long hello", "human_business", 1),
    ("voicemail, then a beep", "machine_personal", 4),
    ("a short voicemail greeting", "machine_short", 2),
    ("a carrier's voicemail prompt", "machine_carrier", 3),
    ("a fax machine", "fax", 1),
    ("dead air", "silence", 1),
)
CALLEE_PORT = 5080  # the demo's own SIPp callee (the lab's default 5070 is left to users)
PACING_S = 0.3  # between call attempts, as a dialer paces them
AMD_APP_CONTEXT = "ari-amd-test-amd"  # asterisk-config/extensions.conf: AMD() as shipped


def endpoint(name: str) -> str:
    return f"PJSIP/sipp/sip:{name}@127.0.0.1:{CALLEE_PORT}"


async def place_all(engine: CallEngine, names: list[str], params: AmdParams) -> list[Call]:
    calls = []
    for name in names:
        calls.append(await engine.place(CallRequest(endpoint(name), params)))
        await asyncio.sleep(PACING_S)
    for call in calls:
        await call.wait_verdict(90)
        await call.wait_ended(15)
    return calls


async def asterisk_amd(engine: CallEngine, names: list[str]) -> list[dict[str, str]]:
    """The same callees through the dialplan's AMD(), read back from its UserEvent."""
    results: dict[str, dict[str, str]] = {}
    done = asyncio.Event()

    def on_user_event(ev: object) -> None:
        if isinstance(ev, ChannelUserevent) and ev.eventname == "AMDResult" and ev.channel is not None:
            results[ev.channel.id] = {k: str(v) for k, v in ev.userevent.items()}
            if len(results) == len(names):
                done.set()

    unsubscribe = engine.events.subscribe(on_user_event, types={"ChannelUserevent"})
    ids = []
    try:
        for name in names:
            channel = await engine.ari.originate(endpoint(name), context=AMD_APP_CONTEXT, extension="s", priority=1)
            await engine.ari.subscribe(engine.app, f"channel:{channel.id}")
            ids.append(channel.id)
            await asyncio.sleep(PACING_S)
        await asyncio.wait_for(done.wait(), 30)
    except TimeoutError:
        pass
    finally:
        unsubscribe()
    return [results.get(i, {}) for i in ids]


def verdict_cells(call: Call) -> tuple[str, str]:
    v = call.verdict
    if v is None:
        return call.status.value, ""
    return v.answered_by.value, str(v.duration_ms)


async def run(settings: Settings, lab: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="ari-amd-demo-") as tmp:
        folder = Path(tmp)
        names = []
        truths = []
        for _, category, seed in CALLS:
            clip = make_clip(category, seed)
            name = f"{category.replace('_', '-')}-{seed}"
            write_wav(folder / f"{name}.wav", clip.samples)
            names.append(name)
            truths.append(clip.truth)
        count = 3 * len(names)
        subprocess.run([str(lab), "callee", "--dir", str(folder), "--count", str(count), "--port", str(CALLEE_PORT),
                        "--max-time", "60", "--quiet"], check=True)
        try:
            async with CallEngine(settings, app=f"{settings.ari_app}-demo") as engine:
                print(f"ari-amd demo: Asterisk at {settings.ari_url}, {len(names)} callees on SIPp "
                      f"127.0.0.1:{CALLEE_PORT}\n")
                enable = await place_all(engine, names, AmdParams(mode=Mode.ENABLE))
                dme = await place_all(engine, names, AmdParams(mode=Mode.DETECT_MESSAGE_END))
                amd = await asterisk_amd(engine, names)
        finally:
            subprocess.run([str(lab), "callee", "--stop", "--port", str(CALLEE_PORT), "--quiet"], check=False)
    header = (f"{'callee':30s} {'truth':8s} | {'Enable: AnsweredBy':18s} {'ms':>5s} | "
              f"{'DetectMessageEnd':19s} {'ms':>6s} | {'Asterisk AMD()':26s} | CallSid (DetectMessageEnd)")
    print(header)
    print("-" * len(header))
    for (what, _, _), truth, e, d, a in zip(CALLS, truths, enable, dme, amd):
        e_by, e_ms = verdict_cells(e)
        d_by, d_ms = verdict_cells(d)
        amd_cell = f"{a.get('AMDSTATUS', '?')} {a.get('AMDCAUSE', '').split('-')[0]}".strip() if a else "-"
        print(f"{what:30s} {truth:8s} | {e_by:18s} {e_ms:>5s} | {d_by:19s} {d_ms:>6s} | {amd_cell:26s} | {d.id}")
    print("\nMachineDetectionDuration is ms from answer. Causes: ari-amd call --json ENDPOINT; "
          "the same clips offline: ari-amd classify FILE.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ari_amd.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="scripts/lab", help="the lab script (scripts/lab)")
    parser.add_argument("--config", help="TOML settings (defaults: the lab's)")
    args = parser.parse_args(argv)
    configure_logging("warning", json=False)
    return asyncio.run(run(load_settings(args.config), Path(args.lab)))


if __name__ == "__main__":
    raise SystemExit(main())

"""Faults on live calls, against the real lab: Asterisk crashing under ari-amd's calls, and
ari-amd itself killed -9 with calls up. Nothing may be lost: calls in flight resolve (with a
cause, their callbacks sent), new calls work soon after Asterisk is back, and what a dead
ari-amd left in Asterisk (taps, bridges, callees, dialplan channels waiting in Stasis()) is
cleaned up or given back by the next start.

The first one kills the shared lab's Asterisk (and brings it back up before it ends): other
lab users' calls in that moment go with it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ari_amd.ari import ChannelUserevent, naming
from ari_amd.calls.engine import CallEngine
from ari_amd.calls.model import CallEventKind, CallRequest, CallStatus
from ari_amd.detect import AmdParams, AnsweredBy, Mode
from tests import labkit
from tests.test_calls_lab import CallbackServer, assert_nothing_left, callback_server  # noqa: F401

pytestmark = pytest.mark.lab

DME = AmdParams(mode=Mode.DETECT_MESSAGE_END)
NEW_CALLS_WITHIN_S = 10.0  # after ARI is back (the floor)


def asterisk_pid() -> int:
    out = labkit.lab("status").stdout
    m = re.search(r"Asterisk running \(pid (\d+)\)", out)
    assert m, f"no Asterisk pid in scripts/lab status: {out}"
    return int(m.group(1))


async def test_asterisk_crash_resolves_calls_in_flight_and_new_calls_work_soon_after(
    callback_server: CallbackServer, tmp_path: Path  # noqa: F811
) -> None:
    labkit.require_lab()
    engine = CallEngine(labkit.settings(detection_media_timeout_s=1.0), app=labkit.app_name())
    await engine.start()
    try:
        clips = labkit.write_clips(tmp_path / "clips", [("machine_carrier", 3), ("machine_personal", 4)])
        labkit.callee("--dir", str(tmp_path / "clips"), "--count", "3", "--max-time", "60")
        calls = []
        for name in clips:
            calls.append(await engine.place(CallRequest(labkit.endpoint(name), DME, meta={
                "amd_callback": callback_server.url, "account_sid": "AC" + "2" * 32})))
        up = asyncio.Event()
        for call in calls:
            call.listen(lambda ev: up.set() if ev.kind is CallEventKind.AMD else None)
        await asyncio.wait_for(up.wait(), 15)
        await asyncio.sleep(0.5)

        os.kill(asterisk_pid(), signal.SIGKILL)  # a crash: no goodbyes
        for call in calls:
            verdict = await call.wait_verdict(15)
            assert verdict is not None and verdict.answered_by is AnsweredBy.UNKNOWN, verdict
            assert "no_media" in verdict.cause, verdict.cause
        await callback_server.wait(2, timeout=20)  # the async callbacks still go out
        assert {r["form"]["CallSid"] for r in callback_server.received} == {c.id for c in calls}
        assert {r["form"]["AnsweredBy"] for r in callback_server.received} == {"unknown"}

        r = labkit.lab("up", timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        back = time.monotonic()
        for call in calls:  # their channels died with Asterisk: resolved on reconnect
            await call.wait_ended(NEW_CALLS_WITHIN_S + 5)
            assert call.status is CallStatus.COMPLETED
        while not engine.connected:
            assert time.monotonic() - back < NEW_CALLS_WITHIN_S, "no ARI connection 10 s after Asterisk returned"
            await asyncio.sleep(0.1)
        labkit.stop_callee()
        labkit.callee("--dir", str(tmp_path / "clips"), "--count", "1", "--max-time", "60")
        name = next(iter(clips))
        call = await engine.place(CallRequest(labkit.endpoint(name), DME))
        verdict = await call.wait_verdict(60)
        assert verdict is not None and verdict.answered_by == labkit.offline(clips[name], DME).answered_by
        assert time.monotonic() - back < NEW_CALLS_WITHIN_S + 30
    finally:
        await engine.close()
        labkit.stop_callee()
        labkit.lab("up", timeout=120)
    await assert_nothing_left(engine)


CHILD = textwrap.dedent("""
    import asyncio, sys
    from tests import labkit
    from ari_amd.calls.engine import CallEngine
    from ari_amd.calls.model import CallEventKind, CallRequest
    from ari_amd.detect import AmdParams, Mode
    from ari_amd.logs import configure_logging

    async def main():
        configure_logging("warning")
        engine = CallEngine(labkit.settings(), app=sys.argv[1])
        await engine.start()
        call = await engine.place(CallRequest(sys.argv[2], AmdParams(mode=Mode.DETECT_MESSAGE_END)))
        heard = asyncio.Event()
        call.listen(lambda ev: heard.set() if ev.kind is CallEventKind.AMD else None)
        await heard.wait()
        print(call.id, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
""")


async def test_a_killed_ari_amd_leaves_nothing_behind_once_it_starts_again(tmp_path: Path) -> None:
    labkit.require_lab()
    app = labkit.app_name()
    clips = labkit.write_clips(tmp_path / "clips", [("machine_carrier", 3), ("machine_personal", 4)])
    names = list(clips)
    labkit.callee("--dir", str(tmp_path / "clips"), "--count", "2", "--max-time", "60")
    child = subprocess.Popen([sys.executable, "-c", CHILD, app, labkit.endpoint(names[0])], cwd=labkit.REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    engine = CallEngine(labkit.settings(), app=app)
    reports: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    try:
        assert child.stdout is not None
        call_id = (await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)).strip()
        assert call_id.startswith("CA"), call_id
        # A dialplan channel that the doomed process adopts: Stasis(app,sync) waits for it.
        ari = engine.ari
        dialplan = await ari.originate(labkit.endpoint(names[1]), context="ari-amd-test", extension=app, priority=1)
        deadline = time.monotonic() + 15
        while not any(c.id == dialplan.id and c.raw.get("dialplan", {}).get("app_name") == "Stasis"
                      for c in await ari.list_channels()):
            assert time.monotonic() < deadline, "the dialplan channel never reached Stasis()"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # the child has adopted it and is detecting

        child.send_signal(signal.SIGKILL)
        child.wait(10)
        left = {c.id for c in await ari.list_channels()}
        ours = {call_id, naming.snoop_id(call_id), naming.media_id(call_id)}
        assert ours <= left, f"expected the dead run's call and tap in Asterisk, saw {sorted(left)}"
        assert naming.bridge_id(call_id) in {b.id for b in await ari.list_bridges()}

        def on_user_event(ev: object) -> None:
            if isinstance(ev, ChannelUserevent) and ev.eventname == "AMDResult":
                reports.put_nowait(dict(ev.userevent))

        engine.events.subscribe(on_user_event, types={"ChannelUserevent"})
        await engine.start()  # the same application name, a new process's worth of state
        await ari.subscribe(app, f"channel:{dialplan.id}")
        report = await asyncio.wait_for(reports.get(), 20)
        assert report["AMDSTATUS"] == "NOTSURE" and report["AMDCAUSE"] == "RESTART", report
        deadline = time.monotonic() + 10
        while True:
            channels = {c.id for c in await ari.list_channels()}
            bridges = {b.id for b in await ari.list_bridges()}
            remaining = (ours & channels) | ({naming.bridge_id(call_id)} & bridges)
            if not remaining:
                break
            assert time.monotonic() < deadline, f"not swept: {sorted(remaining)}"
            await asyncio.sleep(0.2)
    finally:
        if child.poll() is None:
            child.kill()
        await engine.close()
        labkit.stop_callee()

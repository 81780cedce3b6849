"""The dialects end to end on the real lab: the real engine, Asterisk 22, a SIPp callee playing a
synthetic greeting, and an integrator's web server receiving the signed callbacks.

Skipped (saying why) where the lab cannot run: see tests/test_lab.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from ari_amd.api import ApiSettings, create_app
from ari_amd.calls.config import Settings
from ari_amd.calls.engine import CallEngine
from ari_amd.calls.outbox import IDEMPOTENCY_HEADER, Outbox
from ari_amd.synth.scenes import make_clip
from tests.labkit import callee, callee_port, stop_callee
from tests.test_api_fakes import Receiver, free_port
from tests.test_lab import lab, lab_up, wait_callee_exit, write_ulaw_wav  # noqa: F401

pytestmark = pytest.mark.lab

SID = "AC" + "e" * 32
TOKEN = "f" * 32
RTP_FIRST = 42000 + (os.getpid() % 300) * 20  # our own RTP ports: other engines may run beside us


URL_FIELDS = {
    "CallSid", "AccountSid", "From", "To", "Caller", "Called", "CallStatus", "Direction", "ApiVersion",
    "AnsweredBy", "MachineDetectionDuration",
}  # fmt: skip


@dataclass
class Live:
    engine: CallEngine
    receiver: Receiver
    base: str
    clips: Path

    def to(self, name: str) -> str:
        return f"sip:{name}@127.0.0.1:{callee_port()}"


@pytest.fixture
async def live(lab_up: None, tmp_path: Path) -> AsyncIterator[Live]:
    clips = tmp_path / "clips"
    clips.mkdir()
    # Offline, these two give human (Enable) and machine_start then machine_end_beep (DetectMessageEnd).
    for name, (category, seed) in {"human": ("human_residential", 1), "machine": ("machine_personal", 2)}.items():
        write_ulaw_wav(clips / f"{name}.wav", make_clip(category, seed).samples / 32768.0)
    callee("--dir", str(clips), "--count", "1", "--max-time", "40")
    settings = Settings(
        ari_app=f"ari-amd-apitest-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        rtp_port_first=RTP_FIRST,
        rtp_port_last=RTP_FIRST + 19,
        accounts={SID: TOKEN},
        endpoints_template="PJSIP/{number}@sipp",
    )
    engine = CallEngine(settings)
    await engine.start()
    outbox = Outbox(tmp_path / "outbox.db", attempt_timeout_s=3, base_delay_s=0.1, max_delay_s=0.5, horizon_s=60)
    api_settings = replace(ApiSettings.coerce(settings), outbox_path=str(tmp_path / "outbox.db"))
    runner = web.AppRunner(create_app(engine, api_settings, outbox=outbox))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver = Receiver()
    await receiver.start()
    try:
        yield Live(engine, receiver, f"http://127.0.0.1:{port}", clips)
    finally:
        await runner.cleanup()
        await engine.close()
        await outbox.close()
        await receiver.stop()
        stop_callee()


def client(live: Live, monkeypatch: pytest.MonkeyPatch) -> Client:
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    c = Client(SID, TOKEN)
    c.api.base_url = live.base
    return c


async def until(probe: Any, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := probe()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)
    return result


def signed(hit: Any) -> bool:
    params = hit.form if hit.method == "POST" else {}
    return bool(hit.headers.get(IDEMPOTENCY_HEADER)) and RequestValidator(TOKEN).validate(
        hit.url, params, hit.headers["X-Twilio-Signature"]
    )


async def test_lab_twilio_sync_enable_human_runs_the_url_twiml(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    r = live.receiver
    r.documents["/answer"] = "<Response><Play>beep</Play><Hangup/></Response>"
    tw = client(live, monkeypatch)
    created = await asyncio.to_thread(
        tw.calls.create,
        to=live.to("human"),
        from_="+15550199",
        url=r.base + "/answer",
        machine_detection="Enable",
        status_callback=r.base + "/status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )
    [answer] = await r.wait_for("/answer", timeout=30)
    assert signed(answer)
    f = answer.form
    assert set(f) == URL_FIELDS
    assert f["CallSid"] == created.sid and f["AccountSid"] == SID and f["CallStatus"] == "in-progress"
    assert f["AnsweredBy"] == "human" and int(f["MachineDetectionDuration"]) > 0
    statuses = await until(lambda: [h for h in r.at("/status") if h.form["CallStatus"] == "completed"] and r.at("/status"))
    assert [h.form["CallStatus"] for h in statuses if h.form["CallStatus"] != "ringing"] == [
        "initiated",
        "in-progress",
        "completed",
    ]  # ringing too if SIPp sent a 180
    assert all(signed(h) for h in statuses)
    assert statuses[-1].form["CallStatus"] == "completed"
    assert [h.form["SequenceNumber"] for h in statuses] == [str(i) for i in range(len(statuses))]
    fetched = await asyncio.to_thread(lambda: tw.calls(created.sid).fetch())
    assert fetched.status == "completed" and fetched.answered_by == "human"
    await wait_callee_exit()


async def test_lab_twilio_async_detect_message_end_machine(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    r = live.receiver
    r.documents["/answer"] = "<Response><Pause length='30'/></Response>"
    tw = client(live, monkeypatch)
    created = await asyncio.to_thread(
        tw.calls.create,
        to=live.to("machine"),
        from_="+15550199",
        url=r.base + "/answer",
        machine_detection="DetectMessageEnd",
        async_amd=True,
        async_amd_status_callback=r.base + "/amd",
    )
    [answer] = await r.wait_for("/answer", timeout=20)
    assert "AnsweredBy" not in answer.form  # at answer, before the verdict
    [amd] = await r.wait_for("/amd", timeout=30)
    assert signed(amd)
    assert set(amd.form) == {"CallSid", "AccountSid", "AnsweredBy", "MachineDetectionDuration"}
    assert amd.form["CallSid"] == created.sid and amd.form["AnsweredBy"].startswith("machine_end_")
    done = await asyncio.to_thread(lambda: tw.calls(created.sid).update(status="completed"))
    assert done.status == "completed"
    await wait_callee_exit()


async def test_lab_twilio_async_enable_human(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    r = live.receiver
    r.documents["/answer"] = "<Response><Pause length='30'/></Response>"
    tw = client(live, monkeypatch)
    created = await asyncio.to_thread(
        tw.calls.create,
        to=live.to("human"),
        from_="+15550199",
        url=r.base + "/answer",
        machine_detection="Enable",
        async_amd=True,
        async_amd_status_callback=r.base + "/amd",
        async_amd_status_callback_method="GET",
    )
    [answer] = await r.wait_for("/answer", timeout=20)
    assert "AnsweredBy" not in answer.form  # the call went on at answer
    [amd] = await r.wait_for("/amd", timeout=30)
    assert amd.method == "GET" and signed(amd)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(amd.url).query))
    assert set(query) == {"CallSid", "AccountSid", "AnsweredBy", "MachineDetectionDuration"}
    assert query["CallSid"] == created.sid and query["AnsweredBy"] == "human"
    done = await asyncio.to_thread(lambda: tw.calls(created.sid).update(status="completed"))
    assert done.status == "completed"
    await wait_callee_exit()


async def test_lab_plivo_hangup_on_machine(live: Live) -> None:
    r = live.receiver
    r.documents["/answer"] = "<Response><Wait length='30'/></Response>"
    body = {
        "from": "+15550199",
        "to": live.to("machine"),
        "answer_url": r.base + "/answer",
        "machine_detection": "hangup",
        "machine_detection_time": 8000,
        "machine_detection_url": r.base + "/md",
        "hangup_url": r.base + "/hangup",
    }
    auth = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    async with aiohttp.ClientSession() as s, s.post(
        f"{live.base}/v1/Account/{SID}/Call/",
        data=json.dumps(body),
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 201
        fired = await resp.json()
    [md] = await r.wait_for("/md", timeout=30)
    assert set(md.form) == {
        "From", "To", "Machine", "CallUUID", "RequestUUID", "ALegUUID", "ALegRequestUUID",
        "IfMachine", "Direction", "Event", "CallStatus",
    }  # fmt: skip
    assert md.form["Machine"] == "true" and md.form["IfMachine"] == "hangup"
    assert md.form["RequestUUID"] == fired["request_uuid"]
    [hangup] = await r.wait_for("/hangup", timeout=15)
    assert hangup.form["Event"] == "Hangup" and signed(hangup)
    await wait_callee_exit()


async def test_lab_telnyx_detect_human(live: Live) -> None:
    r = live.receiver
    body = {"to": live.to("human"), "from": "+15550199", "webhook_url": r.base + "/tx", "answering_machine_detection": "detect"}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s:
        async with s.post(f"{live.base}/v2/calls", json=body) as resp:
            assert resp.status == 200
            call_id = (await resp.json())["data"]["call_control_id"]
        hits = await r.wait_for("/tx", 3, timeout=30)
        async with s.post(f"{live.base}/v2/calls/{call_id}/actions/hangup", json={}) as resp:
            assert resp.status == 200
    hits = await r.wait_for("/tx", 4, timeout=15)
    events = [json.loads(h.body)["data"] for h in hits]
    assert [e["event_type"] for e in events] == [
        "call.initiated",
        "call.answered",
        "call.machine.detection.ended",
        "call.hangup",
    ]
    assert events[2]["payload"]["result"] == "human"
    assert all(RequestValidator(TOKEN).validate(h.url, h.body.decode(), h.headers["X-Twilio-Signature"]) for h in hits)
    await wait_callee_exit()


async def test_lab_twilio_sync_detect_message_end_machine(live: Live) -> None:
    r = live.receiver
    r.documents["/vm"] = "<Response><Play>beep</Play></Response>"
    body = {"To": live.to("machine"), "From": "+15550199", "Url": r.base + "/vm", "MachineDetection": "DetectMessageEnd"}
    auth = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Basic {auth}"}) as s,
        s.post(f"{live.base}/2010-04-01/Accounts/{SID}/Calls.json", data=body) as resp,
    ):
        assert resp.status == 201
        sid = (await resp.json())["sid"]
    [vm] = await r.wait_for("/vm", timeout=30)
    assert set(vm.form) == URL_FIELDS and signed(vm)
    assert vm.form["AnsweredBy"].startswith("machine_end_") and vm.form["CallSid"] == sid
    call = live.engine.get(sid)
    assert call is not None
    await call.wait_ended(15)  # the document's end hangs up
    await wait_callee_exit()


async def test_lab_plivo_sync_human(live: Live) -> None:
    r = live.receiver
    r.documents["/answer"] = "<Response><Hangup/></Response>"
    body = {"from": "+15550199", "to": live.to("human"), "answer_url": r.base + "/answer", "machine_detection": "true"}
    auth = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Basic {auth}"}) as s,
        s.post(f"{live.base}/v1/Account/{SID}/Call/", json=body) as resp,
    ):
        assert resp.status == 201
    [answer] = await r.wait_for("/answer", timeout=30)
    assert set(answer.form) == {
        "From", "To", "CallUUID", "RequestUUID", "ALegUUID", "ALegRequestUUID", "Direction", "CallStatus",
        "Event", "Machine",
    }  # fmt: skip
    assert answer.form["Machine"] == "false" and answer.form["Event"] == "StartApp" and signed(answer)
    await wait_callee_exit()


async def test_lab_telnyx_detect_beep_machine(live: Live) -> None:
    r = live.receiver
    body = {
        "to": live.to("machine"),
        "from": "+15550199",
        "webhook_url": r.base + "/tx",
        "answering_machine_detection": "detect_beep",
    }
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s:
        async with s.post(f"{live.base}/v2/calls", json=body) as resp:
            assert resp.status == 200
            call_id = (await resp.json())["data"]["call_control_id"]
        hits = await r.wait_for("/tx", 4, timeout=30)
        async with s.post(f"{live.base}/v2/calls/{call_id}/actions/hangup", json={}) as resp:
            assert resp.status == 200
    hits = await r.wait_for("/tx", 5, timeout=15)
    events = [json.loads(h.body)["data"] for h in hits]
    assert [e["event_type"] for e in events] == [
        "call.initiated",
        "call.answered",
        "call.machine.detection.ended",
        "call.machine.greeting.ended",
        "call.hangup",
    ]
    assert events[2]["payload"]["result"] == "machine"
    assert events[3]["payload"]["result"] in ("beep_detected", "ended")
    await wait_callee_exit()

"""ari-amd on live calls: real Asterisk 22, real SIPp callees streaming generated greetings.

Every door is exercised as its users would: the engine's place() (what the HTTP dialects and
`ari-amd call` use), the dialplan's Stasis() (the AMD() drop-in, read back through a UserEvent
the dialplan sends after Stasis returns), the async callback to a real local HTTP server, and
the failure paths (busy, no answer, hangup mid-detection, media gone, websocket cut). After
each test nothing of ours is left in Asterisk.

Live verdicts are compared with `ari-amd classify` on the clip as the callee sent it: SIPp starts
a clip after the ACK, some ms after the answer (over 100 ms on a loaded machine), where a phone's
audio flows at answer; that start is read from what the tap heard (bounded by MAX_CALLEE_LAG_MS),
so what is compared is ari-amd's own path. `bench/live.py` reports the plain difference.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ari_amd.ari import ChannelUserevent, naming
from ari_amd.calls.engine import CallEngine
from ari_amd.calls.model import AfterDetection, Call, CallEventKind, CallRequest, CallStatus, PlaceError
from ari_amd.detect import AmdParams, AnsweredBy, Mode, Verdict
from ari_amd.media import build_packet
from tests import labkit

pytestmark = pytest.mark.lab

ENABLE = AmdParams()
DME = AmdParams(mode=Mode.DETECT_MESSAGE_END)
DURATION_TOLERANCE_MS = 100  # live vs offline, on the audio clock
PACING_S = 0.25
# Twenty clips of every kind the detector must tell apart (category, seed).
MIXED = [(c, s) for c in ("human_residential", "machine_personal", "machine_carrier") for s in (1, 2, 3, 4)] + [
    (c, s) for c in ("human_business", "machine_no_beep", "machine_short", "fax") for s in (1, 2)
]


MAX_CALLEE_LAG_MS = 300  # beyond this the lab, or ari-amd's clock, is broken


@pytest.fixture
async def engine(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[CallEngine]:
    """The engine, its RTP on one shared socket unless parametrized with rtp.socket "per_call"."""
    labkit.require_lab()
    socket_mode = getattr(request, "param", "shared")
    eng = CallEngine(labkit.settings(detection_record_dir=str(tmp_path / "heard"), rtp_socket=socket_mode),
                     app=labkit.app_name())  # fmt: skip
    await eng.start()
    try:
        yield eng
    finally:
        await eng.close()
        labkit.stop_callee()
        await assert_nothing_left(eng)


async def assert_nothing_left(eng: CallEngine) -> None:
    """No channel or bridge that this engine created is still in Asterisk, and no receiver or
    port of ours is still held."""
    assert not eng.pool.in_use, f"RTP ports still held: {sorted(eng.pool.in_use)}"
    assert eng.hub is None or len(eng.hub) == 0, f"{len(eng.hub)} receivers still on the shared socket"
    headers = {"Authorization": "Basic " + base64.b64encode(b"ari-amd:ari-amd").decode()}
    async with aiohttp.ClientSession(headers=headers) as s:
        mine = {c.id for c in eng.recent()}
        deadline = time.monotonic() + 5
        while True:
            async with s.get("http://127.0.0.1:8088/ari/channels") as r:
                channels = [c["id"] for c in await r.json()]
            async with s.get("http://127.0.0.1:8088/ari/bridges") as r:
                bridges = [b["id"] for b in await r.json()]
            left = [x for x in channels + bridges
                    if x in mine or (naming.owner_of(x) or ("", ""))[1] in mine]
            if not left:
                return
            assert time.monotonic() < deadline, f"left behind in Asterisk: {left}"
            await asyncio.sleep(0.2)


async def expected(engine: CallEngine, call: Call, clip: Path, params: AmdParams) -> Verdict:
    """Offline classify of the clip as the callee really sent it: started when SIPp started it
    (measured in what the tap heard, bounded), so the comparison is of ari-amd's path alone."""
    await call.wait_ended(15)  # the recording is written when detection ends
    lag = labkit.callee_lag_ms(Path(engine.settings.detection_record_dir) / f"{call.id}.wav", clip)
    assert lag <= MAX_CALLEE_LAG_MS, f"the callee's audio began {lag} ms after answer"
    return labkit.offline_as_sent(clip, params, lag)


class CallbackServer:
    """A real HTTP server on loopback that records what ari-amd posts to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            form = dict(await request.post()) if request.method == "POST" else dict(request.query)
            self.received.append({"method": request.method, "form": form, "headers": dict(request.headers)})
            self.arrived.set()
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_route("*", "/amd", handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/amd"

    async def wait(self, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < n:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), max(0.01, deadline - time.monotonic()))

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def callback_server() -> AsyncIterator[CallbackServer]:
    server = CallbackServer()
    await server.start()
    yield server
    await server.close()


async def test_live_verdicts_match_offline_classify_on_twenty_clips(engine: CallEngine, tmp_path: Path) -> None:
    clips = labkit.write_clips(tmp_path / "clips", MIXED)
    labkit.callee("--dir", str(tmp_path / "clips"), "--count", str(len(clips)), "--max-time", "40")
    calls = {}
    for name in clips:  # paced like a dialer: one SIPp serves them all, and its start lags with load
        calls[name] = await engine.place(CallRequest(labkit.endpoint(name), ENABLE))
        await asyncio.sleep(PACING_S)
    mismatches = []
    for name, call in calls.items():
        live = await call.wait_verdict(60)
        want = await expected(engine, call, clips[name], ENABLE)
        assert live is not None, f"{name}: no verdict ({call.status.value}, {call.error})"
        if live.answered_by != want.answered_by or abs(live.duration_ms - want.duration_ms) > DURATION_TOLERANCE_MS:
            mismatches.append(f"{name}: live {live.answered_by.value} {live.duration_ms} ms ({live.cause}), "
                              f"offline {want.answered_by.value} {want.duration_ms} ms ({want.cause})")
    for call in calls.values():
        await call.wait_ended(10)
        assert call.status is CallStatus.COMPLETED
    assert not mismatches, "\n".join(mismatches)
    # The calls' packets went the shared socket's array path, not one by one.
    assert engine.hub is not None and engine.hub.stats.fast > 10 * engine.hub.stats.serial, engine.hub.stats


@pytest.mark.parametrize("engine", ["shared", "per_call"], indirect=True)
async def test_detect_message_end_reports_the_beep_after_it_ends(engine: CallEngine, tmp_path: Path) -> None:
    clips = labkit.write_clips(tmp_path / "clips", [("machine_personal", 7)])
    (name, path), = clips.items()
    labkit.callee(str(path), "--max-time", "40")
    call = await engine.place(CallRequest(labkit.endpoint(name), DME))
    kinds: list[str] = []
    call.listen(lambda ev: kinds.append(ev.verdict.answered_by.value) if ev.verdict else None)
    final = await call.wait_verdict(60)
    want = await expected(engine, call, path, DME)
    assert final is not None and final.answered_by is AnsweredBy.MACHINE_END_BEEP, final
    assert abs(final.duration_ms - want.duration_ms) <= DURATION_TOLERANCE_MS
    beep = [s for s in final.segments if s.kind == "beep"]
    assert beep and final.duration_ms >= beep[-1].end_ms, final.segments
    await call.drain()
    assert kinds == ["machine_start", "machine_end_beep"]  # the interim verdict came first


async def run_dialplan(engine: CallEngine, name: str, args: str, wait_s: int = 0) -> dict[str, Any]:
    """Originate into [ari-amd-test]: once answered the callee's channel runs
    Stasis(<engine.app>,sync,<args>), reports the variables in a UserEvent, waits wait_s, hangs up."""
    reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def on_user_event(ev: object) -> None:
        if isinstance(ev, ChannelUserevent) and ev.eventname == "AMDResult":
            reports.put_nowait(dict(ev.userevent))

    unsubscribe = engine.events.subscribe(on_user_event, types={"ChannelUserevent"})
    try:
        variables = {"ARI_AMD_ARGS": args} if args else {}
        if wait_s:
            variables["ARI_AMD_WAIT"] = str(wait_s)
        channel = await engine.ari.originate(labkit.endpoint(name), context="ari-amd-test", extension=engine.app,
                                             priority=1, variables=variables or None)
        # Whatever ari-amd does with the channel, the test hears its UserEvent.
        await engine.ari.subscribe(engine.app, f"channel:{channel.id}")
        report = await asyncio.wait_for(reports.get(), 60)
        report["channel_id"] = channel.id
        return report
    finally:
        unsubscribe()


async def test_dialplan_stasis_is_a_drop_in_for_amd(engine: CallEngine, tmp_path: Path) -> None:
    clips = labkit.write_clips(tmp_path / "clips", [("machine_carrier", 3), ("human_residential", 5)])
    labkit.callee("--dir", str(tmp_path / "clips"), "--count", "2", "--max-time", "40")
    for (name, path), args, params in zip(clips.items(), ["mode=DetectMessageEnd", ""], [DME, ENABLE]):
        report = await run_dialplan(engine, name, args)
        call = next(c for c in engine.recent() if c.channel_id == report["channel_id"])
        want = await expected(engine, call, path, params)
        assert report["STASISSTATUS"] == "SUCCESS"
        assert report["ANSWEREDBY"] == want.answered_by.value, report
        assert report["AMDSTATUS"] == ("HUMAN" if want.answered_by is AnsweredBy.HUMAN else "MACHINE")
        assert report["AMDCAUSE"].split("-")[0] in ("HUMAN", "BEEP", "LONGGREETING"), report
        assert abs(int(report["AMDDURATION"]) - want.duration_ms) <= DURATION_TOLERANCE_MS, report


async def test_dialplan_with_a_bad_option_gets_notsure_naming_it(engine: CallEngine, tmp_path: Path) -> None:
    labkit.write_tone_wav(tmp_path / "tone.wav", 3)
    labkit.callee(str(tmp_path / "tone.wav"), "--max-time", "20")
    report = await run_dialplan(engine, "tone", "speech_threshold=99999")
    assert report["AMDSTATUS"] == "NOTSURE"
    assert report["AMDCAUSE"] == "BADARGS-MachineDetectionSpeechThreshold", report


async def test_async_amd_posts_the_verdict_to_the_callback(
    engine: CallEngine, callback_server: CallbackServer, tmp_path: Path
) -> None:
    clips = labkit.write_clips(tmp_path / "clips", [("human_residential", 9), ("machine_personal", 9)])
    labkit.callee("--dir", str(tmp_path / "clips"), "--count", "2", "--max-time", "40")
    names = list(clips)
    # 1. Placed through the engine, the channel held in Stasis meanwhile.
    call = await engine.place(CallRequest(labkit.endpoint(names[0]), ENABLE, async_amd=True,
                                          after=AfterDetection.HOLD,
                                          meta={"amd_callback": callback_server.url, "account_sid": "AC" + "1" * 32}))
    await callback_server.wait(1)
    want = labkit.offline(clips[names[0]], ENABLE)
    got = callback_server.received[0]
    assert got["method"] == "POST"
    assert got["form"] == {"CallSid": call.id, "AccountSid": "AC" + "1" * 32, "AnsweredBy": want.answered_by.value,
                           "MachineDetectionDuration": got["form"]["MachineDetectionDuration"]}
    assert abs(int(got["form"]["MachineDetectionDuration"]) - want.duration_ms) <= DURATION_TOLERANCE_MS
    await engine.hangup(call)
    # 2. From the dialplan: Stasis(app,async,callback=URL) returns at once, the verdict follows.
    started = time.monotonic()
    report = await run_dialplan(engine, names[1], f"async,callback={callback_server.url}", wait_s=15)
    assert time.monotonic() - started < 3, "async Stasis() held the channel"
    assert report["STASISSTATUS"] == "SUCCESS" and report["AMDSTATUS"] == ""
    await callback_server.wait(2)
    assert callback_server.received[1]["form"]["AnsweredBy"] == labkit.offline(clips[names[1]], ENABLE).answered_by.value


async def test_busy_and_unanswered_calls_end_with_their_status_and_no_verdict(engine: CallEngine) -> None:
    labkit.callee("--reject", "486")
    busy = await engine.place(CallRequest(labkit.endpoint("busy"), ENABLE))
    await busy.wait_ended(15)
    assert busy.status is CallStatus.BUSY and busy.verdict is None
    labkit.stop_callee()
    labkit.callee("--no-answer")
    ringing = await engine.place(CallRequest(labkit.endpoint("nobody"), ENABLE, ring_timeout_s=2))
    statuses = []
    ringing.listen(lambda ev: statuses.append(ev.status.value))
    await ringing.wait_ended(15)
    await ringing.drain()
    assert ringing.status is CallStatus.NO_ANSWER and ringing.verdict is None
    assert statuses == ["ringing", "no-answer"]
    assert len(engine.batch) == 0  # tapped before the dial: their detectors left the batch all the same


async def test_an_unknown_endpoint_is_refused_when_placed(engine: CallEngine) -> None:
    with pytest.raises(PlaceError) as err:
        await engine.place(CallRequest("NOSUCHTECH/nowhere", ENABLE))
    assert "NOSUCHTECH/nowhere" in str(err.value) and err.value.status >= 400
    assert not engine.recent(), "a call that was never placed is not listed"


async def test_callee_hangup_mid_detection_is_unknown_with_cause_hangup(engine: CallEngine, tmp_path: Path) -> None:
    clips = labkit.write_clips(tmp_path / "clips", [("machine_personal", 11)])
    (name, _), = clips.items()
    labkit.callee("--dir", str(tmp_path / "clips"), "--max-time", "1")  # SIPp hangs up after 1 s
    call = await engine.place(CallRequest(labkit.endpoint(name), DME))
    verdict = await call.wait_verdict(30)
    assert verdict is not None and verdict.answered_by is AnsweredBy.UNKNOWN, verdict
    assert "hangup" in verdict.cause and verdict.duration_ms < 2000
    await call.wait_ended(10)
    assert call.status is CallStatus.COMPLETED


async def test_media_that_stops_ends_detection_by_the_wall_clock(tmp_path: Path) -> None:
    labkit.require_lab()
    eng = CallEngine(labkit.settings(detection_media_timeout_s=1.0), app=labkit.app_name())
    await eng.start()
    try:
        clips = labkit.write_clips(tmp_path / "clips", [("machine_personal", 12)])
        (name, _), = clips.items()
        labkit.callee("--dir", str(tmp_path / "clips"), "--max-time", "40")
        call = await eng.place(CallRequest(labkit.endpoint(name), DME))
        started = asyncio.Event()
        call.listen(lambda ev: started.set() if ev.kind is CallEventKind.AMD else None)
        await asyncio.wait_for(started.wait(), 15)
        await eng.ari.hangup(naming.media_id(call.id))  # the tap's RTP stops
        verdict = await call.wait_verdict(15)
        assert verdict is not None and verdict.answered_by is AnsweredBy.UNKNOWN, verdict
        assert "no_media" in verdict.cause
        await call.wait_ended(10)
    finally:
        await eng.close()
        labkit.stop_callee()
        await assert_nothing_left(eng)


async def answered_call(engine: CallEngine, tmp_path: Path, clip: tuple[str, int],
                        params: AmdParams) -> tuple[Call, Path]:  # fmt: skip
    """One call to a callee playing `clip`, once it is answered."""
    (name, path), = labkit.write_clips(tmp_path / "clips", [clip]).items()
    labkit.callee(str(path), "--max-time", "40")
    call = await engine.place(CallRequest(labkit.endpoint(name), params))
    answered = asyncio.Event()
    call.listen(lambda ev: answered.set() if ev.kind is CallEventKind.ANSWERED else None)
    await asyncio.wait_for(answered.wait(), 15)
    return call, path


async def assert_offline_verdict(engine: CallEngine, call: Call, path: Path, params: AmdParams) -> None:
    verdict = await call.wait_verdict(60)
    want = await expected(engine, call, path, params)
    assert verdict is not None and verdict.answered_by == want.answered_by, verdict
    assert abs(verdict.duration_ms - want.duration_ms) <= DURATION_TOLERANCE_MS


async def test_spoofed_rtp_into_the_shared_socket_changes_no_verdict(engine: CallEngine, tmp_path: Path) -> None:
    """A stranger floods ari-amd's RTP socket mid-call with loud, well-formed RTP (mu-law 0x00 is
    full scale): the call's verdict is the one its own audio gives, and every spoof is counted."""
    call, path = await answered_call(engine, tmp_path, ("human_residential", 21), ENABLE)
    assert engine.hub is not None
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        for seq in range(150):  # 3 s of a second stream, every SSRC Asterisk might have picked
            stranger.sendto(build_packet(b"\x00" * 160, sequence=seq, timestamp=seq * 160, ssrc=seq),
                            ("127.0.0.1", engine.hub.port))  # fmt: skip
            sent += 1
            await asyncio.sleep(0.02)
    await assert_offline_verdict(engine, call, path, ENABLE)
    assert engine.hub.stats.unknown_source >= sent
    dropped = engine.metrics.registry.get_sample_value("ari_amd_rtp_packets_dropped_total", {"reason": "unknown_source"})
    assert dropped is not None and dropped >= sent
    await call.wait_ended(10)


async def test_a_websocket_cut_mid_call_loses_no_verdict(engine: CallEngine, tmp_path: Path) -> None:
    call, path = await answered_call(engine, tmp_path, ("machine_carrier", 13), DME)
    await asyncio.sleep(1)
    assert engine.events.force_reconnect()
    await assert_offline_verdict(engine, call, path, DME)
    await call.wait_ended(10)
    assert engine.events.stats.reconnects >= 1


def test_ari_amd_call_prints_one_json_verdict(tmp_path: Path) -> None:
    labkit.require_lab()
    clips = labkit.write_clips(tmp_path / "clips", [("machine_carrier", 3)])
    (name, path), = clips.items()
    want = labkit.offline(path, DME)
    assert want.answered_by is AnsweredBy.MACHINE_END_BEEP, "the clip must end in a beep offline"
    labkit.callee(str(path), "--max-time", "40")
    env = dict(os.environ, ARI_AMD_RTP_PORT_FIRST=str(labkit.RTP_PORTS[0]), ARI_AMD_RTP_PORT_LAST=str(labkit.RTP_PORTS[1]),
               ARI_AMD_DETECTION_RECORD_DIR=str(tmp_path / "heard"))
    try:
        r = subprocess.run([sys.executable, "-m", "ari_amd.cli", "call", "--json", "--mode", "DetectMessageEnd",
                            labkit.endpoint(name)], capture_output=True, text=True, timeout=90, env=env)
    finally:
        labkit.stop_callee()
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    assert record["status"] == "completed", f"the call was not answered; its log:\n{r.stderr}"
    recording = tmp_path / "heard" / f"{record['call_id']}.wav"
    assert recording.is_file(), f"no recording of the call; its log:\n{r.stderr}"
    lag = labkit.callee_lag_ms(recording, path)
    assert lag <= MAX_CALLEE_LAG_MS
    want = labkit.offline_as_sent(path, DME, lag)
    assert record["answered_by"] == want.answered_by.value
    assert abs(record["duration_ms"] - want.duration_ms) <= DURATION_TOLERANCE_MS
    assert record["call_id"].startswith("CA") and record["status"] == "completed"
    # Bad input: named, exit 2, nothing placed.
    r = subprocess.run([sys.executable, "-m", "ari_amd.cli", "call", "--speech-threshold", "10", "PJSIP/x"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "MachineDetectionSpeechThreshold" in r.stderr


def test_serve_runs_the_dialplan_door_reports_metrics_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    labkit.require_lab()
    import urllib.error
    import urllib.request

    port = 18000 + os.getpid() % 1000
    app = labkit.app_name()
    env = dict(os.environ, ARI_AMD_ARI_APP=app, ARI_AMD_HTTP_PORT=str(port),
               ARI_AMD_RTP_PORT_FIRST=str(labkit.RTP_PORTS[0]), ARI_AMD_RTP_PORT_LAST=str(labkit.RTP_PORTS[1]),
               ARI_AMD_CALLBACKS_OUTBOX=str(tmp_path / "outbox.sqlite3"), ARI_AMD_ACCOUNTS="AC" + "0" * 32 + ":" + TOKEN)
    clips = labkit.write_clips(tmp_path / "clips", [("human_residential", 4)])
    (name, path), = clips.items()
    labkit.callee(str(path), "--max-time", "30")
    proc = subprocess.Popen([sys.executable, "-m", "ari_amd.cli", "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)

    def get(path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    try:
        deadline = time.monotonic() + 15
        health: dict[str, Any] = {}
        while time.monotonic() < deadline and not health.get("ari_connected"):
            try:
                health = json.loads(get("/healthz")[1])
            except OSError:
                time.sleep(0.2)
        assert health.get("ari_connected"), "serve never reported ARI connected"
        # The carriers' APIs are served by the same process.
        assert "/2010-04-01/Accounts/{AccountSid}/Calls.json" in json.loads(get("/openapi.json")[1])["paths"]
        # The AMD() drop-in, through the service: Stasis(<app>,sync) on an answered channel.
        want = labkit.offline(path, ENABLE)

        async def dialplan_call() -> None:
            async with labkit_ari() as ari:
                await ari.originate(labkit.endpoint(name), context="ari-amd-test", extension=app, priority=1)

        asyncio.run(dialplan_call())
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            text = get("/metrics")[1].decode()
            if f'ari_amd_calls_total{{answered_by="{want.answered_by.value}",mode="Enable"}} 1.0' in text:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"no {want.answered_by.value} verdict counted in /metrics:\n{text}")
        received = [line for line in text.splitlines() if line.startswith("ari_amd_rtp_packets_received_total")]
        assert received and float(received[0].split()[-1]) > 50, received
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        labkit.stop_callee()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    events = [e["event"] for e in lines]
    assert "serving" in events and "stopped" in events, err
    verdicts = [e for e in lines if e["event"] == "verdict"]
    assert len(verdicts) == 1 and verdicts[0]["call_id"].startswith("CA"), verdicts  # one event per line, with its call
    assert TOKEN not in err and "ari-amd:ari-amd" not in err  # no secrets in the logs


TOKEN = "tok-9f8e7d6c5b4a"


def labkit_ari():  # type: ignore[no-untyped-def]
    from ari_amd.ari import AriClient

    return AriClient("http://127.0.0.1:8088", "ari-amd", "ari-amd")


async def test_shutdown_resolves_a_call_in_flight_and_its_dialplan_goes_on(tmp_path: Path) -> None:
    """What SIGTERM does to `serve`: engine.close() with a sync Stasis() call mid-greeting."""
    labkit.require_lab()
    from ari_amd.ari import AriClient, EventStream

    eng = CallEngine(labkit.settings(), app=labkit.app_name())
    observer_app = labkit.app_name()
    observer = AriClient("http://127.0.0.1:8088", "ari-amd", "ari-amd")
    observed = EventStream(observer, observer_app)
    reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    observed.subscribe(lambda ev: reports.put_nowait(dict(ev.userevent)) if isinstance(ev, ChannelUserevent) else None,
                       types={"ChannelUserevent"})
    await observed.start()
    await observed.wait_ready(10)
    await eng.start()
    try:
        clips = labkit.write_clips(tmp_path / "clips", [("machine_carrier", 3)])
        (name, _), = clips.items()
        labkit.callee("--dir", str(tmp_path / "clips"), "--max-time", "40")
        channel = await eng.ari.originate(labkit.endpoint(name), context="ari-amd-test", extension=eng.app,
                                          priority=1, variables={"ARI_AMD_ARGS": "mode=DetectMessageEnd"})
        await observer.subscribe(observer_app, f"channel:{channel.id}")
        deadline = time.monotonic() + 15
        while not any(c.verdicts for c in eng.recent()):  # mid-greeting: machine_start given, the end not yet
            assert time.monotonic() < deadline, "the call never got its interim verdict"
            await asyncio.sleep(0.1)
        call = eng.recent()[0]
        await eng.close()
        report = await asyncio.wait_for(reports.get(), 15)
        # A machine whose greeting's end was not heard: machine_end_other, as at any early end.
        assert call.verdict is not None and call.verdict.answered_by is AnsweredBy.MACHINE_END_OTHER
        assert "shutdown" in call.verdict.cause
        assert report["AMDSTATUS"] == "MACHINE" and report["ANSWEREDBY"] == "machine_end_other", report
    finally:
        await eng.close()
        await observed.close()
        await observer.close()
        labkit.stop_callee()
    await assert_nothing_left(eng)

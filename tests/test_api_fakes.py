"""What the API tests share: an in-memory Engine, a callback receiver, the app on a real port.

The fake drives Call objects through their states the way the engine does (_set_status,
_add_verdict, _emit, _end), so the dialects are tested against the Call contract itself. The
tests at the bottom pin the fake's own behaviour, so a broken fake cannot pass a broken API.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from ari_amd.api import ApiSettings, create_app
from ari_amd.calls.model import AfterDetection, Call, CallEventKind, CallRequest, CallStatus, DialplanTarget, PlaceError
from ari_amd.calls.outbox import Outbox
from ari_amd.detect import AnsweredBy, Rule, Verdict

SID = "AC" + "a" * 32
TOKEN = "b" * 32
OTHER_SID = "AC" + "c" * 32
OTHER_TOKEN = "d" * 32


def verdict(answered_by: str, ms: int = 1800, final: bool = True) -> Verdict:
    ab = AnsweredBy(answered_by)
    rule = {
        AnsweredBy.HUMAN: Rule.SPEECH_END,
        AnsweredBy.MACHINE_START: Rule.SPEECH_THRESHOLD,
        AnsweredBy.MACHINE_END_BEEP: Rule.BEEP,
        AnsweredBy.FAX: Rule.FAX,
    }.get(ab, Rule.TIMEOUT)
    return Verdict(ab, ms, f"{rule.value} at {ms}ms", rule, final=final)


@dataclass
class Script:
    """How the callee behaves. verdicts: what detection says, in order (an interim one first
    for DetectMessageEnd). hold_s: how long a HELD callee stays before hanging up itself."""

    answer: bool = True
    unanswered: CallStatus = CallStatus.NO_ANSWER
    verdicts: list[Verdict] = field(default_factory=lambda: [verdict("human", 900)])
    ring_s: float = 0.02
    detect_s: float = 0.03
    hold_s: float = 10.0


class FakeEngine:
    app = "ari-amd"

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self.script = Script()
        self.scripts: dict[str, Script] = {}  # by a substring of the endpoint
        self.actions: list[tuple[Any, ...]] = []
        self.placed: list[CallRequest] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._hung_up: dict[str, asyncio.Event] = {}

    def _script_for(self, endpoint: str) -> Script:
        for key, s in self.scripts.items():
            if key in endpoint:
                return s
        return self.script

    async def place(self, request: CallRequest) -> Call:
        if "refused" in request.endpoint:
            raise PlaceError("Allocation failed", status=400)
        if "down" in request.endpoint:
            raise PlaceError("Asterisk unreachable")
        if "boom" in request.endpoint:
            raise RuntimeError("a bug in the engine")
        self.placed.append(request)
        call = Call(request)
        self.calls[call.id] = call
        self._hung_up[call.id] = asyncio.Event()
        call._set_status(CallStatus.INITIATED)
        call._emit(CallEventKind.INITIATED)  # before place() returns, as the real engine may
        task = asyncio.create_task(self._drive(call, self._script_for(request.endpoint)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return call

    def _finish(self, call: Call, status: CallStatus) -> None:
        if call.ended:
            return
        call._end(status)
        call._emit(CallEventKind.COMPLETED)

    async def _after(self, call: Call, s: Script) -> None:
        req = call.request
        if req.after is AfterDetection.HANGUP:
            await self.hangup(call)
        elif req.after is AfterDetection.CONTINUE:
            self.actions.append(("continue", call.id, req.dialplan))

    async def _drive(self, call: Call, s: Script) -> None:
        await asyncio.sleep(s.ring_s)
        call._set_status(CallStatus.RINGING)
        call._emit(CallEventKind.RINGING)
        await asyncio.sleep(s.ring_s)
        if not s.answer:
            self._finish(call, s.unanswered)
            return
        call.answered_at = datetime.now(UTC)
        call._set_status(CallStatus.IN_PROGRESS)
        call._emit(CallEventKind.ANSWERED)
        req = call.request
        if req.amd is None or req.async_amd:
            await self._after(call, s)
        if req.amd is not None:
            for v in s.verdicts:
                await asyncio.sleep(s.detect_s)
                if call.ended:
                    break
                call._add_verdict(v)
                call._emit(CallEventKind.VERDICT, verdict=v)
            if not req.async_amd and not call.ended:
                self.actions.append(("variables", call.id, call.answered_by))
                await self._after(call, s)
        if req.after is AfterDetection.CONTINUE and not call.ended:
            await asyncio.sleep(0.05)  # the dialplan runs a little, then the callee hangs up
            self._finish(call, CallStatus.COMPLETED)
            return
        try:
            await asyncio.wait_for(self._hung_up[call.id].wait(), s.hold_s)
        except TimeoutError:
            self.actions.append(("callee_hangup", call.id))
            self._finish(call, CallStatus.COMPLETED)

    def get(self, call_id: str) -> Call | None:
        return self.calls.get(call_id)

    def recent(self) -> list[Call]:
        return sorted(self.calls.values(), key=lambda c: c.created_at, reverse=True)

    async def hangup(self, call: Call) -> None:
        self.actions.append(("hangup", call.id))
        if call.id in self._hung_up:
            self._hung_up[call.id].set()
        self._finish(call, CallStatus.CANCELED if call.status in (CallStatus.INITIATED, CallStatus.RINGING) else CallStatus.COMPLETED)

    async def play(self, call: Call, media: str) -> None:
        if call.ended:
            return
        self.actions.append(("play", call.id, media))
        await asyncio.sleep(0.005)

    async def continue_in_dialplan(self, call: Call, target: DialplanTarget | None = None) -> None:
        self.actions.append(("continue", call.id, target))

    async def dial(self, call: Call, endpoint: str, timeout_s: int = 30) -> str:
        if call.ended:
            return "failed"
        self.actions.append(("dial", call.id, endpoint, timeout_s))
        await asyncio.sleep(0.01)
        return "busy" if "busy" in endpoint else "completed"

    def did(self, call_id: str, what: str) -> list[tuple[Any, ...]]:
        return [a for a in self.actions if a[0] == what and a[1] == call_id]

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Hit:
    method: str
    url: str  # as requested, with the query
    path: str
    form: dict[str, str]
    headers: dict[str, str]
    body: bytes


class Receiver:
    """The integrator's web server: records callbacks, serves TwiML documents by path."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hits: list[Hit] = []
        self.documents: dict[str, str] = {}
        self.arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        form: dict[str, str] = {}
        if request.content_type == "application/x-www-form-urlencoded":
            form = {k: str(v) for k, v in (await request.post()).items()}
        hit = Hit(request.method, str(request.url), request.path, form, dict(request.headers), body)
        async with self.arrived:
            self.hits.append(hit)
            self.arrived.notify_all()
        doc = self.documents.get(request.path)
        if doc is not None:
            return web.Response(text=doc, content_type="application/xml")
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def at(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def wait_for(self, path: str, count: int = 1, timeout: float = 5.0) -> list[Hit]:
        async def enough() -> None:
            async with self.arrived:
                await self.arrived.wait_for(lambda: len(self.at(path)) >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.at(path)


@dataclass
class Api:
    engine: FakeEngine
    receiver: Receiver
    base: str
    outbox: Outbox
    settings: ApiSettings


def settings_for(tmp_path: Path, **kw: Any) -> ApiSettings:
    opts: dict[str, Any] = {
        "accounts": {SID: TOKEN, OTHER_SID: OTHER_TOKEN},
        "endpoint_template": "PJSIP/{number}@sipp",
        "sip_endpoint": "sipp",
        "outbox_path": str(tmp_path / "outbox.db"),
        "webhook_timeout_s": 2.0,
        "max_body_bytes": 16 * 1024,
    }
    opts.update(kw)
    return ApiSettings(**opts)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    engine = FakeEngine()
    receiver = Receiver()
    await receiver.start()
    settings = settings_for(tmp_path)
    outbox = Outbox(settings.outbox_path, attempt_timeout_s=2.0, base_delay_s=0.02, max_delay_s=0.1, horizon_s=30)
    app = create_app(engine, settings, outbox=outbox)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    with structlog.testing.capture_logs() as logs:
        try:
            yield Api(engine, receiver, f"http://127.0.0.1:{port}", outbox, settings)
        finally:
            await engine.close()
            await runner.cleanup()
            await outbox.close()
            await receiver.stop()
    # A dialect's step that raised is logged, not raised: catch it here.
    broken = [e for e in logs if e["event"] in ("driver_step_failed", "call_listener_failed", "twiml_failed")]
    assert not broken, broken


# ------------------------------------------------------------------- the fake's own behaviour


async def test_the_fake_runs_a_sync_call_through_its_states() -> None:
    engine = FakeEngine()
    from ari_amd.detect import AmdParams

    seen: list[tuple[str, str]] = []
    call = await engine.place(CallRequest("PJSIP/1@sipp", amd=AmdParams(), after=AfterDetection.CONTINUE))
    call.listen(lambda ev: seen.append((ev.kind.value, ev.status.value)))
    await call.wait_ended(2)
    await call.drain()
    await engine.close()
    assert seen == [("ringing", "ringing"), ("answered", "in-progress"), ("verdict", "in-progress"), ("completed", "completed")]
    assert call.answered_by == "human" and engine.did(call.id, "continue")


async def test_the_fake_holds_until_hung_up() -> None:
    engine = FakeEngine()
    call = await engine.place(CallRequest("PJSIP/1@sipp", after=AfterDetection.HOLD))
    await asyncio.sleep(0.1)
    assert call.status is CallStatus.IN_PROGRESS and not call.ended
    await engine.hangup(call)
    assert call.ended and call.status is CallStatus.COMPLETED
    await engine.close()

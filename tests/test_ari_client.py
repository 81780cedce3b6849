"""The ARI client: event parsing, REST and websocket behaviour against a small in-process ARI
server (for what a real Asterisk cannot be made to do on demand: refuse, drop, replace), and the
same flows against the real lab Asterisk (marked `lab`)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
from aiohttp import WSMsgType, web
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_amd.ari import (
    ApplicationReplaced,
    AriClient,
    AriConnectionError,
    AriError,
    ChannelDestroyed,
    ChannelHangupRequest,
    ChannelStateChange,
    ChannelUserevent,
    ChannelVarset,
    Dial,
    Event,
    EventStream,
    StasisEnd,
    StasisStart,
    UnknownEvent,
    parse_event,
    parse_message,
)
from ari_amd.ari.naming import bridge_id, media_id, owner_of, snoop_id
from ari_amd.media import PortPool, RtpReceiver

USER, PASSWORD = "ari-amd", "s3cret-pw"
APP = "ari-amd-test"


def channel(cid: str, state: str = "Up", **extra: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "name": f"PJSIP/sipp-{cid}",
        "state": state,
        "protocol_id": "",
        "caller": {"name": "", "number": "100"},
        "connected": {"name": "", "number": "200"},
        "accountcode": "",
        "dialplan": {"context": "default", "exten": "s", "priority": 1, "app_name": "Stasis", "app_data": APP},
        "creationtime": "2025-01-01T00:00:00.000+0000",
        "language": "en",
        **extra,
    }


def event(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "application": APP, "timestamp": "2025-01-01T00:00:01.000+0000", "asterisk_id": "x", **fields}


# -- event parsing -----------------------------------------------------------------------------


def test_stasis_start_carries_args_and_channel() -> None:
    ev = parse_event(event("StasisStart", args=["sync", "Enable"], channel=channel("c1")))
    assert isinstance(ev, StasisStart)
    assert ev.args == ("sync", "Enable")
    assert ev.channel.id == "c1" and ev.channel.is_up
    assert ev.channel.caller_number == "100" and ev.channel.context == "default" and ev.channel.priority == 1
    assert ev.channel_ids == ("c1",)
    assert ev.replace_channel is None


def test_channel_lifecycle_events() -> None:
    ev = parse_event(event("ChannelStateChange", channel=channel("c1", state="Ringing")))
    assert isinstance(ev, ChannelStateChange) and ev.state == "Ringing"
    ev = parse_event(event("ChannelDestroyed", cause=17, cause_txt="User busy", channel=channel("c1", "Down")))
    assert isinstance(ev, ChannelDestroyed) and (ev.cause, ev.cause_txt) == (17, "User busy")
    ev = parse_event(event("ChannelHangupRequest", cause=16, soft=True, channel=channel("c1")))
    assert isinstance(ev, ChannelHangupRequest) and ev.cause == 16 and ev.soft
    ev = parse_event(event("ChannelHangupRequest", channel=channel("c1")))
    assert isinstance(ev, ChannelHangupRequest) and ev.cause is None and not ev.soft
    ev = parse_event(event("StasisEnd", channel=channel("c1")))
    assert isinstance(ev, StasisEnd) and ev.channel_ids == ("c1",)


def test_dial_of_an_originate_has_a_peer_and_no_caller() -> None:
    ev = parse_event(event("Dial", peer=channel("c1", "Down"), dialstatus="BUSY", dialstring="sipp"))
    assert isinstance(ev, Dial)
    assert ev.caller is None and ev.peer.id == "c1"
    assert (ev.dialstatus, ev.dialstring) == ("BUSY", "sipp")
    assert ev.channel_ids == ("c1",)
    ev = parse_event(event("Dial", peer=channel("c2"), caller=channel("c1"), dialstatus=""))
    assert isinstance(ev, Dial) and ev.channel_ids == ("c2", "c1")


def test_varset_and_userevent_may_have_no_channel() -> None:
    ev = parse_event(event("ChannelVarset", variable="AMDSTATUS", value="MACHINE", channel=channel("c1")))
    assert isinstance(ev, ChannelVarset) and (ev.variable, ev.value) == ("AMDSTATUS", "MACHINE")
    ev = parse_event(event("ChannelVarset", variable="GLOBAL_X", value="1"))
    assert isinstance(ev, ChannelVarset) and ev.channel is None and ev.channel_ids == ()
    ev = parse_event(event("ChannelUserevent", eventname="AmdResult", userevent={"status": "HUMAN"}, channel=channel("c1")))
    assert isinstance(ev, ChannelUserevent) and ev.eventname == "AmdResult" and ev.userevent["status"] == "HUMAN"


def test_application_replaced() -> None:
    assert isinstance(parse_event(event("ApplicationReplaced")), ApplicationReplaced)


def test_unknown_types_fall_back_but_still_route_by_channel() -> None:
    ev = parse_event(event("ChannelDtmfReceived", digit="5", duration_ms=100, channel=channel("c9")))
    assert isinstance(ev, UnknownEvent) and ev.problem == "" and ev.type == "ChannelDtmfReceived"
    assert ev.channel_ids == ("c9",)
    assert ev.raw["digit"] == "5"


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "StasisStart"}',  # no channel
        '{"type": "StasisStart", "channel": "c1"}',
        '{"type": "Dial", "peer": []}',
        '{"type": "ChannelDestroyed", "channel": {"id": ""}}',
    ],
)
def test_known_types_with_unreadable_bodies_become_unknown_events(raw: str) -> None:
    ev = parse_message(raw)
    assert isinstance(ev, UnknownEvent) and ev.problem


@pytest.mark.parametrize("raw", ["", "not json", "[1, 2]", "null", "42", b"\xff\xfe", '{"type": 5}'])
def test_garbage_messages_never_raise(raw: str | bytes) -> None:
    assert isinstance(parse_message(raw), UnknownEvent)


def test_lenient_fields_survive_wrong_types() -> None:
    ev = parse_event(
        event(
            "ChannelDestroyed",
            cause="21",
            cause_txt=None,
            channel={"id": "c1", "caller": "oops", "dialplan": {"priority": "x"}, "channelvars": {"A": 1}},
        )
    )
    assert isinstance(ev, ChannelDestroyed)
    assert ev.cause == 21 and ev.cause_txt == ""
    assert ev.channel.priority is None and ev.channel.channelvars == {"A": "1"}


_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6)
_json = (
    _scalar
    | st.lists(_scalar, max_size=3)
    | st.dictionaries(
        st.sampled_from(["id", "state", "caller", "dialplan", "channelvars", "name"]),
        _scalar | st.dictionaries(st.text(max_size=4), _scalar, max_size=2),
        max_size=4,
    )
)
_types = st.sampled_from(
    ["StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelHangupRequest", "Dial", "ChannelVarset",
     "ChannelUserevent", "ChannelEnteredBridge", "ApplicationReplaced", "Whatever"]
)


@settings(max_examples=500)
@given(_types, st.dictionaries(st.sampled_from(["channel", "peer", "caller", "args", "cause", "soft", "variable",
                                                "userevent", "bridge", "replace_channel"]), _json))
def test_parse_event_never_raises_on_any_json(type_: str, fields: dict[str, Any]) -> None:
    ev = parse_event({"type": type_, **fields})
    assert isinstance(ev, Event)
    assert isinstance(ev.channel_ids, tuple)


def test_external_media_channel_tells_where_rtp_comes_from() -> None:
    from ari_amd.ari import Channel

    ch = Channel.from_json(channel("em", channelvars={"UNICASTRTP_LOCAL_ADDRESS": "127.0.0.1",
                                                      "UNICASTRTP_LOCAL_PORT": "10042"}))
    assert ch.rtp_source() == ("127.0.0.1", 10042)
    assert Channel.from_json(channel("x")).rtp_source() is None


def test_owned_resource_ids_round_trip() -> None:
    assert snoop_id("CA123") == "ari-amd-snoop-CA123"
    assert owner_of(media_id("CA123")) == ("media", "CA123")
    assert owner_of(bridge_id("a.b_c-1")) == ("bridge", "a.b_c-1")
    assert owner_of("1712345678.42") is None
    assert owner_of("ari-amd-other-CA1") is None
    with pytest.raises(ValueError):
        snoop_id("a,b")  # would split addChannel's list


# -- a small in-process ARI server -------------------------------------------------------------


class FakeAri:
    """Just enough of ARI to drive the client: auth, a few resources, an events websocket."""

    def __init__(self) -> None:
        self.sockets: list[web.WebSocketResponse] = []
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.raw_paths: list[str] = []
        self.registered: set[str] = set()
        self.refuse_ws_status: int | None = None
        self.accept_then_close = False
        self.announce_registration = False  # newer Asterisk: ApplicationRegistered on connect
        self.list_applications = True  # False: GET /applications/NAME never finds it
        self.ws_auth_headers: list[str] = []
        self.ws_queries: list[dict[str, str]] = []
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/ari/events", self._events)
        app.router.add_route("*", "/ari/{tail:.*}", self._rest)
        self.app = app
        self.runner: web.AppRunner | None = None
        self.url = ""

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Authentication required"}, status=401)
        return await handler(request)  # type: ignore[no-any-return]

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        assert self.runner is not None
        await self.runner.cleanup()

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_ws_status is not None:
            return web.json_response({"message": "no"}, status=self.refuse_ws_status)
        self.ws_auth_headers.append(request.headers.get("Authorization", ""))
        self.ws_queries.append(dict(request.query))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        app = request.query["app"]
        if self.accept_then_close:
            await ws.close()
            return ws
        self.registered.add(app)
        self.sockets.append(ws)
        if self.announce_registration:
            await ws.send_str(json.dumps(event("ApplicationRegistered", application=app)))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.ERROR:
                    break
        finally:
            if ws in self.sockets:
                self.sockets.remove(ws)
            if not self.sockets:
                self.registered.discard(app)
        return ws

    async def push(self, *events: dict[str, Any] | str) -> None:
        for ws in list(self.sockets):
            for ev in events:
                await ws.send_str(ev if isinstance(ev, str) else json.dumps(ev))

    async def drop_all(self) -> None:
        for ws in list(self.sockets):
            await ws.close()

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, "/" + tail, dict(request.query), body))
        self.raw_paths.append(request.raw_path)
        q = request.query
        if tail == "asterisk/info":
            return web.json_response({"system": {"version": "22.fake"}})
        if tail.startswith("applications/") and request.method == "GET":
            name = tail.split("/", 1)[1]
            if name in self.registered and self.list_applications:
                return web.json_response({"name": name, "channel_ids": []})
            return web.json_response({"message": "Application not found"}, status=404)
        if tail == "channels" and request.method == "POST":
            if "endpoint" not in q:
                return web.json_response({"message": "Endpoint must be specified"}, status=400)
            return web.json_response(channel(q.get("channelId", "1700000000.1"), state="Down"))
        if tail == "channels/externalMedia":
            return web.json_response(channel(q.get("channelId", "em1"), channelvars={
                "UNICASTRTP_LOCAL_ADDRESS": "127.0.0.1", "UNICASTRTP_LOCAL_PORT": "10000"}))
        if tail.startswith("channels/gone"):
            return web.json_response({"message": "Channel not found"}, status=404)
        if request.method == "DELETE" and tail.startswith(("channels/", "bridges/")):
            return web.Response(status=204)
        if tail.endswith("/variable") and request.method == "GET":
            if q.get("variable") == "UNSET":
                return web.json_response({"message": "Provided variable was not found"}, status=404)
            return web.json_response({"value": "MACHINE"})
        if tail == "bridges" and request.method == "POST":
            return web.json_response({"id": q.get("bridgeId", "b1"), "technology": "simple_bridge",
                                      "bridge_type": "mixing", "bridge_class": "stasis", "channels": []})
        if tail == "bridges":
            return web.json_response([])
        if tail == "channels":
            return web.json_response([channel("c1"), channel("ari-amd-snoop-c1")])
        return web.Response(status=204)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    server = FakeAri()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(fake: FakeAri) -> AsyncIterator[AriClient]:
    async with AriClient(fake.url, USER, PASSWORD) as c:
        yield c


async def eventually(cond: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


# -- REST --------------------------------------------------------------------------------------


async def test_rest_calls_send_asterisk_parameter_names(fake: FakeAri, client: AriClient) -> None:
    assert (await client.info())["system"]["version"] == "22.fake"
    ch = await client.originate(
        "PJSIP/sipp", APP, ["dial", "CA1"], channel_id="CA1", caller_id="ari-amd <100>", timeout=30,
        variables={"X": "1"}, formats="ulaw",
    )
    assert ch.id == "CA1" and ch.state == "Down"
    method, path, query, body = fake.requests[-1]
    assert (method, path) == ("POST", "/channels")
    assert query == {"endpoint": "PJSIP/sipp", "app": APP, "appArgs": "dial,CA1", "channelId": "CA1",
                     "callerId": "ari-amd <100>", "timeout": "30", "formats": "ulaw"}
    assert body == {"variables": {"X": "1"}}

    em = await client.external_media(APP, "127.0.0.1:40000", "slin16", channel_id=media_id("CA1"))
    assert em.rtp_source() == ("127.0.0.1", 10000)
    assert fake.requests[-1][2] == {"app": APP, "external_host": "127.0.0.1:40000", "format": "slin16",
                                    "channelId": "ari-amd-media-CA1", "encapsulation": "rtp", "transport": "udp",
                                    "connection_type": "client", "direction": "both"}
    await client.snoop("CA1", APP, snoop_id=snoop_id("CA1"), app_args="snoop")
    assert fake.requests[-1][1:3] == ("/channels/CA1/snoop", {"app": APP, "spy": "in", "whisper": "none",
                                                              "snoopId": "ari-amd-snoop-CA1", "appArgs": "snoop"})
    b = await client.create_bridge(bridge_id=bridge_id("CA1"))
    assert b.id == "ari-amd-bridge-CA1" and fake.requests[-1][2] == {"type": "mixing", "bridgeId": "ari-amd-bridge-CA1"}
    await client.add_to_bridge(b.id, [snoop_id("CA1"), media_id("CA1")])
    assert fake.requests[-1][2] == {"channel": "ari-amd-snoop-CA1,ari-amd-media-CA1"}
    await client.set_variable("CA1", "AMDSTATUS", "MACHINE")
    assert fake.requests[-1][2] == {"variable": "AMDSTATUS", "value": "MACHINE"}
    assert await client.get_variable("CA1", "AMDSTATUS") == "MACHINE"
    assert await client.get_variable("CA1", "UNSET") is None
    await client.continue_in_dialplan("CA1")
    assert fake.requests[-1][:3] == ("POST", "/channels/CA1/continue", {})
    await client.subscribe(APP, "channel:CA1")
    assert fake.requests[-1][1:3] == (f"/applications/{APP}/subscription", {"eventSource": "channel:CA1"})
    assert await client.hangup("CA1", "normal") is True
    assert fake.requests[-1][:3] == ("DELETE", "/channels/CA1", {"reason": "normal"})
    assert await client.destroy_bridge(b.id) is True
    assert [c.id for c in await client.list_channels()] == ["c1", "ari-amd-snoop-c1"]


async def test_ids_are_quoted_into_paths(fake: FakeAri, client: AriClient) -> None:
    await client.answer("a/b?c")
    assert fake.raw_paths[-1] == "/ari/channels/a%2Fb%3Fc/answer"


async def test_errors_carry_asterisks_message(fake: FakeAri, client: AriClient) -> None:
    with pytest.raises(AriError) as e:
        await client.request("POST", "/channels")
    assert (e.value.status, e.value.method, e.value.path) == (400, "POST", "/channels")
    assert e.value.message == "Endpoint must be specified"
    assert "400 Endpoint must be specified" in str(e.value)
    with pytest.raises(AriError) as e:
        await client.answer("gone1")
    assert e.value.not_found and e.value.message == "Channel not found"


async def test_hangup_and_destroy_tolerate_what_is_already_gone(client: AriClient) -> None:
    assert await client.hangup("gone1") is False
    assert await client.get_channel("gone1") is None
    with pytest.raises(AriError):  # a missing channel is not an unset variable
        await client.get_variable("gone1", "AMDSTATUS")


async def test_originate_needs_exactly_one_destination(client: AriClient) -> None:
    with pytest.raises(ValueError):
        await client.originate("PJSIP/sipp")
    with pytest.raises(ValueError):
        await client.originate("PJSIP/sipp", APP, context="default")
    with pytest.raises(ValueError):
        await client.originate("PJSIP/sipp", app_args="x", context="default", extension="s")


async def test_wrong_password_is_an_ari_error(fake: FakeAri) -> None:
    async with AriClient(fake.url, USER, "wrong") as c:
        with pytest.raises(AriError) as e:
            await c.info()
    assert e.value.status == 401
    assert "wrong" not in str(e.value) and "wrong" not in repr(c)


async def test_unreachable_asterisk_is_a_connection_error() -> None:
    async with AriClient("http://127.0.0.1:9", USER, PASSWORD, timeout=2) as c:
        with pytest.raises(AriConnectionError) as e:
            await c.info()
    assert e.value.status == 0


def test_base_url_forms() -> None:
    assert AriClient("http://h:8088").base_url == "http://h:8088/ari"
    assert AriClient("http://h:8088/ari/").base_url == "http://h:8088/ari"
    assert AriClient("https://h/pbx/ari").events_url == "wss://h/pbx/ari/events"
    with pytest.raises(ValueError):
        AriClient("h:8088")


# -- the events websocket ----------------------------------------------------------------------


@pytest.fixture
async def stream(client: AriClient) -> AsyncIterator[EventStream]:
    s = EventStream(client, APP, reconnect_initial=0.02, reconnect_max=0.1)
    await s.start()
    await s.wait_ready(3)
    yield s
    await s.close()


async def test_connects_with_basic_auth_and_no_password_in_the_url(fake: FakeAri, stream: EventStream) -> None:
    assert stream.connected
    assert fake.ws_queries == [{"app": APP}]
    assert fake.ws_auth_headers[0].startswith("Basic ")
    assert PASSWORD not in stream.client.events_url


async def test_each_channel_gets_its_events_in_order_and_a_slow_one_stalls_no_other(
    fake: FakeAri, stream: EventStream
) -> None:
    a = stream.claim("A")
    b = stream.claim("B")
    seen_b: list[str] = []
    seen_a: list[str] = []

    async def slow_a() -> None:
        async for ev in a:
            await asyncio.sleep(0.2)  # a call stuck in a slow REST request
            seen_a.append(ev.type)

    async def fast_b() -> None:
        async for ev in b:
            seen_b.append(ev.type)

    tasks = [asyncio.create_task(slow_a()), asyncio.create_task(fast_b())]
    kinds = ["StasisStart", "ChannelStateChange", "ChannelVarset", "StasisEnd"]
    for k in kinds:
        fields: dict[str, Any] = {"args": []} if k == "StasisStart" else {}
        if k == "ChannelVarset":
            fields.update(variable="V", value="1")
        await fake.push(event(k, channel=channel("A"), **fields), event(k, channel=channel("B"), **fields))
    await eventually(lambda: seen_b == kinds, timeout=0.5)  # long before A's 0.8 s of handling
    assert len(seen_a) < len(kinds)
    await eventually(lambda: seen_a == kinds)
    a.release()
    b.release()
    await asyncio.gather(*tasks)


async def test_events_before_the_claim_are_not_lost(fake: FakeAri, stream: EventStream) -> None:
    # A dialplan Stasis() call: the StasisStart reaches a subscriber first, the call claims after.
    starts: list[StasisStart] = []
    stream.subscribe(lambda ev: starts.append(ev) if isinstance(ev, StasisStart) else None)  # type: ignore[func-returns-value]
    await fake.push(
        event("StasisStart", args=["sync"], channel=channel("D")),
        event("ChannelHangupRequest", cause=16, channel=channel("D")),
    )
    await eventually(lambda: len(starts) == 1)
    await eventually(lambda: stream.stats.events == 2)
    events = stream.claim(starts[0].channel.id)
    first = await asyncio.wait_for(events.get(), 1)
    second = await asyncio.wait_for(events.get(), 1)
    assert isinstance(first, StasisStart) and isinstance(second, ChannelHangupRequest)
    with pytest.raises(RuntimeError):
        stream.claim("D")


async def test_subscribers_get_everything_and_a_failing_one_is_counted(fake: FakeAri, stream: EventStream) -> None:
    got: list[str] = []

    async def handler(ev: Event) -> None:
        got.append(ev.type)
        if ev.type == "StasisEnd":
            raise RuntimeError("handler bug")

    only_destroyed: list[Event] = []
    stream.subscribe(handler)
    unsubscribe = stream.subscribe(only_destroyed.append, types={"ChannelDestroyed"})  # type: ignore[arg-type]
    await fake.push(
        event("StasisEnd", channel=channel("E")),
        "this is not json",
        event("BridgeDestroyed", bridge={"id": "b"}),
        event("ChannelDestroyed", cause=16, cause_txt="Normal Clearing", channel=channel("E")),
    )
    await eventually(lambda: len(got) == 4)
    assert got == ["StasisEnd", "", "BridgeDestroyed", "ChannelDestroyed"]
    assert [e.type for e in only_destroyed] == ["ChannelDestroyed"]
    assert stream.stats.handler_errors == 1
    assert stream.stats.unreadable_events == 1 and stream.stats.unknown_events == 1
    unsubscribe()
    await fake.push(event("ChannelDestroyed", cause=16, cause_txt="", channel=channel("F")))
    await eventually(lambda: len(got) == 5)
    assert len(only_destroyed) == 1


async def test_reconnects_after_the_server_drops_and_resumes_delivery(fake: FakeAri, client: AriClient) -> None:
    hooks: list[str] = []
    s = EventStream(
        client, APP, reconnect_initial=0.02, reconnect_max=0.1,
        on_connected=lambda again: hooks.append(f"connected reconnect={again}"),  # type: ignore[func-returns-value]
        on_disconnected=lambda why: hooks.append("disconnected"),  # type: ignore[func-returns-value]
    )
    async with s:
        await s.wait_ready(3)
        events = s.claim("G")
        await fake.drop_all()
        await eventually(lambda: s.stats.reconnects == 1 and s.connected)
        await fake.push(event("StasisStart", args=[], channel=channel("G")))
        ev = await asyncio.wait_for(events.get(), 2)
        assert isinstance(ev, StasisStart)
        assert hooks == ["connected reconnect=False", "disconnected", "connected reconnect=True"]
        # A cut like a pulled cable (no close handshake) is survived the same way.
        assert s.force_reconnect()
        await eventually(lambda: s.stats.reconnects == 2 and s.connected)
        await fake.push(event("StasisEnd", channel=channel("G")))
        assert isinstance(await asyncio.wait_for(events.get(), 2), StasisEnd)
    assert await events.get() is None  # closing the stream ends every channel's iteration


async def test_asterisk_down_at_start_is_retried_until_it_comes_up(fake: FakeAri, client: AriClient) -> None:
    fake.refuse_ws_status = 503
    with structlog.testing.capture_logs() as logs:
        async with EventStream(client, APP, reconnect_initial=0.02, reconnect_max=0.05) as s:
            await eventually(lambda: s.stats.connect_failures >= 3)
            assert not s.connected
            assert "HTTP 503" in s.last_error
            fake.refuse_ws_status = None
            await s.wait_ready(3)
    failures = [entry for entry in logs if entry["event"] == "ari_connect_failed"]
    assert len(failures) == 1  # the same failure is logged once, not on every retry


async def test_backoff_grows_and_is_capped(fake: FakeAri, client: AriClient) -> None:
    fake.accept_then_close = True  # an Asterisk that accepts and hangs up at once
    async with EventStream(client, APP, reconnect_initial=0.01, reconnect_max=0.08) as s:
        started = time.monotonic()
        await eventually(lambda: s.stats.connects >= 6)
        elapsed = time.monotonic() - started
    # 0.01 + 0.02 + 0.04 + 0.08 + 0.08 at least half each: a tight loop would take ~0.
    assert elapsed >= (0.01 + 0.02 + 0.04 + 0.08 + 0.08) / 2


async def test_wrong_password_says_so_and_never_logs_it(fake: FakeAri) -> None:
    async with AriClient(fake.url, USER, "hunter2-wrong") as c:
        with structlog.testing.capture_logs() as logs:
            async with EventStream(c, APP, reconnect_initial=0.02) as s:
                await eventually(lambda: s.stats.connect_failures >= 1)
                assert "401" in s.last_error and "password" in s.last_error
    assert "hunter2-wrong" not in repr(logs)


async def test_application_replaced_stops_the_stream(fake: FakeAri, stream: EventStream) -> None:
    gone: list[str] = []
    stream.on_disconnected = gone.append  # type: ignore[assignment]
    await fake.push(event("ApplicationReplaced"))
    await eventually(lambda: stream.replaced and gone)
    await asyncio.sleep(0.15)
    assert stream.stats.connects == 1  # does not fight the other client for the name
    assert not stream.connected


async def test_ready_on_application_registered_without_polling(fake: FakeAri, client: AriClient) -> None:
    fake.announce_registration = True
    fake.list_applications = False
    async with EventStream(client, APP) as s:
        started = time.monotonic()
        await s.wait_ready(1)  # well before the 2 s a poll-only confirmation would give up after
        assert time.monotonic() - started < 1


async def test_unconfirmed_registration_still_becomes_ready(fake: FakeAri, client: AriClient) -> None:
    # An Asterisk whose GET /applications/NAME never answers 200 (e.g. an ARI user that may not
    # read it): the connection is up all the same, so say so after a bounded wait.
    fake.list_applications = False
    with structlog.testing.capture_logs() as logs:
        async with EventStream(client, APP) as s:
            await s.wait_ready(5)
    assert any(entry["event"] == "ari_registration_unconfirmed" for entry in logs)


async def test_close_is_clean_and_idempotent(fake: FakeAri, client: AriClient) -> None:
    s = EventStream(client, APP)
    await s.start()
    await s.wait_ready(3)
    await s.close()
    await s.close()
    await eventually(lambda: not fake.sockets)
    assert await s.claim("late").get() is None


# -- the real lab: Asterisk 22 + a SIPp callee (scripts/lab up) --------------------------------

LAB_URL = "http://127.0.0.1:8088"
LAB_USER = LAB_PASSWORD = "ari-amd"
# A callee of our own on its own SIP port, so other lab users' callees on 5070 (and another run
# of this test) are left alone.
LAB_CALLEE_PORT = 5100 + os.getpid() % 400
LAB_ENDPOINT = f"PJSIP/sipp/sip:labtest@127.0.0.1:{LAB_CALLEE_PORT}"
LAB_PORTS = (41000, 41099)  # our receive ports: outside Asterisk's rtp.conf range and SIPp's
REPO = Path(__file__).resolve().parent.parent
LAB_SCRIPT = REPO / "scripts" / "lab"
TONE_HZ = 1000
BURST_MS = 400  # the callee's greeting: tone bursts, BURST_MS on and BURST_MS off


def lab_or_skip() -> None:
    if not LAB_SCRIPT.exists():
        pytest.skip("scripts/lab is not in this checkout")
    try:
        r = subprocess.run([str(LAB_SCRIPT), "status"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"scripts/lab status failed to run: {e}")
    if r.returncode != 0:
        why = "; ".join(line.strip() for line in (r.stdout + r.stderr).strip().splitlines())
        pytest.skip(f"the lab is not up (scripts/lab status exited {r.returncode}: {why}); start it with scripts/lab up")


def write_bursts_wav(path: Path, seconds: float = 12.0, rate: int = 8000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    on = (np.floor(t * 1000 / BURST_MS) % 2) == 0
    x = np.where(on, np.sin(2 * np.pi * TONE_HZ * t) * 0.25 * 32767, 0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())


def loud_frames(audio: np.ndarray, rate: int) -> np.ndarray:
    frame = rate // 50
    n = len(audio) // frame
    rms = np.sqrt(np.mean(audio[: n * frame].astype(float).reshape(n, frame) ** 2, axis=1))
    return rms > 1000


def loud_runs(audio: np.ndarray, rate: int) -> list[int]:
    """Lengths (ms) of runs of loud 20 ms frames, the partial first and last runs left out.

    A single quiet frame inside a run does not end it: Asterisk's snoop fills a 20 ms tick with
    silence when the callee's frame misses it (seen once near the start of most lab streams, with
    no RTP lost between Asterisk and us), and the audio after it arrives one frame later.
    """
    loud = loud_frames(audio, rate)
    runs, count, gap = [], 0, 0
    for v in loud:
        if v:
            count += 1 + gap
            gap = 0
        elif count and gap == 0:
            gap = 1
        elif count:
            runs.append(count * 20)
            count = gap = 0
    return runs[1:]


def rms_trace(audio: np.ndarray, rate: int) -> str:
    return "".join("#" if v else "." for v in loud_frames(audio, rate))


async def next_of(events: Any, kind: type, timeout: float = 15.0) -> Any:
    """The next event of `kind` on a channel's queue, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        ev = await asyncio.wait_for(events.get(), max(0.01, deadline - time.monotonic()))
        if ev is None:
            raise AssertionError(f"stream ended before {kind.__name__}")
        if isinstance(ev, kind):
            return ev


@pytest.mark.lab
@pytest.mark.parametrize(("fmt", "rate"), [("ulaw", 8000), ("slin16", 16000)])
async def test_lab_call_is_tapped_decoded_survives_a_reconnect_and_leaves_nothing_behind(
    tmp_path: Path, fmt: str, rate: int
) -> None:
    lab_or_skip()
    app = f"ari-amd-labtest-{os.getpid()}"
    call_id = f"lab{os.getpid()}x{int(time.time() * 1000)}{fmt}"
    wav = tmp_path / "bursts.wav"
    write_bursts_wav(wav)
    subprocess.run(
        [str(LAB_SCRIPT), "callee", str(wav), "--port", str(LAB_CALLEE_PORT), "--quiet"],
        check=True, timeout=60, capture_output=True,
    )

    sweeps: list[list[str]] = []
    frames: list[np.ndarray] = []
    rates: set[int] = set()

    def on_audio(samples: np.ndarray, sample_rate: int) -> None:
        frames.append(samples)
        rates.add(sample_rate)

    async with AriClient(LAB_URL, LAB_USER, LAB_PASSWORD) as ari:

        async def sweep(reconnected: bool) -> None:
            # What the call layer does after a reconnect: find our own channels by their ids.
            if reconnected:
                sweeps.append(sorted(c.id for c in await ari.list_channels() if owner_of(c.id)))

        stream = EventStream(ari, app, on_connected=sweep, reconnect_initial=0.05)
        pool = PortPool(*LAB_PORTS)
        rx: RtpReceiver | None = None
        ids = {"callee": call_id, "snoop": snoop_id(call_id), "media": media_id(call_id)}
        try:
            await stream.start()
            await stream.wait_ready(10)
            callee = stream.claim(call_id)
            await ari.originate(LAB_ENDPOINT, app, ["dial"], channel_id=call_id, timeout=20)
            start = await next_of(callee, StasisStart, 20)
            assert start.args == ("dial",) and start.channel.is_up

            rx = await RtpReceiver.open(pool, fmt, on_audio)
            snoop_events = stream.claim(ids["snoop"])
            media_events = stream.claim(ids["media"])
            snoop = await ari.snoop(call_id, app, "in", snoop_id=ids["snoop"], app_args="snoop")
            em = await ari.external_media(app, rx.external_host, fmt, channel_id=ids["media"])
            source = em.rtp_source()
            assert source is not None, em.channelvars
            rx.expect_source(*source)
            bridge = await ari.create_bridge(bridge_id=bridge_id(call_id))
            # Both enter the app a moment after the REST call returns; addChannel before their
            # StasisStart is a 422 "Channel not in Stasis application".
            await next_of(snoop_events, StasisStart)
            await next_of(media_events, StasisStart)
            await ari.add_to_bridge(bridge.id, [snoop.id, em.id])

            await eventually(lambda: len(frames) * 20 >= 2500, timeout=10)
            assert rx.source == source

            # Drop the events websocket the hard way; events must flow again after the reconnect.
            assert stream.force_reconnect()
            await eventually(lambda: stream.stats.reconnects == 1 and stream.connected and sweeps, timeout=15)
            # Other lab users' calls may be up too: ours are told apart by the call id in the name.
            ours = [cid for cid in sweeps[0] if (owner_of(cid) or ("", ""))[1] == call_id]
            assert ours == sorted([ids["snoop"], ids["media"]])
            await ari.set_variable(call_id, "ARI_AMD_PROBE", "after-reconnect")
            varset = await next_of(callee, ChannelVarset, 10)
            assert (varset.variable, varset.value) == ("ARI_AMD_PROBE", "after-reconnect")
            await eventually(lambda: len(frames) * 20 >= 4000, timeout=10)  # media never stopped

            assert await ari.hangup(call_id) is True
            destroyed = await next_of(callee, ChannelDestroyed, 10)
            assert destroyed.channel.id == call_id
        finally:
            for cid in (ids["callee"], ids["snoop"], ids["media"]):
                await ari.hangup(cid)
            await ari.destroy_bridge(bridge_id(call_id))
            if rx is not None:
                await rx.aclose()
            await stream.close()

        assert await ari.hangup(call_id) is False  # already gone: no error
        # A hung-up channel is destroyed a moment after the DELETE returns (an externalMedia one was
        # seen listed just after it in CI): gone within 5 s, as the other lab tests allow.
        deadline = time.monotonic() + 5
        while True:
            left_channels = [c.id for c in await ari.list_channels() if c.id in ids.values()]
            left_bridges = [b.id for b in await ari.list_bridges() if b.id == bridge_id(call_id)]
            if not (left_channels or left_bridges):
                break
            assert time.monotonic() < deadline, f"left behind: {left_channels + left_bridges}"
            await asyncio.sleep(0.1)

    assert rx is not None
    st = rx.stats
    assert rates == {rate}
    assert all(len(f) == rate // 50 for f in frames)  # 20 ms frames
    assert st.dropped_foreign_source == st.dropped_malformed == st.dropped_payload_type == 0
    assert st.lost <= 2
    runs = loud_runs(np.concatenate(frames), rate)
    assert runs, "no tone bursts in the received audio"
    assert all(abs(r - BURST_MS) <= 60 for r in runs), (runs, rms_trace(np.concatenate(frames), rate), st)


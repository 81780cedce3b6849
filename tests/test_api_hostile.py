"""Hostile input over HTTP: callback URLs the policy refuses (at request time and at send time),
the body-size and per-account concurrency limits, bodies that are not what they claim.
Every answer is in its dialect's error shape, and none is a 500."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from ari_amd.api import create_app
from ari_amd.calls import urlpolicy
from ari_amd.calls.outbox import Outbox
from ari_amd.calls.urlpolicy import UrlPolicy
from tests.test_api_fakes import (
    OTHER_SID,
    OTHER_TOKEN,
    SID,
    TOKEN,
    Api,
    FakeEngine,
    Receiver,
    Script,
    free_port,
    settings_for,
)

TWILIO = f"/2010-04-01/Accounts/{SID}/Calls.json"
PLIVO = f"/v1/Account/{SID}/Call/"
TELNYX = "/v2/calls"
METADATA = "http://169.254.169.254/latest/meta-data/"

MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[MakeApi]:
    """The app over the fake engine with settings of the test's choosing."""
    made: list[tuple[FakeEngine, web.AppRunner, Outbox, Receiver]] = []

    async def make(**kw: Any) -> Api:
        engine = FakeEngine()
        receiver = Receiver()
        await receiver.start()
        settings = settings_for(tmp_path, outbox_path=str(tmp_path / f"outbox{len(made)}.db"), **kw)
        outbox = Outbox(
            settings.outbox_path, attempt_timeout_s=2.0, base_delay_s=0.02, max_delay_s=0.1, horizon_s=30,
            policy=settings.url_policy,
        )
        runner = web.AppRunner(create_app(engine, settings, outbox=outbox))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        made.append((engine, runner, outbox, receiver))
        return Api(engine, receiver, f"http://127.0.0.1:{port}", outbox, settings)

    yield make
    for engine, runner, outbox, receiver in made:
        await engine.close()
        await runner.cleanup()
        await outbox.close()
        await receiver.stop()


def basic(sid: str = SID, token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()}


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def raw(api: Api, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, api.base + path, data=body, headers=headers) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text else None)


async def twilio(api: Api, form: dict[str, str], path: str = TWILIO, sid: str = SID, token: str = TOKEN) -> tuple[int, Any]:
    return await raw(api, "POST", path, form, basic(sid, token))


async def plivo(api: Api, body: dict[str, Any], sid: str = SID, token: str = TOKEN) -> tuple[int, Any]:
    return await raw(api, "POST", f"/v1/Account/{sid}/Call/", json.dumps(body), {**basic(sid, token), "Content-Type": "application/json"})


async def telnyx(api: Api, body: dict[str, Any], token: str = TOKEN) -> tuple[int, Any]:
    return await raw(api, "POST", TELNYX, json.dumps(body), {**bearer(token), "Content-Type": "application/json"})


TW = {"To": "+15550100", "From": "+15550199"}
PL = {"from": "+15550199", "to": "+15550100", "answer_url": "https://dialer.example.com/answer"}
TX = {"connection_id": "1", "to": "+15550100", "from": "+15550199"}


def error_text(body: Any) -> str:
    """The message of an error in any dialect's shape."""
    if "errors" in body:
        return str(body["errors"][0]["detail"])
    return str(body.get("message") or body.get("error"))


# -- the URL policy at request time --------------------------------------------------------------
@pytest.mark.parametrize("param", ["Url", "StatusCallback", "AsyncAmdStatusCallback"])
async def test_twilio_refuses_a_metadata_callback_naming_the_parameter(make_api: MakeApi, param: str) -> None:
    api = await make_api()
    status, body = await twilio(api, {**TW, param: METADATA})
    assert status == 400 and body["code"] == 21205
    assert body["message"].startswith(f"{param} is not allowed") and "metadata" in body["message"]
    assert api.engine.placed == []


@pytest.mark.parametrize("param", ["answer_url", "machine_detection_url", "hangup_url", "ring_url"])
async def test_plivo_refuses_a_link_local_callback_naming_the_parameter(make_api: MakeApi, param: str) -> None:
    api = await make_api()
    status, body = await plivo(api, {**PL, "machine_detection": "true", param: "http://169.254.1.1/x"})
    assert status == 400 and body["error"].startswith(f"{param} is not allowed") and "link-local" in body["error"]
    assert api.engine.placed == []


async def test_telnyx_refuses_a_metadata_webhook_with_a_pointer(make_api: MakeApi) -> None:
    api = await make_api()
    status, body = await telnyx(api, {**TX, "webhook_url": "http://metadata.google.internal/computeMetadata/v1/"})
    err = body["errors"][0]
    assert status == 422 and err["source"]["pointer"] == "/webhook_url" and "metadata" in err["detail"]


async def test_a_redirect_update_to_a_denied_url_is_refused(make_api: MakeApi) -> None:
    api = await make_api()
    status, call = await twilio(api, {**TW, "Twiml": "<Response><Pause length='5'/></Response>"})
    assert status == 201
    status, body = await twilio(api, {"Url": "http://[::]/x"}, path=f"/2010-04-01/Accounts/{SID}/Calls/{call['sid']}.json")
    assert status == 400 and "Url is not allowed" in body["message"] and "unspecified" in body["message"]


async def test_deny_loopback_refuses_the_receiver_next_door(make_api: MakeApi) -> None:
    api = await make_api(url_policy=UrlPolicy(deny=("loopback",)))
    status, body = await twilio(api, {**TW, "StatusCallback": api.receiver.base + "/status"})
    assert status == 400 and "loopback" in body["message"]
    status, body = await plivo(api, {**PL, "answer_url": "http://localhost:9/answer"})
    assert status == 400 and "loopback" in body["error"]


async def test_an_allowlist_lets_only_its_hosts_in(make_api: MakeApi) -> None:
    api = await make_api(url_policy=UrlPolicy(allow=("dialer.example.com",)))
    status, _ = await twilio(api, {**TW, "StatusCallback": "https://dialer.example.com/status"})
    assert status == 201
    status, body = await twilio(api, {**TW, "StatusCallback": "https://elsewhere.example.com/status"})
    assert status == 400 and "not in callbacks.allow" in body["message"]


# -- the URL policy at send time ----------------------------------------------------------------
class LoopbackDns(AbstractResolver):
    """A DNS that answers 127.0.0.1 for every name: a name the literal check cannot judge."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


async def test_a_callback_name_resolving_to_a_denied_address_is_refused_and_logged_not_sent(
    make_api: MakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(urlpolicy.aiohttp, "ThreadedResolver", LoopbackDns)
    api = await make_api(url_policy=UrlPolicy(deny=("loopback",)))
    port = api.receiver.port
    api.engine.script = Script(hold_s=0.1)
    with structlog.testing.capture_logs() as logs:
        status, call = await twilio(api, {
            **TW, "Url": f"http://docs.example.test:{port}/twiml",
            "StatusCallback": f"http://hooks.example.test:{port}/status", "StatusCallbackEvent": "initiated answered",
        })
        assert status == 201  # the names pass the literal check: only their addresses are denied
        await api.engine.calls[call["sid"]].wait_ended(5)
        await api.outbox.wait_idle(5)
    assert api.receiver.hits == []
    refused = [e for e in logs if e["event"] in ("callback_url_refused", "document_url_refused")]
    assert {e["event"] for e in refused} == {"callback_url_refused", "document_url_refused"}
    assert all("loopback" in e["reason"] for e in refused)
    assert api.engine.did(call["sid"], "hangup")  # a document that cannot be had ends the call
    assert {s for s, _ in (await api.outbox.states()).values()} == {"failed"}


async def test_a_twiml_redirect_to_the_metadata_address_is_not_followed(make_api: MakeApi) -> None:
    api = await make_api()
    doc = "<Response><Redirect method='GET'>http://169.254.169.254/latest/user-data</Redirect></Response>"
    with structlog.testing.capture_logs() as logs:
        status, call = await twilio(api, {**TW, "Twiml": doc})
        assert status == 201
        await api.engine.calls[call["sid"]].wait_ended(5)
    refused = [e for e in logs if e["event"] == "document_url_refused"]
    assert refused and "metadata" in refused[0]["reason"]


async def test_a_document_server_redirecting_to_a_denied_host_is_not_followed(make_api: MakeApi) -> None:
    api = await make_api()
    r = api.receiver
    # the receiver answers every path with its document, or "ok": make /twiml a redirect
    bounce = web.Application()

    async def to_link_local(_: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": "http://[fe80::1]/x"})

    bounce.router.add_post("/twiml", to_link_local)
    runner = web.AppRunner(bounce)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with structlog.testing.capture_logs() as logs:
            status, call = await twilio(api, {**TW, "Url": f"http://127.0.0.1:{port}/twiml"})
            assert status == 201
            await api.engine.calls[call["sid"]].wait_ended(5)
        assert any(e["event"] == "document_url_refused" and "link-local" in e["reason"] for e in logs)
        assert r.hits == []
    finally:
        await runner.cleanup()


# -- limits ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, path, headers, body",
    [
        ("POST", TWILIO, basic(), {**TW, "pad": "x" * 20_000}),
        ("POST", PLIVO, {**basic(), "Content-Type": "application/json"}, json.dumps({**PL, "pad": "x" * 20_000})),
        ("POST", PLIVO, basic(), {**PL, "pad": "x" * 20_000}),
        ("POST", TELNYX, {**bearer(), "Content-Type": "application/json"}, json.dumps({**TX, "pad": "x" * 20_000})),
    ],
)
async def test_every_dialect_answers_an_oversized_body_413(
    make_api: MakeApi, method: str, path: str, headers: dict[str, str], body: Any
) -> None:
    api = await make_api()
    status, err = await raw(api, method, path, body, headers)
    assert status == 413 and "too large" in error_text(err)
    assert api.engine.placed == []


async def test_an_oversized_update_is_413(make_api: MakeApi) -> None:
    api = await make_api()
    status, call = await twilio(api, TW)
    assert status == 201
    status, err = await twilio(api, {"Url": "https://e.test/", "pad": "x" * 20_000}, path=f"/2010-04-01/Accounts/{SID}/Calls/{call['sid']}.json")
    assert status == 413 and "too large" in err["message"]


async def test_a_chunked_oversized_body_is_413_too(make_api: MakeApi) -> None:
    api = await make_api()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 1024

    status, err = await raw(api, "POST", TELNYX, chunks(), {**bearer(), "Content-Type": "application/json"})
    assert status == 413 and err["errors"][0]["title"] == "Request too large"


async def _hold(api: Api) -> None:
    api.engine.script = Script(hold_s=30)


async def test_twilio_answers_429_past_the_accounts_calls_in_flight(make_api: MakeApi) -> None:
    api = await make_api(max_calls_per_account=2)
    await _hold(api)
    held = {**TW, "Twiml": "<Response><Pause length='30'/></Response>"}
    first = [await twilio(api, held) for _ in range(2)]
    assert [s for s, _ in first] == [201, 201]
    status, body = await twilio(api, held)
    assert status == 429 and body["code"] == 20429 and set(body) == {"code", "message", "more_info", "status"}
    assert "too many calls in flight" in body["message"] and "at most 2" in body["message"]
    # another account has its own allowance
    status, _ = await twilio(api, held, path=f"/2010-04-01/Accounts/{OTHER_SID}/Calls.json", sid=OTHER_SID, token=OTHER_TOKEN)
    assert status == 201
    # one call ends: one more may start
    sid = first[0][1]["sid"]
    status, _ = await twilio(api, {"Status": "completed"}, path=f"/2010-04-01/Accounts/{SID}/Calls/{sid}.json")
    assert status == 200 and api.engine.calls[sid].ended
    status, _ = await twilio(api, held)
    assert status == 201
    assert len(api.engine.placed) == 4


async def test_a_429_says_when_to_retry(make_api: MakeApi) -> None:
    api = await make_api(max_calls_per_account=1)
    await _hold(api)
    assert (await twilio(api, TW))[0] == 201
    async with aiohttp.ClientSession() as s, s.post(api.base + TWILIO, data=TW, headers=basic(SID, TOKEN)) as r:
        assert r.status == 429
        assert int(r.headers["Retry-After"]) >= 1


async def test_plivo_and_telnyx_answer_429_in_their_shapes(make_api: MakeApi) -> None:
    api = await make_api(max_calls_per_account=1)
    await _hold(api)
    assert (await plivo(api, PL))[0] == 201
    status, body = await plivo(api, PL)
    assert status == 429 and set(body) == {"api_id", "error"} and "too many calls in flight" in body["error"]
    status, body = await telnyx(api, TX)  # the same account: its calls of every dialect count
    assert status == 429 and body["errors"][0]["title"] == "Too many requests"


async def test_a_burst_cannot_slip_past_the_limit(make_api: MakeApi) -> None:
    import asyncio

    api = await make_api(max_calls_per_account=3)
    await _hold(api)
    results = await asyncio.gather(*(telnyx(api, TX) for _ in range(10)))
    assert sorted(s for s, _ in results) == [200] * 3 + [429] * 7


# -- bodies that are not what they claim ---------------------------------------------------------
@pytest.mark.parametrize(
    "path, headers, body, status, words",
    [
        (TWILIO, {**basic(), "Content-Type": "application/json"}, json.dumps(TW), 415, "application/x-www-form-urlencoded"),
        (TWILIO, {**basic(), "Content-Type": "text/plain"}, "To=+15550100", 415, "got 'text/plain'"),
        (TWILIO, basic(), b"\x00\x01binary", 415, "Content-Type"),  # no Content-Type: octet-stream
        (TWILIO, {**basic(), "Content-Type": "application/x-www-form-urlencoded"}, b"To=%FF%FE&From=\xff", 400, "not a valid form"),
        (TWILIO, {**basic(), "Content-Type": "application/x-www-form-urlencoded; charset=bogus-9"}, b"To=1", 400, "not a valid form"),
        (TWILIO, {**basic(), "Content-Type": "multipart/form-data; boundary=zz"}, b"--zz\r\ngarbage", 400, "not a valid form"),
        (PLIVO, {**basic(), "Content-Type": "text/xml"}, "<x/>", 415, "application/json"),
        (PLIVO, {**basic(), "Content-Type": "application/json"}, "{not json", 400, "not valid JSON"),
        (PLIVO, {**basic(), "Content-Type": "application/json"}, "[1, 2]", 400, "JSON object"),
        (PLIVO, {**basic(), "Content-Type": "application/json"}, "[" * 5000 + "]" * 5000, 400, "not valid JSON"),
        (PLIVO, {**basic(), "Content-Type": "application/json"}, b'{"to": "\xff\xfe"}', 400, "not valid JSON"),
        (TELNYX, {**bearer(), "Content-Type": "application/x-www-form-urlencoded"}, "to=1", 415, "application/json"),
        (TELNYX, {**bearer(), "Content-Type": "application/json"}, '"a string"', 400, "JSON object"),
        (TELNYX, {**bearer(), "Content-Type": "application/json"}, '{"a": ' * 2000 + "1" + "}" * 2000, 400, "not valid JSON"),
        (TELNYX, {**bearer(), "Content-Type": "application/json"}, '{"to": 1e999999, "from": NaN}', 422, "to must be a string"),
    ],
)
async def test_a_malformed_body_is_a_clear_4xx_never_a_500(
    make_api: MakeApi, path: str, headers: dict[str, str], body: Any, status: int, words: str
) -> None:
    api = await make_api()
    got, err = await raw(api, "POST", path, body, headers)
    assert (got, words in error_text(err)) == (status, True), err
    assert api.engine.placed == []


async def test_a_file_in_a_multipart_form_is_refused_by_name(make_api: MakeApi) -> None:
    api = await make_api()
    form = aiohttp.FormData()
    form.add_field("To", "+15550100")
    form.add_field("From", "+15550199")
    form.add_field("Twiml", b"<Response/>", filename="x.xml", content_type="application/xml")
    status, err = await raw(api, "POST", TWILIO, form, basic())
    assert status == 400 and "'Twiml' must be text" in err["message"]


async def test_a_text_multipart_form_is_read_like_urlencoded(make_api: MakeApi) -> None:
    api = await make_api()
    form = aiohttp.FormData()
    for k, v in TW.items():
        form.add_field(k, v)
    form._is_multipart = True  # what curl -F sends
    status, body = await raw(api, "POST", TWILIO, form, basic())
    assert status == 201 and body["to"] == "+15550100"


async def test_a_play_of_a_denied_url_is_skipped_and_the_rest_plays(make_api: MakeApi) -> None:
    api = await make_api()
    doc = ("<Response><Play>http://169.254.169.254/latest/meta-data/iam.wav</Play>"
           "<Play>https://dialer.example.com/offer.wav</Play></Response>")
    with structlog.testing.capture_logs() as logs:
        status, call = await twilio(api, {**TW, "Twiml": doc})
        assert status == 201
        await api.engine.calls[call["sid"]].wait_ended(5)
    assert [a[2] for a in api.engine.did(call["sid"], "play")] == ["sound:https://dialer.example.com/offer.wav"]
    assert any(e["event"] == "twiml_play_refused" and "metadata" in e["reason"] for e in logs)


async def test_the_dialplans_callback_is_refused_at_send_time(tmp_path: Path) -> None:
    """Stasis(ari-amd,async,callback=...) goes through OutboxSender: the outbox refuses it, logged."""
    from ari_amd.calls.webhooks import OutboxSender

    box = Outbox(tmp_path / "o.db", base_delay_s=0.01, horizon_s=30)
    await box.start()
    try:
        with structlog.testing.capture_logs() as logs:
            await OutboxSender(box).send(METADATA, "POST", {"AnsweredBy": "human"}, call_id="CA" + "e" * 32, auth_token=TOKEN)
            await box.wait_idle(5)
        assert {s for s, _ in (await box.states()).values()} == {"failed"}
    finally:
        await box.close()
    assert any(e["event"] == "callback_url_refused" and "metadata" in e["reason"] for e in logs)

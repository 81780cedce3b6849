"""Secrets never reach the logs: the API is driven with bad and good credentials, signed
callbacks, URLs carrying userinfo and tokens, and failures that log tracebacks; every line
rendered (serve's JSON and the console's renderer) and every stdlib record is then searched for
each secret."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from ari_amd.api import create_app
from ari_amd.calls.config import load_settings
from ari_amd.calls.outbox import Outbox
from ari_amd.logs import configure_logging
from tests.test_api_fakes import FakeEngine, Receiver, Script, free_port

SID = "AC" + "1" * 32
TOKEN = "tok-LIVE-" + "7" * 23
OTHER_SID = "AC" + "2" * 32
OTHER_TOKEN = "tok-OTHER-" + "8" * 22
ARI_PASSWORD = "ari-PASSWORD-9f3k2"
WRONG_TOKEN = "tok-TYPO-" + "7" * 22  # a near miss of a real token is as secret as the token
HOOK_PASSWORD = "hook-PASSWORD-x1"
QUERY_SECRET = "query-SECRET-q9"


def basic(sid: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()


async def drive(base: str, receiver: Receiver, engine: FakeEngine) -> list[str]:
    """Every request a hostile or a careless client makes; the header values it sent."""
    twilio = f"{base}/2010-04-01/Accounts/{SID}/Calls.json"
    hook = f"http://hookuser:{HOOK_PASSWORD}@127.0.0.1:{receiver.port}"
    receiver.documents["/twiml"] = "<Response><Pause length='1'/><Hangup/></Response>"
    sent: list[str] = []

    async def post(url: str, auth: str, **kw: Any) -> int:
        sent.append(auth)
        async with (
            aiohttp.ClientSession() as s,
            s.post(url, headers={"Authorization": auth, **kw.pop("headers", {})}, **kw) as r,
        ):
            await r.read()
            return r.status

    form = {"To": "+15550100", "From": "+15550199"}
    assert await post(twilio, basic(SID, WRONG_TOKEN), data=form) == 401
    assert await post(twilio, basic(OTHER_SID, OTHER_TOKEN), data=form) == 401  # another account's path
    assert await post(twilio, "Basic !!" + WRONG_TOKEN, data=form) == 401  # not base64
    assert await post(twilio, "Bearer " + TOKEN, data=form) == 401
    assert await post(f"{base}/v2/calls", "Bearer " + WRONG_TOKEN, json={"to": "+1", "from": "+1"}) == 401
    assert await post(f"{base}/v1/Account/{SID}/Call/", basic(SID, WRONG_TOKEN), json={}) == 401
    # header bytes that are not UTF-8, in each scheme (once a 500 whose traceback held the accounts)
    host, port = base.removeprefix("http://").split(":")
    for path, auth in (("/v2/calls", b"Bearer " + WRONG_TOKEN.encode() + b"\xff\xfe"),
                       (f"/2010-04-01/Accounts/{SID}/Calls.json", b"Basic \xff" + WRONG_TOKEN.encode()),
                       (f"/v1/Account/{SID}/Call/", b"Basic " + base64.b64encode(f"{SID}:{WRONG_TOKEN}".encode() + b"\xff"))):
        assert await raw_status(host, int(port), path, auth) == 401
    # good credentials: signed status callbacks, a document fetched, URLs with userinfo and tokens
    assert await post(twilio, basic(SID, TOKEN), data={
        **form, "Url": f"{hook}/twiml?key={QUERY_SECRET}", "StatusCallback": f"{hook}/status?key={QUERY_SECRET}",
        "StatusCallbackEvent": "initiated ringing answered completed", "MachineDetection": "Enable",
        "AsyncAmd": "true", "AsyncAmdStatusCallback": f"{hook}/amd?key={QUERY_SECRET}",
    }) == 201
    assert await post(f"{base}/v1/Account/{SID}/Call/", basic(SID, TOKEN), json={
        "from": "+15550199", "to": "+15550100", "answer_url": f"{hook}/twiml?key={QUERY_SECRET}",
        "hangup_url": f"{hook}/hangup?key={QUERY_SECRET}", "machine_detection": "true",
        "machine_detection_url": f"{hook}/md?key={QUERY_SECRET}",
    }) == 201
    assert await post(f"{base}/v2/calls", "Bearer " + OTHER_TOKEN, json={
        "to": "+15550100", "from": "+15550199", "webhook_url": f"{hook}/tx?key={QUERY_SECRET}",
        "answering_machine_detection": "detect",
    }) == 200
    # failures that log: a document server that is not there, a refused URL, a bug in the engine
    closed = f"http://u:{HOOK_PASSWORD}@127.0.0.1:{free_port()}/twiml?key={QUERY_SECRET}"
    assert await post(twilio, basic(SID, TOKEN), data={**form, "Url": closed}) == 201
    redirect = f"<Response><Redirect>http://u:{HOOK_PASSWORD}@169.254.169.254/?key={QUERY_SECRET}</Redirect></Response>"
    assert await post(twilio, basic(SID, TOKEN), data={**form, "Twiml": redirect}) == 201
    assert await post(twilio, basic(SID, TOKEN), data={**form, "To": "PJSIP/boom"}) == 500
    await receiver.wait_for("/hangup", 1, timeout=10)
    await receiver.wait_for("/status", 3, timeout=10)  # of 4: the first enqueue fails (see below)
    for call in list(engine.calls.values()):
        await call.wait_ended(10)
    return sent


async def raw_status(host: str, port: int, path: str, authorization: bytes) -> int:
    """A POST with header bytes no HTTP client library would send."""
    r, w = await asyncio.open_connection(host, port)
    w.write(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + authorization
            + b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    await w.drain()
    head = await r.read()
    w.close()
    return int(head.split(b" ", 2)[1])


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Receiver, FakeEngine, Outbox]]:
    settings = load_settings(None, {
        "ARI_AMD_ACCOUNTS": f"{SID}:{TOKEN},{OTHER_SID}:{OTHER_TOKEN}",
        "ARI_AMD_ARI_PASSWORD": ARI_PASSWORD,
        "ARI_AMD_CALLBACKS_OUTBOX": str(tmp_path / "o.db"),
    })
    engine = FakeEngine()
    engine.script = Script(hold_s=0.2)
    receiver = Receiver()
    await receiver.start()
    outbox = Outbox(settings.callbacks_outbox, base_delay_s=0.02, max_delay_s=0.1, horizon_s=30)
    runner = web.AppRunner(create_app(engine, settings, outbox=outbox))  # the service's Settings, coerced
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", receiver, engine, outbox
    finally:
        await engine.close()
        await runner.cleanup()
        await outbox.close()
        await receiver.stop()


def secrets_in(text: str, sent: list[str], receiver: Receiver) -> list[str]:
    signatures = [
        h.headers[name]
        for h in receiver.hits
        for name in ("X-Twilio-Signature", "X-Plivo-Signature-V2")
        if name in h.headers
    ]
    assert len(signatures) >= 8  # the signed callbacks did arrive: their signatures are searched for
    secrets = [TOKEN, OTHER_TOKEN, WRONG_TOKEN, ARI_PASSWORD, HOOK_PASSWORD, QUERY_SECRET, *sent, *signatures]
    secrets += [s.split(" ", 1)[1] for s in sent if " " in s]  # the header's value without its scheme
    return [s for s in secrets if s in text]


# json: serve's; console: a TTY's; default: structlog never configured (an embedder's app), whose
# renderer prints tracebacks with rich, locals shown: only a traceback logged as text is safe there
@pytest.mark.parametrize("renderer", ["json", "console", "default"])
async def test_no_secret_appears_in_any_log_line(
    served: tuple[str, Receiver, FakeEngine, Outbox], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch, renderer: str,
) -> None:
    base, receiver, engine, outbox = served
    # the outbox's disk fails once: the traceback logged runs through the frame holding the token
    real_enqueue = Outbox.enqueue
    failed: list[bool] = []

    async def enqueue_once_failing(self: Outbox, url: str, **kw: Any) -> str:
        if not failed:
            failed.append(True)
            raise sqlite3.OperationalError("disk I/O error")
        return await real_enqueue(self, url, **kw)

    monkeypatch.setattr(Outbox, "enqueue", enqueue_once_failing)
    buf = io.StringIO()
    caplog.set_level(logging.DEBUG)
    if renderer == "default":
        structlog.reset_defaults()
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(buf))
    else:
        configure_logging("debug", json=renderer == "json", stream=buf)
    try:
        sent = await drive(base, receiver, engine)
        await outbox.wait_idle(10)
        await asyncio.sleep(0.1)
    finally:
        configure_logging("info", json=False)  # as conftest.py left it
    # the receiver's own access log of what ari-amd sent it is the integrator's, not ours
    ours = "\n".join(r.getMessage() for r in caplog.records if "TwilioProxy compatible" not in r.getMessage())
    text = buf.getvalue()
    events = [json.loads(line)["event"] for line in text.splitlines() if line.startswith("{")] if renderer == "json" else []
    if renderer == "json":  # the scenarios did log what they should: the search is not over nothing
        for e in ("callback_sent", "document_fetched", "twiml_fetch_failed", "document_url_refused",
                  "api_handler_failed", "driver_step_failed"):
            assert e in events, e
    leaked = secrets_in(text + ours, sent, receiver)
    assert leaked == [], [line for line in (text + ours).splitlines() if any(s in line for s in leaked)][:5]

"""The call layer's pure parts, without Asterisk: settings, Stasis() options, the Call model,
the callback's fields, signature and delivery (to a real local HTTP server)."""

from __future__ import annotations

import asyncio
from datetime import UTC
from pathlib import Path

import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from ari_amd.calls.callbacks import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    DirectSender,
    amd_callback_listener,
    amd_fields,
)
from ari_amd.calls.config import ConfigError, load_settings, parse_accounts
from ari_amd.calls.controller import event_age_s
from ari_amd.calls.model import Call, CallEventKind, CallRequest, CallStatus, new_call_id
from ari_amd.calls.stasis_args import parse_stasis_args
from ari_amd.calls.variables import channel_variables
from ari_amd.detect import AmdParams, AnsweredBy, Mode, ParameterError, Rule, Verdict

HUMAN = Verdict(AnsweredBy.HUMAN, 1900, "speech_end_threshold 1200ms of silence after 700ms of speech",
                Rule.SPEECH_END, 1200, 1200)


# -- settings ---------------------------------------------------------------------------------

def test_settings_default_to_the_lab_and_read_toml_then_environment(tmp_path: Path) -> None:
    assert load_settings(env={}).ari_url == "http://127.0.0.1:8088"
    toml = tmp_path / "ari-amd.toml"
    toml.write_text('[ari]\nurl = "http://pbx:8088"\napp = "amd"\n[rtp]\nport_first = 30000\nport_last = 30099\n'
                    '[accounts]\nAC1 = "secret"\n')
    s = load_settings(toml, env={"ARI_AMD_ARI_APP": "amd2", "ARI_AMD_RTP_PORT_LAST": "30010"})
    assert (s.ari_url, s.ari_app, s.rtp_port_first, s.rtp_port_last) == ("http://pbx:8088", "amd2", 30000, 30010)
    assert s.accounts == {"AC1": "secret"}
    assert "secret" not in repr(s) and "password" not in repr(s)  # no secrets in repr


@pytest.mark.parametrize(("toml", "env", "message"), [
    ('[rtp]\nport_first = "x"\n', {}, "rtp.port_first must be a number"),
    ('[rtp]\nformat = "opus"\n', {}, "rtp.format must be one of"),
    ('[rtp]\nsocket = "one"\n', {}, "rtp.socket must be one of shared, per_call"),
    ('[ari]\nnope = 1\n', {}, "unknown setting [ari] nope"),
    ('[endpoints]\ntemplate = "PJSIP/trunk"\n', {}, "must contain {number}"),
    ("", {"ARI_AMD_HTTP_PORT": "eighty"}, "ARI_AMD_HTTP_PORT: http.port must be a number"),
    ("", {"ARI_AMD_ACCOUNTS": "AC1"}, "each account is SID:TOKEN"),
    ("[ari\n", {}, "ari-amd.toml"),
])
def test_bad_settings_name_what_is_wrong(tmp_path: Path, toml: str, env: dict[str, str], message: str) -> None:
    path = tmp_path / "ari-amd.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=None) as err:
        load_settings(path, env=env)
    assert message in str(err.value)


def test_accounts_from_the_environment() -> None:
    assert parse_accounts("AC1:t1, AC2:t2") == {"AC1": "t1", "AC2": "t2"}


# -- Stasis() options -------------------------------------------------------------------------

def test_stasis_options_default_to_sync_enable_and_twilio_defaults() -> None:
    opts = parse_stasis_args(())
    assert opts.params == AmdParams() and not opts.async_amd and opts.callback_url is None


def test_stasis_options_take_admin_and_twilio_spellings() -> None:
    opts = parse_stasis_args(["sync", "mode=DetectMessageEnd", "timeout=20", "MachineDetectionSpeechThreshold=3000",
                              "speech_end_threshold=1500", "SILENCE_TIMEOUT=4000", "beep_timeout=15000"])
    assert opts.params == AmdParams(Mode.DETECT_MESSAGE_END, 20_000, 3000, 1500, 4000, 15_000)
    assert parse_stasis_args(["MachineDetectionBeepTimeout=2000"]).params.beep_timeout_ms == 2000
    opts = parse_stasis_args(["async", "callback=https://example.test/amd", "callback_method=get"])
    assert opts.async_amd and opts.callback_url == "https://example.test/amd" and opts.callback_method == "GET"


@pytest.mark.parametrize(("args", "name"), [
    (["speech_threshold=999"], "MachineDetectionSpeechThreshold"),
    (["timeout=60"], "MachineDetectionTimeout"),
    (["timeout=ten"], "MachineDetectionTimeout"),
    (["beep_timeout=60000"], "MachineDetectionBeepTimeout"),
    (["mode=Sometimes"], "MachineDetection"),
    (["callback=ftp://x/y"], "callback"),
    (["callback_method=PUT"], "callback_method"),
    (["loudness=11"], "loudness"),
    (["fast"], "fast"),
])
def test_a_bad_stasis_option_is_named(args: list[str], name: str) -> None:
    with pytest.raises(ParameterError) as err:
        parse_stasis_args(args)
    assert err.value.name == name


# -- the model --------------------------------------------------------------------------------

def test_call_ids_look_like_twilio_call_sids() -> None:
    sid = new_call_id()
    assert sid.startswith("CA") and len(sid) == 34 and int(sid[2:], 16) >= 0 and sid != new_call_id()


async def test_listeners_get_every_event_in_order_and_a_failing_one_hurts_nobody() -> None:
    call = Call(CallRequest("PJSIP/x", AmdParams()))
    seen: list[str] = []

    async def slow(ev):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.01)
        seen.append(ev.kind.value)

    def broken(ev):  # type: ignore[no-untyped-def]
        raise RuntimeError("listener bug")

    call.listen(slow)
    call.listen(broken)
    call._emit(CallEventKind.ANSWERED)
    call._add_verdict(HUMAN)
    call._emit(CallEventKind.VERDICT, verdict=HUMAN)
    call._end(CallStatus.COMPLETED)
    call._emit(CallEventKind.COMPLETED)
    await call.drain()
    assert seen == ["answered", "verdict", "completed"]
    assert call.verdict == HUMAN and call.answered_by == "human" and call.status is CallStatus.COMPLETED
    assert await call.wait_verdict(0.1) == HUMAN


def test_event_age_reads_asterisk_timestamps_and_distrusts_skewed_clocks() -> None:
    from datetime import datetime, timedelta

    stamp = (datetime.now(UTC) - timedelta(milliseconds=250)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    assert 0.2 < event_age_s(stamp) < 1.0
    assert event_age_s("2001-01-01T00:00:00.000+0000") == 0.0  # a clock far off: ignored
    assert event_age_s("garbage") == 0.0


def test_channel_variables_speak_app_amd() -> None:
    assert channel_variables(HUMAN) == {"AMDSTATUS": "HUMAN", "AMDCAUSE": "HUMAN-1200-1200", "ANSWEREDBY": "human",
                                        "AMDDURATION": "1900"}


# -- callbacks --------------------------------------------------------------------------------

class Receiver:
    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.fail_first = fail_first

    async def handle(self, request: web.Request) -> web.Response:
        form = dict(await request.post()) if request.method == "POST" else dict(request.query)
        self.requests.append((request.method, {k: str(v) for k, v in form.items()}, dict(request.headers)))
        if len(self.requests) <= self.fail_first:
            return web.Response(status=503)
        return web.Response(text="ok")


async def serve(receiver: Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/amd", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/amd"


async def test_the_async_callback_is_signed_as_twilio_signs_and_retried_past_a_5xx() -> None:
    receiver = Receiver(fail_first=1)
    runner, url = await serve(receiver)
    try:
        call = Call(CallRequest("PJSIP/x", AmdParams()))
        call._add_verdict(HUMAN)
        listener = amd_callback_listener(DirectSender(), url, "POST", "AC" + "a" * 32, "token")
        call.listen(listener)
        call._emit(CallEventKind.VERDICT, verdict=HUMAN)
        call._emit(CallEventKind.COMPLETED)  # a second chance to send: it must not send twice
        await call.drain()
    finally:
        await runner.cleanup()
    assert len(receiver.requests) == 2  # a 503, then delivered; never again
    method, form, headers = receiver.requests[-1]
    assert method == "POST" and form == amd_fields(call, "AC" + "a" * 32)
    assert form["AnsweredBy"] == "human" and form["MachineDetectionDuration"] == "1900"
    assert RequestValidator("token").validate(url, form, headers[SIGNATURE_HEADER])
    assert receiver.requests[0][2][IDEMPOTENCY_HEADER] == headers[IDEMPOTENCY_HEADER]  # the same delivery


async def test_a_get_callback_carries_the_fields_in_the_query() -> None:
    receiver = Receiver()
    runner, url = await serve(receiver)
    try:
        call = Call(CallRequest("PJSIP/x", AmdParams()))
        call._add_verdict(HUMAN)
        await DirectSender().send(url, "GET", amd_fields(call, "AC1"), call_id=call.id)
    finally:
        await runner.cleanup()
    assert receiver.requests[0][0] == "GET" and receiver.requests[0][1]["CallSid"] == call.id


async def test_the_direct_sender_keeps_to_the_url_policy() -> None:
    from ari_amd.calls.urlpolicy import UrlPolicy

    receiver = Receiver()
    runner, url = await serve(receiver)
    try:
        await DirectSender(UrlPolicy(deny=("loopback",))).send(url, "POST", {"CallSid": "CA1"}, call_id="CA1")
        await DirectSender().send("http://169.254.169.254/latest", "POST", {"CallSid": "CA1"}, call_id="CA1")
        assert receiver.requests == []  # loopback denied here; metadata denied by default
        await DirectSender().send(url, "POST", {"CallSid": "CA1"}, call_id="CA1")
        assert len(receiver.requests) == 1
    finally:
        await runner.cleanup()


def test_attempt_outcomes_are_the_metrics_labels() -> None:
    from ari_amd.calls.outbox import attempt_outcome
    from ari_amd.metrics import CALLBACK_OUTCOMES

    cases = [(200, None), (0, "refused: link-local"), (0, "TimeoutError"), (0, "ClientConnectorError"), (503, "HTTP 503")]
    outcomes = [attempt_outcome(s, e) for s, e in cases]
    assert outcomes == ["delivered", "refused", "timeout", "network_error", "http_error"]
    assert set(outcomes) <= set(CALLBACK_OUTCOMES)

"""The Twilio dialect through the official twilio library and raw HTTP, over the fake engine."""

from __future__ import annotations

import asyncio
import base64
import urllib.parse
from typing import Any

import aiohttp
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from ari_amd.calls.model import AfterDetection, CallStatus
from ari_amd.calls.outbox import IDEMPOTENCY_HEADER
from ari_amd.detect import Mode
from tests.test_api_fakes import OTHER_SID, OTHER_TOKEN, SID, TOKEN, Api, Hit, Script, api, verdict  # noqa: F401

CALLS = f"/2010-04-01/Accounts/{SID}/Calls.json"
ERROR_KEYS = {"code", "message", "more_info", "status"}


@pytest.fixture
def client(api: Api, monkeypatch: pytest.MonkeyPatch) -> Client:
    monkeypatch.delenv("TWILIO_EDGE", raising=False)  # they rewrite the host the library calls
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    c = Client(SID, TOKEN)
    c.api.base_url = api.base
    return c


def assert_signed(hit: Hit, token: str = TOKEN) -> None:
    sig = hit.headers["X-Twilio-Signature"]
    params = hit.form if hit.method == "POST" else {}
    assert RequestValidator(token).validate(hit.url, params, sig), hit
    assert hit.headers[IDEMPOTENCY_HEADER]


def basic(auth: tuple[str, str] | None) -> dict[str, str]:
    if auth is None:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()}


async def post(api: Api, path: str, data: Any, auth: tuple[str, str] | None = (SID, TOKEN)) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(api.base + path, data=data, headers=basic(auth)) as r:
        return r.status, await r.json()


async def get(api: Api, path: str, auth: tuple[str, str] | None = (SID, TOKEN)) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(api.base + path, headers=basic(auth)) as r:
        return r.status, await r.json()


# ------------------------------------------------------------------------- the twilio library


async def test_the_twilio_library_creates_a_call_with_every_amd_parameter(api: Api, client: Client) -> None:
    r = api.receiver.base
    call = await asyncio.to_thread(
        client.calls.create,
        to="+15550100",
        from_="+15550199",
        url=r + "/answer",
        method="GET",
        status_callback=r + "/status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
        status_callback_method="POST",
        timeout=25,
        machine_detection="DetectMessageEnd",
        machine_detection_timeout=45,
        machine_detection_speech_threshold=3000,
        machine_detection_speech_end_threshold=1500,
        machine_detection_silence_timeout=6000,
        async_amd="true",
        async_amd_status_callback=r + "/amd",
        async_amd_status_callback_method="POST",
    )
    assert call.sid.startswith("CA") and len(call.sid) == 34
    assert call.account_sid == SID and call.to == "+15550100" and call._from == "+15550199"
    assert call.status == "initiated" and call.direction == "outbound-api"
    assert call.date_created is not None and call.date_created.tzinfo is not None  # parsed as RFC 2822
    assert call.uri == f"/2010-04-01/Accounts/{SID}/Calls/{call.sid}.json"
    [req] = api.engine.placed
    assert req.call_id == call.sid
    assert req.endpoint == "PJSIP/+15550100@sipp"
    assert req.caller_id == "+15550199" and req.ring_timeout_s == 25
    assert req.amd is not None and req.amd.mode is Mode.DETECT_MESSAGE_END
    assert (req.amd.timeout_ms, req.amd.speech_threshold_ms, req.amd.speech_end_threshold_ms, req.amd.silence_timeout_ms) == (
        45_000,
        3000,
        1500,
        6000,
    )
    assert req.async_amd is True and req.after is AfterDetection.HOLD
    assert req.meta["status_callback_events"] == ("initiated", "ringing", "answered", "completed")
    assert req.meta["url"] == r + "/answer" and req.meta["method"] == "GET"


async def test_the_library_fetches_lists_and_hangs_up(api: Api, client: Client) -> None:
    api.engine.script = Script(verdicts=[verdict("machine_start", 2400)])
    r = api.receiver.base
    api.receiver.documents["/answer"] = "<Response><Pause length='30'/></Response>"
    sids = []
    for n in range(5):
        c = await asyncio.to_thread(
            client.calls.create, to=f"+1555010{n}", from_="+15550199", url=r + "/answer", machine_detection="Enable"
        )
        sids.append(c.sid)
    await post(api, f"/2010-04-01/Accounts/{OTHER_SID}/Calls.json", {"To": "+1", "From": "+2"}, auth=(OTHER_SID, OTHER_TOKEN))
    await asyncio.sleep(0.3)
    fetched = await asyncio.to_thread(lambda: client.calls(sids[0]).fetch())
    assert fetched.status == "in-progress" and fetched.answered_by == "machine_start"
    assert fetched.start_time is not None and fetched.end_time is None
    listed = await asyncio.to_thread(lambda: client.calls.list(page_size=2))  # three pages, followed by the library
    assert sorted(c.sid for c in listed) == sorted(sids)  # the other account's call is not among them
    done = await asyncio.to_thread(lambda: client.calls(sids[1]).update(status="completed"))
    assert done.status == "completed"
    assert api.engine.did(sids[1], "hangup")
    again = await asyncio.to_thread(lambda: client.calls(sids[1]).fetch())
    assert again.status == "completed" and again.end_time is not None and again.duration is not None


async def test_the_library_raises_twilios_error_for_a_bad_parameter(api: Api, client: Client) -> None:
    with pytest.raises(TwilioRestException) as e:
        await asyncio.to_thread(
            client.calls.create, to="+15550100", from_="+15550199", machine_detection="Enable", machine_detection_timeout=70
        )
    assert e.value.status == 400
    assert "MachineDetectionTimeout" in e.value.msg and "3-59" in e.value.msg
    with pytest.raises(TwilioRestException) as e:
        await asyncio.to_thread(lambda: client.calls("CA" + "0" * 32).fetch())
    assert e.value.status == 404 and e.value.code == 20404


async def test_the_library_with_a_wrong_token_gets_401(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    c = Client(SID, "wrong" * 6)
    c.api.base_url = api.base
    with pytest.raises(TwilioRestException) as e:
        await asyncio.to_thread(c.calls.create, to="+15550100", from_="+15550199")
    assert e.value.status == 401 and e.value.code == 20003


# -------------------------------------------------------------------------------- sync AMD


async def test_sync_requests_url_after_the_verdict_and_runs_its_twiml(api: Api) -> None:
    r = api.receiver
    r.documents["/answer"] = (
        "<?xml version='1.0'?><Response><Play>hello-world</Play><Play loop='2'>https://cdn.example.test/msg.wav</Play>"
        "<Pause length='0'/><Say>Hello</Say><Gather/><Hangup/><Play>never</Play></Response>"
    )
    status, body = await post(
        api,
        CALLS,
        [
            ("To", "+15550100"),
            ("From", "+15550199"),
            ("Url", r.base + "/answer?campaign=7"),
            ("MachineDetection", "Enable"),
            ("StatusCallback", r.base + "/status"),
            ("StatusCallbackEvent", "initiated ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
        ],
    )
    assert status == 201, body
    sid = body["sid"]
    call = api.engine.get(sid)
    assert call is not None
    await call.wait_ended(5)
    [hit] = await r.wait_for("/answer")
    assert hit.method == "POST"
    assert_signed(hit)
    f = hit.form
    assert f["CallSid"] == sid and f["AccountSid"] == SID and f["From"] == "+15550199" and f["To"] == "+15550100"
    assert f["CallStatus"] == "in-progress" and f["Direction"] == "outbound-api"
    assert f["AnsweredBy"] == "human" and f["MachineDetectionDuration"] == "900"
    plays = [a[2] for a in api.engine.did(sid, "play")]
    assert plays == ["sound:hello-world", "sound:https://cdn.example.test/msg.wav", "sound:https://cdn.example.test/msg.wav"]
    assert api.engine.did(sid, "variables")  # the channel got its verdict before the Url ran
    assert len(api.engine.did(sid, "hangup")) == 1
    statuses = await r.wait_for("/status", 4)
    assert [h.form["CallStatus"] for h in statuses] == ["initiated", "ringing", "in-progress", "completed"]
    assert sorted(int(h.form["SequenceNumber"]) for h in statuses) == [0, 1, 2, 3]
    for h in statuses:
        assert_signed(h)
        assert h.form["CallSid"] == sid and h.form["Timestamp"].endswith("+0000")
    completed = statuses[-1].form
    assert completed["CallDuration"] == "0" and completed["AnsweredBy"] == "human"
    assert len({h.headers[IDEMPOTENCY_HEADER] for h in statuses}) == 4


async def test_detect_message_end_requests_url_once_with_the_final_verdict(api: Api) -> None:
    api.engine.script = Script(verdicts=[verdict("machine_start", 2400, final=False), verdict("machine_end_beep", 6100)])
    r = api.receiver
    r.documents["/vm"] = "<Response><Play>vm-message</Play></Response>"
    status, body = await post(
        api, CALLS, {"To": "+15550100", "From": "+1", "Url": r.base + "/vm", "MachineDetection": "DetectMessageEnd"}
    )
    assert status == 201
    call = api.engine.get(body["sid"])
    assert call is not None
    await call.wait_ended(5)
    await asyncio.sleep(0.1)
    [hit] = r.at("/vm")
    assert hit.form["AnsweredBy"] == "machine_end_beep" and hit.form["MachineDetectionDuration"] == "6100"
    assert [a[2] for a in api.engine.did(call.id, "play")] == ["sound:vm-message"]
    assert api.engine.did(call.id, "hangup")  # the end of the document hangs up, as in Twilio


async def test_without_url_the_dialplan_takes_the_call(api: Api) -> None:
    status, body = await post(api, CALLS, {"To": "sip:alice@10.0.0.5:5062", "From": "+1", "MachineDetection": "Enable"})
    assert status == 201
    [req] = api.engine.placed
    assert req.after is AfterDetection.CONTINUE and req.endpoint == "PJSIP/sipp/sip:alice@10.0.0.5:5062"
    call = api.engine.get(body["sid"])
    assert call is not None
    await call.wait_ended(5)
    assert api.engine.did(call.id, "continue") and not api.engine.did(call.id, "hangup")
    assert api.receiver.hits == []


async def test_get_method_and_a_redirect_chain_are_signed_and_followed(api: Api) -> None:
    r = api.receiver
    r.documents["/one"] = "<Response><Redirect method='GET'>/two?step=2</Redirect><Play>skipped</Play></Response>"
    r.documents["/two"] = (
        "<Response><Dial timeout='12' action='/after'><Number>+15550111</Number></Dial><Play>skipped</Play></Response>"
    )
    r.documents["/after"] = "<Response><Play>goodbye</Play><Hangup/></Response>"
    status, body = await post(
        api, CALLS, {"To": "+15550100", "From": "+1", "Url": r.base + "/one", "Method": "GET", "MachineDetection": "Enable"}
    )
    assert status == 201
    call = api.engine.get(body["sid"])
    assert call is not None
    await call.wait_ended(5)
    one, two, after = r.at("/one")[0], r.at("/two")[0], r.at("/after")[0]
    assert one.method == "GET" and two.method == "GET" and after.method == "POST"
    for h in (one, two, after):
        assert_signed(h)
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(two.url).query))
    assert q["step"] == "2" and q["AnsweredBy"] == "human" and q["CallSid"] == call.id
    assert after.form["DialCallStatus"] == "completed"
    assert api.engine.did(call.id, "dial") == [("dial", call.id, "PJSIP/+15550111@sipp", 12)]
    assert [a[2] for a in api.engine.did(call.id, "play")] == ["sound:goodbye"]


@pytest.mark.parametrize(
    "document",
    ["<Response><Play>x</Play>", "not xml at all", "<Other/>", "<!DOCTYPE x [<!ENTITY a 'b'>]><Response/>"],
)
async def test_malformed_twiml_hangs_up_and_nothing_crashes(api: Api, document: str) -> None:
    api.receiver.documents["/bad"] = document
    status, body = await post(api, CALLS, {"To": "+15550100", "From": "+1", "Url": api.receiver.base + "/bad"})
    assert status == 201
    call = api.engine.get(body["sid"])
    assert call is not None
    await call.wait_ended(5)
    assert api.engine.did(call.id, "hangup") and not api.engine.did(call.id, "play")


async def test_a_url_that_fails_hangs_up(api: Api) -> None:
    status, body = await post(api, CALLS, {"To": "+15550100", "From": "+1", "Url": "http://127.0.0.1:9/nothing"})
    assert status == 201
    call = api.engine.get(body["sid"])
    assert call is not None
    await call.wait_ended(5)
    assert api.engine.did(call.id, "hangup")


async def test_inline_twiml_runs_without_a_fetch(api: Api) -> None:
    status, body = await post(api, CALLS, {"To": "+15550100", "From": "+1", "Twiml": "<Response><Play digits='12w3'/></Response>"})
    assert status == 201
    call = api.engine.get(body["sid"])
    assert call is not None
    await call.wait_ended(5)
    assert [a[2] for a in api.engine.did(call.id, "play")] == ["digits:123"]


async def test_an_update_with_a_new_url_redirects_a_live_call(api: Api) -> None:
    r = api.receiver
    r.documents["/wait"] = "<Response><Pause length='30'/></Response>"
    r.documents["/new"] = "<Response><Play>new-prompt</Play></Response>"
    _, body = await post(api, CALLS, {"To": "+15550100", "From": "+1", "Url": r.base + "/wait"})
    sid = body["sid"]
    await r.wait_for("/wait")
    status, upd = await post(api, f"/2010-04-01/Accounts/{SID}/Calls/{sid}.json", {"Url": r.base + "/new"})
    assert status == 200 and upd["sid"] == sid
    call = api.engine.get(sid)
    assert call is not None
    await call.wait_ended(5)
    assert [a[2] for a in api.engine.did(sid, "play")] == ["sound:new-prompt"]
    status, err = await post(api, f"/2010-04-01/Accounts/{SID}/Calls/{sid}.json", {"Url": r.base + "/new"})
    assert status == 400 and err["code"] == 21220


# ------------------------------------------------------------------------------- async AMD


async def test_async_runs_url_at_answer_and_posts_the_verdict(api: Api) -> None:
    api.engine.script = Script(verdicts=[verdict("machine_start", 2400, final=False), verdict("machine_end_silence", 7000)])
    r = api.receiver
    r.documents["/answer"] = "<Response><Pause length='5'/></Response>"
    status, body = await post(
        api,
        CALLS,
        {
            "To": "+15550100",
            "From": "+1",
            "Url": r.base + "/answer",
            "MachineDetection": "DetectMessageEnd",
            "AsyncAmd": "True",
            "AsyncAmdStatusCallback": r.base + "/amd?tenant=3",
        },
    )
    assert status == 201
    [answer] = await r.wait_for("/answer")
    assert "AnsweredBy" not in answer.form  # requested at answer, before any verdict
    [amd] = await r.wait_for("/amd")
    assert set(amd.form) == {"CallSid", "AccountSid", "AnsweredBy", "MachineDetectionDuration"}
    assert amd.form["AnsweredBy"] == "machine_end_silence" and amd.form["MachineDetectionDuration"] == "7000"
    assert_signed(amd)
    await asyncio.sleep(0.1)
    assert len(r.at("/amd")) == 1  # the interim machine_start is not reported


# ---------------------------------------------------------------------------- bad input


BASE = {"To": "+15550100", "From": "+15550199", "Url": "https://example.test/a"}


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"MachineDetection": "Enable", "MachineDetectionTimeout": "2"}, ["MachineDetectionTimeout", "3-59"]),
        ({"MachineDetectionTimeout": "60"}, ["MachineDetectionTimeout"]),
        ({"MachineDetectionTimeout": "ten"}, ["MachineDetectionTimeout", "integer"]),
        ({"MachineDetection": "Enable", "MachineDetectionSpeechThreshold": "999"}, ["MachineDetectionSpeechThreshold", "1000-6000"]),
        ({"MachineDetectionSpeechThreshold": "6001"}, ["MachineDetectionSpeechThreshold"]),
        ({"MachineDetectionSpeechEndThreshold": "499"}, ["MachineDetectionSpeechEndThreshold", "500-5000"]),
        ({"MachineDetectionSpeechEndThreshold": "5001"}, ["MachineDetectionSpeechEndThreshold"]),
        ({"MachineDetectionSilenceTimeout": "1999"}, ["MachineDetectionSilenceTimeout", "2000-10000"]),
        ({"MachineDetectionSilenceTimeout": "10001"}, ["MachineDetectionSilenceTimeout"]),
        ({"MachineDetection": "DetectMessageEnd", "MachineDetectionBeepTimeout": "999"},
         ["MachineDetectionBeepTimeout", "1000-59000"]),
        ({"MachineDetection": "Maybe"}, ["MachineDetection", "DetectMessageEnd"]),
        ({"AsyncAmd": "perhaps"}, ["AsyncAmd"]),
        ({"AsyncAmdStatusCallback": "ftp://x.test/cb"}, ["AsyncAmdStatusCallback"]),
        ({"AsyncAmdStatusCallback": "/relative"}, ["AsyncAmdStatusCallback"]),
        ({"AsyncAmdStatusCallbackMethod": "PUT"}, ["AsyncAmdStatusCallbackMethod"]),
        ({"Url": "example.test/no-scheme"}, ["Url"]),
        ({"StatusCallback": "http:///nohost"}, ["StatusCallback"]),
        ({"StatusCallbackEvent": "hungup"}, ["StatusCallbackEvent"]),
        ({"StatusCallbackMethod": "DELETE"}, ["StatusCallbackMethod"]),
        ({"Method": "PATCH"}, ["Method"]),
        ({"Timeout": "0"}, ["Timeout"]),
        ({"To": ""}, ["To", "required"]),
        ({"To": "PJSIP/a&PJSIP/b"}, ["To"]),
        ({"To": "sip:bad uri@host"}, ["To"]),
        ({"To": "not-a-number"}, ["To"]),
        ({"From": ""}, ["From", "required"]),
        ({"To": "refused-1"}, ["To"]),
    ],
)
async def test_each_bad_value_gets_400_naming_it(api: Api, fields: dict[str, str], names: list[str]) -> None:
    data = {**BASE, **fields}
    if fields.get("To") == "refused-1":
        data["To"] = "PJSIP/refused"
    status, body = await post(api, CALLS, data)
    assert status == 400, body
    assert set(body) == ERROR_KEYS
    for n in names:
        assert n in body["message"], body
    assert api.engine.placed == []


async def test_asterisk_unreachable_is_503_and_a_bug_500_in_twilios_shape(api: Api) -> None:
    status, body = await post(api, CALLS, {**BASE, "To": "PJSIP/down"})
    assert status == 503 and set(body) == ERROR_KEYS
    status, body = await post(api, CALLS, {**BASE, "To": "PJSIP/boom"})
    assert status == 500 and set(body) == ERROR_KEYS and "a bug" not in body["message"]


@pytest.mark.parametrize(
    "auth",
    [None, (SID, "wrong"), ("AC" + "f" * 32, TOKEN), (OTHER_SID, OTHER_TOKEN)],
    ids=["none", "wrong-token", "unknown-account", "another-accounts-credentials"],
)
async def test_bad_credentials_get_401(api: Api, auth: tuple[str, str] | None) -> None:
    status, body = await post(api, CALLS, BASE, auth=auth)
    assert status == 401 and set(body) == ERROR_KEYS and body["code"] == 20003
    status, body = await get(api, CALLS, auth=auth)
    assert status == 401


async def test_unknown_call_404_oversized_413_wrong_method_405(api: Api) -> None:
    status, body = await get(api, f"/2010-04-01/Accounts/{SID}/Calls/CA{'0' * 32}.json")
    assert status == 404 and set(body) == ERROR_KEYS
    status, body = await get(api, f"/2010-04-01/Accounts/{SID}/Calls/nonsense.json")
    assert status == 404
    status, body = await post(api, CALLS, {**BASE, "Twiml": "<Response>" + "x" * 20_000 + "</Response>"})
    assert status == 413 and set(body) == ERROR_KEYS and "too large" in body["message"]
    async with aiohttp.ClientSession() as s, s.delete(api.base + CALLS, headers=basic((SID, TOKEN))) as r:
        assert r.status == 405 and set(await r.json()) == ERROR_KEYS
        assert set(r.headers["Allow"].split(",")) == {"GET", "POST"}
    status, body = await get(api, CALLS + "?Page=-1")
    assert status == 400 and "Page must be at least 0" in body["message"]


async def test_another_accounts_call_is_not_found(api: Api) -> None:
    _, body = await post(api, CALLS, BASE)
    status, _ = await get(api, f"/2010-04-01/Accounts/{OTHER_SID}/Calls/{body['sid']}.json", auth=(OTHER_SID, OTHER_TOKEN))
    assert status == 404


async def test_a_no_answer_call_reports_completed_status_and_zero_duration(api: Api) -> None:
    api.engine.script = Script(answer=False, unanswered=CallStatus.NO_ANSWER)
    r = api.receiver
    _, body = await post(api, CALLS, {**BASE, "StatusCallback": r.base + "/s"})
    [hit] = await r.wait_for("/s")
    assert hit.form["CallStatus"] == "no-answer" and hit.form["CallDuration"] == "0"
    status, res = await get(api, f"/2010-04-01/Accounts/{SID}/Calls/{body['sid']}.json")
    assert res["status"] == "no-answer" and res["duration"] == "0" and res["answered_by"] is None


async def test_a_callee_who_hangs_up_during_sync_detection_gets_no_url(api: Api) -> None:
    from ari_amd.detect import AnsweredBy, Rule, Verdict

    gone = Verdict(AnsweredBy.UNKNOWN, 1500, "hangup at 1500ms before a verdict", Rule.AUDIO_END)
    api.engine.script = Script(verdicts=[gone], hold_s=0.2)
    r = api.receiver
    r.documents["/answer"] = "<Response><Play>x</Play></Response>"
    _, body = await post(api, CALLS, {**BASE, "Url": r.base + "/answer", "MachineDetection": "Enable"})
    call = api.engine.get(body["sid"])
    assert call is not None
    await call.wait_ended(5)
    await asyncio.sleep(0.1)
    assert r.at("/answer") == []


async def test_async_call_ended_before_a_verdict_still_reports_unknown(api: Api) -> None:
    api.engine.script = Script(verdicts=[], hold_s=0.1)
    r = api.receiver
    await post(
        api,
        CALLS,
        {**BASE, "MachineDetection": "Enable", "AsyncAmd": "true", "AsyncAmdStatusCallback": r.base + "/amd", "Url": ""},
    )
    [amd] = await r.wait_for("/amd")
    assert amd.form["AnsweredBy"] == "unknown"
    assert_signed(amd)


async def test_a_fetch_error_names_the_url_without_its_secrets(api: Api) -> None:
    import structlog

    with structlog.testing.capture_logs() as logs:
        _, body = await post(api, CALLS, {**BASE, "Url": "http://user:pw1@127.0.0.1:9/x?token=tk1"})
        call = api.engine.get(body["sid"])
        assert call is not None
        await call.wait_ended(5)
    failed = [e for e in logs if e["event"] == "twiml_fetch_failed"]
    assert failed and "127.0.0.1:9/x" in failed[0]["error"]
    assert "pw1" not in repr(logs) and "tk1" not in repr(logs)



async def test_a_redirect_during_detection_is_not_undone_by_the_verdict(api: Api) -> None:
    api.engine.script = Script(detect_s=0.3)
    r = api.receiver
    r.documents["/first"] = "<Response><Play>first</Play></Response>"
    r.documents["/new"] = "<Response><Play>new</Play><Pause length='1'/></Response>"
    _, body = await post(api, CALLS, {**BASE, "Url": r.base + "/first", "MachineDetection": "Enable"})
    sid = body["sid"]
    call = api.engine.get(sid)
    assert call is not None
    while call.status is not CallStatus.IN_PROGRESS:
        await asyncio.sleep(0.01)
    status, _ = await post(api, f"/2010-04-01/Accounts/{SID}/Calls/{sid}.json", {"Url": r.base + "/new"})
    assert status == 200
    await call.wait_ended(5)
    assert r.at("/first") == []
    assert [a[2] for a in api.engine.did(sid, "play")] == ["sound:new"]

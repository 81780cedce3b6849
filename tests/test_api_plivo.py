"""The Plivo/Vobiz dialect over the fake engine: the documented callback fields, signed."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from ari_amd.calls.model import AfterDetection
from ari_amd.calls.webhooks import plivo_signature_v2
from ari_amd.detect import Mode
from tests.test_api_fakes import SID, TOKEN, Api, Hit, Script, api, verdict  # noqa: F401

CALL = f"/v1/Account/{SID}/Call/"
MD_FIELDS = {
    "From",
    "To",
    "Machine",
    "CallUUID",
    "RequestUUID",
    "ALegUUID",
    "ALegRequestUUID",
    "IfMachine",
    "Direction",
    "Event",
    "CallStatus",
}


def headers(sid: str = SID, token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()}


async def make(api: Api, body: dict[str, Any], token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    json_headers = {**headers(token=token), "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as s, s.post(api.base + CALL, data=json.dumps(body), headers=json_headers) as r:
        return r.status, await r.json()


def assert_signed(hit: Hit) -> None:
    assert RequestValidator(TOKEN).validate(hit.url, hit.form if hit.method == "POST" else {}, hit.headers["X-Twilio-Signature"])
    nonce = hit.headers["X-Plivo-Signature-V2-Nonce"]
    assert hit.headers["X-Plivo-Signature-V2"] == plivo_signature_v2(TOKEN, hit.url, nonce)
    assert plivo_signature_v2("x" * 32, hit.url, nonce) != hit.headers["X-Plivo-Signature-V2"]


def call_of(api: Api, request_uuid: str):  # type: ignore[no-untyped-def]
    call = api.engine.get("CA" + request_uuid.replace("-", ""))
    assert call is not None
    return call


async def test_async_machine_detection_posts_the_documented_fields(api: Api) -> None:
    api.engine.script = Script(verdicts=[verdict("machine_start", 2400)])
    r = api.receiver
    r.documents["/answer"] = "<Response><Speak>Hello</Speak><Wait length='0'/><Play>vm-intro</Play><Wait length='30'/></Response>"
    status, body = await make(
        api,
        {
            "from": "+15550199",
            "to": "15550100",
            "answer_url": r.base + "/answer",
            "machine_detection": True,  # the plivo SDK sends JSON booleans as they are
            "machine_detection_url": r.base + "/md",
            "machine_detection_time": 2500,
            "machine_detection_initial_silence": 3000,
            "machine_detection_initial_greeting": 2000,
            "maximum_words": 4,
            "hangup_url": r.base + "/hangup",
        },
    )
    assert status == 201, body
    assert set(body) == {"api_id", "message", "request_uuid"} and body["message"] == "call fired"
    [req] = api.engine.placed
    assert req.endpoint == "PJSIP/15550100@sipp" and req.after is AfterDetection.HOLD and req.async_amd
    assert req.amd is not None and req.amd.mode is Mode.ENABLE
    assert (req.amd.timeout_ms, req.amd.silence_timeout_ms, req.amd.speech_threshold_ms) == (3000, 3000, 2000)
    [answer] = await r.wait_for("/answer")
    assert answer.form["Event"] == "StartApp" and "Machine" not in answer.form
    [md] = await r.wait_for("/md")
    assert set(md.form) == MD_FIELDS
    f = md.form
    assert f["Machine"] == "true" and f["IfMachine"] == "continue" and f["Event"] == "MachineDetection"
    assert f["CallUUID"] == body["request_uuid"] == f["RequestUUID"] == f["ALegUUID"] == f["ALegRequestUUID"]
    assert f["From"] == "+15550199" and f["To"] == "15550100" and f["Direction"] == "outbound"
    assert f["CallStatus"] == "in-progress"
    assert_signed(md)
    assert_signed(answer)
    call = call_of(api, body["request_uuid"])
    assert [a[2] for a in api.engine.did(call.id, "play")] == ["sound:vm-intro"]
    assert not call.ended  # `true` only reports: the call goes on


async def test_hangup_mode_hangs_up_on_a_machine_and_reports_the_hangup(api: Api) -> None:
    api.engine.script = Script(verdicts=[verdict("machine_start", 2400)])
    r = api.receiver
    r.documents["/answer"] = "<Response><Wait length='30'/></Response>"
    status, body = await make(
        api,
        {
            "from": "+1",
            "to": "+15550100",
            "answer_url": r.base + "/answer",
            "machine_detection": "hangup",
            "machine_detection_url": r.base + "/md",
            "hangup_url": r.base + "/hangup",
        },
    )
    assert status == 201
    call = call_of(api, body["request_uuid"])
    await call.wait_ended(5)
    [md] = await r.wait_for("/md")
    assert md.form["IfMachine"] == "hangup" and md.form["Machine"] == "true"
    assert api.engine.did(call.id, "hangup")
    [hangup] = await r.wait_for("/hangup")
    assert hangup.form["Event"] == "Hangup" and hangup.form["HangupCause"] == "NORMAL_CLEARING"
    assert hangup.form["CallStatus"] == "completed"
    assert_signed(hangup)


async def test_without_a_detection_url_answer_url_waits_for_the_verdict(api: Api) -> None:
    r = api.receiver
    r.documents["/answer"] = "<Response><Play>hello-world</Play></Response>"
    status, body = await make(api, {"from": "+1", "to": "+15550100", "answer_url": r.base + "/answer", "machine_detection": "true"})
    assert status == 201
    call = call_of(api, body["request_uuid"])
    await call.wait_ended(5)
    [answer] = r.at("/answer")
    assert answer.form["Machine"] == "false" and answer.form["Event"] == "StartApp"
    assert api.engine.did(call.id, "variables")  # requested after the verdict
    assert [a[2] for a in api.engine.did(call.id, "play")] == ["sound:hello-world"]


async def test_a_form_body_fetch_and_delete(api: Api) -> None:
    r = api.receiver
    r.documents["/answer"] = "<Response><Wait length='30'/></Response>"
    async with aiohttp.ClientSession() as s:
        async with s.post(api.base + CALL, data={"from": "+1", "to": "+15550100", "answer_url": r.base + "/answer"}, headers=headers()) as resp:
            assert resp.status == 201
            body = await resp.json()
        await r.wait_for("/answer")
        u = body["request_uuid"]
        async with s.get(api.base + CALL + u + "/", headers=headers()) as resp:
            details = await resp.json()
            assert resp.status == 200 and details["call_uuid"] == u and details["call_status"] == "in-progress"
        async with s.delete(api.base + CALL + u + "/", headers=headers()) as resp:
            assert resp.status == 204
        async with s.get(api.base + CALL + "not-a-uuid/", headers=headers()) as resp:
            assert resp.status == 404 and set(await resp.json()) == {"api_id", "error"}
    assert call_of(api, u).ended


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"machine_detection": "maybe"}, "machine_detection"),
        ({"machine_detection": "true", "machine_detection_time": 1999}, "machine_detection_time"),
        ({"machine_detection": "true", "machine_detection_time": 10001}, "machine_detection_time"),
        ({"machine_detection_initial_silence": 1000}, "machine_detection_initial_silence"),
        ({"machine_detection_maximum_speech_length": 7000}, "machine_detection_maximum_speech_length"),
        ({"maximum_words": 11}, "maximum_words"),
        ({"machine_detection_initial_greeting": 999}, "machine_detection_initial_greeting"),
        ({"machine_detection_url": "not a url"}, "machine_detection_url"),
        ({"machine_detection_method": "PUT"}, "machine_detection_method"),
        ({"answer_url": ""}, "answer_url"),
        ({"answer_method": "DELETE"}, "answer_method"),
        ({"to": ""}, "to"),
        ({"to": "+1555<+1556"}, "to"),
        ({"from": ""}, "from"),
    ],
)
async def test_bad_values_get_400_naming_them(api: Api, fields: dict[str, Any], name: str) -> None:
    body = {"from": "+1", "to": "+15550100", "answer_url": "https://example.test/a", **fields}
    status, err = await make(api, body)
    assert status == 400, err
    assert set(err) == {"api_id", "error"} and name in err["error"]
    assert api.engine.placed == []


async def test_wrong_credentials_get_401_in_plivos_shape(api: Api) -> None:
    status, err = await make(api, {"from": "+1", "to": "+1", "answer_url": "https://e.test/"}, token="nope")
    assert status == 401 and set(err) == {"api_id", "error"}


async def test_an_oversized_body_is_413_in_plivos_shape(api: Api) -> None:
    status, err = await make(api, {"from": "+1", "to": "+1", "answer_url": "https://e.test/", "pad": "x" * 20_000})
    assert status == 413 and set(err) == {"api_id", "error"} and "too large" in err["error"]

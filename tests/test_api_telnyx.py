"""The Telnyx dialect over the fake engine: webhooks in Telnyx's envelope, 422s naming the field."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
import telnyx
from twilio.request_validator import RequestValidator

from ari_amd.calls.model import AfterDetection, CallStatus
from ari_amd.calls.telnyx_signing import load_signer
from ari_amd.detect import Mode
from tests.test_api_fakes import TOKEN, Api, Hit, Script, api, verdict  # noqa: F401


async def send(api: Api, method: str, path: str, body: Any = None, key: str = TOKEN) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.request(
        method,
        api.base + path,
        data=None if body is None else json.dumps(body),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    ) as r:
        return r.status, await r.json()


def events(api: Api, hits: list[Hit]) -> list[dict[str, Any]]:
    # Telnyx's own SDK verifies each webhook with ari-amd's public key, where Telnyx's would go.
    client = telnyx.Telnyx(api_key="KEY-unused", public_key=load_signer("", api.settings.telnyx_key_path).public_key)
    out = []
    for h in hits:
        client.webhooks.unwrap(h.body.decode(), headers=h.headers)
        assert RequestValidator(TOKEN).validate(h.url, h.body.decode(), h.headers["X-Twilio-Signature"])
        env = json.loads(h.body)
        assert set(env) == {"data"}
        assert set(env["data"]) == {"event_type", "id", "occurred_at", "payload", "record_type"}
        assert env["data"]["record_type"] == "event" and env["data"]["occurred_at"].endswith("Z")
        out.append(env["data"])
    return out


DIAL = {"connection_id": "1494404757140276705", "to": "+15550100", "from": "+15550199"}


async def test_detect_beep_sends_detection_then_greeting_ended(api: Api) -> None:
    api.engine.script = Script(verdicts=[verdict("machine_start", 2400, final=False), verdict("machine_end_beep", 6100)])
    r = api.receiver
    status, body = await send(
        api,
        "POST",
        "/v2/calls",
        {
            **DIAL,
            "webhook_url": r.base + "/tx",
            "client_state": "YWJj",
            "answering_machine_detection": "detect_beep",
            "answering_machine_detection_config": {
                "total_analysis_time_millis": 40000,
                "greeting_duration_millis": 3000,
                "after_greeting_silence_millis": 900,
                "initial_silence_millis": 4000,
                "maximum_number_of_words": 5,
            },
        },
    )
    assert status == 200, body
    data = body["data"]
    assert data["record_type"] == "call" and data["is_alive"] is True and data["client_state"] == "YWJj"
    [req] = api.engine.placed
    assert req.after is AfterDetection.HOLD and req.async_amd
    assert req.amd is not None and req.amd.mode is Mode.DETECT_MESSAGE_END
    assert (req.amd.timeout_ms, req.amd.speech_threshold_ms, req.amd.speech_end_threshold_ms, req.amd.silence_timeout_ms) == (
        40000,
        3000,
        900,
        4000,
    )
    await r.wait_for("/tx", 4)
    status, _ = await send(api, "POST", f"/v2/calls/{data['call_control_id']}/actions/hangup", {})
    assert status == 200
    evs = events(api, await r.wait_for("/tx", 5))
    assert [e["event_type"] for e in evs] == [
        "call.initiated",
        "call.answered",
        "call.machine.detection.ended",
        "call.machine.greeting.ended",
        "call.hangup",
    ]
    assert evs[2]["payload"]["result"] == "machine" and evs[3]["payload"]["result"] == "beep_detected"
    assert evs[4]["payload"]["hangup_cause"] == "normal_clearing"
    for e in evs:
        p = e["payload"]
        assert p["call_control_id"] == data["call_control_id"] and p["client_state"] == "YWJj"
        assert p["from"] == "+15550199" and p["to"] == "+15550100" and p["direction"] == "outgoing"
    assert len({e["id"] for e in evs}) == 5
    status, got = await send(api, "GET", f"/v2/calls/{data['call_control_id']}")
    assert status == 200 and got["data"]["is_alive"] is False


@pytest.mark.parametrize(
    ("answered_by", "result"), [("human", "human"), ("unknown", "not_sure"), ("fax", "machine"), ("machine_start", "machine")]
)
async def test_detect_reports_one_result(api: Api, answered_by: str, result: str) -> None:
    api.engine.script = Script(verdicts=[verdict(answered_by)], hold_s=0.2)
    r = api.receiver
    status, _ = await send(api, "POST", "/v2/calls", {**DIAL, "webhook_url": r.base + "/tx", "answering_machine_detection": "detect"})
    assert status == 200
    evs = events(api, await r.wait_for("/tx", 4))
    [det] = [e for e in evs if e["event_type"] == "call.machine.detection.ended"]
    assert det["payload"]["result"] == result
    assert not [e for e in evs if e["event_type"] == "call.machine.greeting.ended"]


async def test_greeting_end_without_a_beep_is_ended(api: Api) -> None:
    api.engine.script = Script(
        verdicts=[verdict("machine_start", 2400, final=False), verdict("machine_end_silence", 5000)], hold_s=0.2
    )
    r = api.receiver
    await send(api, "POST", "/v2/calls", {**DIAL, "webhook_url": r.base + "/tx", "answering_machine_detection": "greeting_end"})
    evs = events(api, await r.wait_for("/tx", 5))
    [g] = [e for e in evs if e["event_type"] == "call.machine.greeting.ended"]
    assert g["payload"]["result"] == "ended"


async def test_no_detection_and_a_busy_callee(api: Api) -> None:
    api.engine.script = Script(answer=False, unanswered=CallStatus.BUSY)
    r = api.receiver
    status, _ = await send(api, "POST", "/v2/calls", {**DIAL, "webhook_url": r.base + "/tx"})
    assert status == 200
    assert api.engine.placed[0].amd is None
    evs = events(api, await r.wait_for("/tx", 2))
    assert [e["event_type"] for e in evs] == ["call.initiated", "call.hangup"]
    assert evs[1]["payload"]["hangup_cause"] == "user_busy"


@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"answering_machine_detection": "sometimes"}, "/answering_machine_detection"),
        ({"answering_machine_detection": "premium"}, "/answering_machine_detection"),
        (
            {"answering_machine_detection": "detect", "answering_machine_detection_config": {"total_analysis_time_millis": 2000}},
            "/answering_machine_detection_config/total_analysis_time_millis",
        ),
        (
            {"answering_machine_detection": "detect", "answering_machine_detection_config": {"greeting_duration_millis": 7000}},
            "/answering_machine_detection_config/greeting_duration_millis",
        ),
        (
            {"answering_machine_detection_config": {"after_greeting_silence_millis": 100}},
            "/answering_machine_detection_config/after_greeting_silence_millis",
        ),
        (
            {"answering_machine_detection_config": {"initial_silence_millis": 20000}},
            "/answering_machine_detection_config/initial_silence_millis",
        ),
        ({"answering_machine_detection_config": {"greting_duration_millis": 3000}}, "/answering_machine_detection_config/greting_duration_millis"),
        ({"answering_machine_detection_config": {"silence_threshold": "loud"}}, "/answering_machine_detection_config/silence_threshold"),
        ({"to": None}, "/to"),
        ({"to": "bogus number"}, "/to"),
        ({"from": ""}, "/from"),
        ({"webhook_url": "ftp://x"}, "/webhook_url"),
        ({"timeout_secs": 0}, "/timeout_secs"),
    ],
)
async def test_bad_values_get_422_pointing_at_the_field(api: Api, fields: dict[str, Any], pointer: str) -> None:
    body = {**DIAL, **fields}
    status, err = await send(api, "POST", "/v2/calls", body)
    assert status == 422, err
    [e] = err["errors"]
    assert e["source"]["pointer"] == pointer
    assert pointer.rsplit("/", 1)[-1] in e["detail"]
    assert api.engine.placed == []


async def test_a_wrong_api_key_gets_401_and_an_unknown_call_404(api: Api) -> None:
    status, err = await send(api, "POST", "/v2/calls", DIAL, key="KEY-nope")
    assert status == 401 and err["errors"][0]["title"] == "Authentication failed"
    status, err = await send(api, "GET", "/v2/calls/CA" + "0" * 32)
    assert status == 404 and "errors" in err
    status, err = await send(api, "POST", "/v2/calls", "[1, 2]")
    assert status == 400


async def test_an_oversized_body_is_413_in_telnyxs_shape(api: Api) -> None:
    status, err = await send(api, "POST", "/v2/calls", {**DIAL, "client_state": "x" * 20_000})
    assert status == 413 and err["errors"][0]["title"] == "Request too large"

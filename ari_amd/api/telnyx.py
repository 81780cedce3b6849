"""Telnyx's Call Control: dial with answering machine detection, webhooks in Telnyx's envelope.

answering_machine_detection: detect / detect_words (a verdict: call.machine.detection.ended),
detect_beep / greeting_end (that, then call.machine.greeting.ended for a machine). The call is
parked after answer, as Telnyx leaves it, until a command (hangup) or the callee ends it.
Telnyx publishes no defaults for the classic config fields: ours are Twilio's (docs/API.md).
Validation errors are 422 with a JSON pointer to the field, as Telnyx answers them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ari_amd.api import auth, bodies, forms
from ari_amd.api.context import ApiContext, ctx
from ari_amd.api.driver import CallDriver
from ari_amd.api.errors import NOT_FOUND, UNAVAILABLE, ApiError
from ari_amd.calls import telnyx_signing
from ari_amd.calls.model import AfterDetection, Call, CallRequest, CallStatus, PlaceError
from ari_amd.detect import AmdParams, AnsweredBy, Mode, ParameterError, Verdict
from ari_amd.detect.params import RANGES

AMD_MODES = ("detect", "detect_beep", "detect_words", "greeting_end", "disabled")
MESSAGE_END = ("detect_beep", "greeting_end")
# config field -> AmdParams field; the others are accepted (integers) and unused by our detector
CONFIG_MAP = {
    "total_analysis_time_millis": "timeout_ms",
    "greeting_duration_millis": "speech_threshold_ms",
    "after_greeting_silence_millis": "speech_end_threshold_ms",
    "initial_silence_millis": "silence_timeout_ms",
}
CONFIG_UNUSED = (
    "between_words_silence_millis",
    "maximum_number_of_words",
    "maximum_word_length_millis",
    "silence_threshold",
    "greeting_total_analysis_time_millis",
    "greeting_silence_duration_millis",
)
HANGUP_CAUSE = {
    CallStatus.COMPLETED: "normal_clearing",
    CallStatus.BUSY: "user_busy",
    CallStatus.NO_ANSWER: "timeout",
    CallStatus.FAILED: "call_rejected",
    CallStatus.CANCELED: "originator_cancel",
}


def invalid(pointer: str, message: str) -> ApiError:
    return ApiError(422, message, param=pointer)


def leg_uuid(call_id: str) -> str:
    return str(uuid.UUID(hex=call_id[2:]))


def iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def amd_params(body: dict[str, Any]) -> tuple[str | None, AmdParams | None]:
    mode = body.get("answering_machine_detection")
    if mode is None:
        mode = "disabled"
    if not isinstance(mode, str) or mode not in AMD_MODES:
        raise invalid(
            "answering_machine_detection",
            f"answering_machine_detection must be one of {', '.join(AMD_MODES)} (got {mode!r})",
        )
    config = body.get("answering_machine_detection_config") or {}
    if not isinstance(config, dict):
        raise invalid("answering_machine_detection_config", "answering_machine_detection_config must be an object")
    kw: dict[str, int] = {}
    for name, value in config.items():
        pointer = f"answering_machine_detection_config.{name}"
        if name not in CONFIG_MAP and name not in CONFIG_UNUSED:
            raise invalid(pointer, f"answering_machine_detection_config has no field {name!r}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise invalid(pointer, f"{pointer} must be a non-negative integer (got {value!r})")
        if name in CONFIG_MAP:
            kw[CONFIG_MAP[name]] = value
    try:
        params = AmdParams(mode=Mode.DETECT_MESSAGE_END if mode in MESSAGE_END else Mode.ENABLE, **kw)
    except ParameterError as e:
        field = next(k for k, v in CONFIG_MAP.items() if _twilio_name(v) == e.name)
        lo, hi = _range_ms(CONFIG_MAP[field])
        raise invalid(
            f"answering_machine_detection_config.{field}",
            f"answering_machine_detection_config.{field} must be {lo}-{hi} (got {config[field]!r})",
        ) from None
    return (None, None) if mode == "disabled" else (mode, params)


def _twilio_name(field: str) -> str:
    return RANGES[field][0]


def _range_ms(field: str) -> tuple[int, int]:
    return RANGES[field][1], RANGES[field][2]


def _string(body: dict[str, Any], name: str, required: bool = False) -> str | None:
    v = body.get(name)
    if v is None or v == "":
        if required:
            raise invalid(name, f"{name} is required")
        return None
    if not isinstance(v, str):
        raise invalid(name, f"{name} must be a string")
    return v


def _reraise(e: ApiError) -> ApiError:
    """The shared validators answer 400; Telnyx answers 422."""
    return ApiError(422, e.message, code=e.code, param=e.param) if e.status == 400 else e


def build_request(c: ApiContext, account: str, body: dict[str, Any]) -> CallRequest:
    try:
        to = _string(body, "to", required=True)
        from_ = _string(body, "from", required=True)
        assert to is not None and from_ is not None
        endpoint = c.endpoint_for(to, name="to")
        webhook = c.url("webhook_url", _string(body, "webhook_url"))
        method = forms.method("webhook_url_method", _string(body, "webhook_url_method"))
        timeout = body.get("timeout_secs", 30)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 600:
            raise invalid("timeout_secs", f"timeout_secs must be an integer 1-600 (got {timeout!r})")
    except ApiError as e:
        raise _reraise(e) from None
    mode, amd = amd_params(body)
    meta = {
        "dialect": "telnyx",
        "account_sid": account,
        "to": to,
        "from": from_,
        "webhook_url": webhook,
        "webhook_url_method": method,
        "amd_mode": mode,
        "connection_id": str(body.get("connection_id") or ""),
        "client_state": _string(body, "client_state"),
        "command_id": body.get("command_id"),
    }
    return CallRequest(
        endpoint=endpoint,
        amd=amd,
        async_amd=True,  # Telnyx reports AMD by webhook while the call goes on
        after=AfterDetection.HOLD,
        caller_id=from_,
        ring_timeout_s=timeout,
        meta=meta,
    )


class TelnyxCall(CallDriver):
    def __init__(self, ctx: ApiContext, call: Call) -> None:
        super().__init__(ctx, call)
        self.account: str = call.request.meta["account_sid"]
        self.token = ctx.token(self.account)
        self._detected = False

    def payload(self, **extra: Any) -> dict[str, Any]:
        m = self.call.request.meta
        leg = leg_uuid(self.call.id)
        p: dict[str, Any] = {
            "call_control_id": self.call.id,
            "call_leg_id": leg,
            "call_session_id": leg,
            "connection_id": m["connection_id"],
            "client_state": m["client_state"],
            "from": m["from"],
            "to": m["to"],
            "direction": "outgoing",
        }
        p.update(extra)
        return p

    async def _event(self, event_type: str, at: datetime, payload: dict[str, Any]) -> None:
        m = self.call.request.meta
        if not m.get("webhook_url"):
            return
        # Stable: the same event, the same id.
        event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.call.id}/{event_type}"))
        envelope = {
            "data": {
                "event_type": event_type,
                "id": event_id,
                "occurred_at": iso(at),
                "payload": payload,
                "record_type": "event",
            }
        }
        await self.ctx.webhooks.send_json(
            url=m["webhook_url"], payload=envelope, token=self.token, key=event_id, signer=telnyx_signing.SIGNER
        )
        self.log.info("telnyx_webhook_queued", event_type=event_type)

    async def on_initiated(self, at: datetime) -> None:
        await self._event("call.initiated", at, self.payload(state="bridging"))

    async def on_answered(self, at: datetime) -> None:
        await self._event("call.answered", at, self.payload(start_time=iso(self.call.answered_at)))

    async def on_verdict(self, verdict: Verdict, at: datetime) -> None:
        ab = verdict.answered_by
        mode = self.call.request.meta["amd_mode"]
        if not self._detected:  # the first verdict (DetectMessageEnd's interim machine_start included)
            self._detected = True
            result = "human" if ab is AnsweredBy.HUMAN else "not_sure" if ab is AnsweredBy.UNKNOWN else "machine"
            await self._event("call.machine.detection.ended", at, self.payload(result=result))
        if mode in MESSAGE_END and verdict.final and ab.value.startswith("machine_end"):
            ends = {AnsweredBy.MACHINE_END_BEEP: "beep_detected", AnsweredBy.MACHINE_END_SILENCE: "ended"}
            result = ends.get(ab, "not_sure")
            await self._event("call.machine.greeting.ended", at, self.payload(result=result))

    async def on_completed(self, status: CallStatus, at: datetime) -> None:
        c = self.call
        await self._event(
            "call.hangup",
            at,
            self.payload(
                hangup_cause=HANGUP_CAUSE.get(status, "unspecified"),
                hangup_source="unknown",
                sip_hangup_cause="unspecified",
                start_time=iso(c.answered_at or c.created_at),
                end_time=iso(c.ended_at),
            ),
        )


def call_record(call: Call) -> dict[str, Any]:
    leg = leg_uuid(call.id)
    return {
        "call_control_id": call.id,
        "call_leg_id": leg,
        "call_session_id": leg,
        "client_state": call.request.meta.get("client_state"),
        "is_alive": not call.ended,
        "call_duration": call.duration_s or 0,
        "record_type": "call",
    }


def _call(request: web.Request, account: str) -> Call:
    call = ctx(request).engine.get(request.match_info["id"])
    if call is None or call.request.meta.get("account_sid") != account or call.request.meta.get("dialect") != "telnyx":
        raise ApiError(404, "call not found", code=NOT_FOUND)
    return call


async def dial(request: web.Request) -> web.Response:
    c = ctx(request)
    account = auth.bearer(request, c.settings.accounts)
    req = build_request(c, account, await bodies.json_object(request))
    with c.admit(account):
        try:
            call = await c.engine.place(req)
        except PlaceError as e:
            if e.status == 400:
                raise invalid("to", f"to: Asterisk refused the endpoint {req.endpoint!r}: {e.reason}") from None
            raise ApiError(503, f"the call could not be placed: {e.reason}", code=UNAVAILABLE) from None
        TelnyxCall(c, call).attach()
    call.log.info("call_created", dialect="telnyx", amd=req.meta["amd_mode"])
    return web.json_response({"data": call_record(call)})


async def retrieve(request: web.Request) -> web.Response:
    c = ctx(request)
    return web.json_response({"data": call_record(_call(request, auth.bearer(request, c.settings.accounts)))})


async def hangup(request: web.Request) -> web.Response:
    c = ctx(request)
    call = _call(request, auth.bearer(request, c.settings.accounts))
    await c.engine.hangup(call)
    return web.json_response({"data": {"result": "ok"}})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v2/calls", dial),
        web.get("/v2/calls/{id}", retrieve, allow_head=False),
        web.post("/v2/calls/{id}/actions/hangup", hangup),
    ]

"""Plivo's (and Vobiz's) Call API: make a call with machine detection, fetch it, hang it up.

machine_detection=true|hangup. With machine_detection_url the detection is asynchronous: the
answer_url runs at answer and the verdict is POSTed to machine_detection_url. Without it, the
answer_url is requested once the verdict is known, with Machine=true|false among its fields.
`hangup` hangs up on a machine (its answer_url is then not requested in the sync case).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from ari_amd.api import auth, bodies, forms
from ari_amd.api.context import ApiContext, ctx
from ari_amd.api.driver import CallDriver
from ari_amd.api.errors import MISSING_FROM, MISSING_TO, NOT_FOUND, UNAVAILABLE, ApiError, bad_param
from ari_amd.api.twiml import TwimlRunner
from ari_amd.calls.model import AfterDetection, Call, CallRequest, CallStatus, PlaceError
from ari_amd.detect import AmdParams, AnsweredBy, Mode, ParameterError, Verdict

PREFIX = "/v1/Account/{account}"

# Vobiz's documented ranges and defaults (ms); `uses` is the AmdParams field it sets, if any.
TUNABLES: dict[str, tuple[int, int, int, str | None]] = {
    "machine_detection_time": (2000, 10000, 5000, "timeout_ms"),
    "machine_detection_initial_silence": (2000, 10000, 4500, "silence_timeout_ms"),
    "machine_detection_maximum_speech_length": (1000, 6000, 5000, None),
    "machine_detection_maximum_words": (2, 10, 3, None),
    "machine_detection_initial_greeting": (1000, 5000, 1500, "speech_threshold_ms"),
}
MIN_TIMEOUT_MS = 3000  # our detector's floor for MachineDetectionTimeout; a shorter time is raised to it

HANGUP_CAUSE = {
    CallStatus.COMPLETED: "NORMAL_CLEARING",
    CallStatus.BUSY: "USER_BUSY",
    CallStatus.NO_ANSWER: "NO_ANSWER",
    CallStatus.FAILED: "CALL_REJECTED",
    CallStatus.CANCELED: "ORIGINATOR_CANCEL",
}
CALL_STATUS = {CallStatus.CANCELED: "cancel"}


def call_uuid(call_id: str) -> str:
    """Plivo's UUID for our "CA" + 32 hex id (the same 128 bits)."""
    return str(uuid.UUID(hex=call_id[2:]))


def call_id(value: str) -> str | None:
    try:
        return "CA" + uuid.UUID(value).hex
    except ValueError:
        return None


async def fields(request: web.Request) -> dict[str, str]:
    """The plivo SDK sends JSON; curl users send forms. Values as strings."""
    data = await bodies.fields(request)
    return {k: ("true" if v is True else "false" if v is False else str(v)) for k, v in data.items() if v is not None}


def _tunable(f: Mapping[str, str], name: str) -> int | None:
    lo, hi, _, _ = TUNABLES[name]
    short = name.removeprefix("machine_detection_")
    if f.get(name) not in (None, ""):
        return forms.integer(name, f[name], lo, hi, "ms" if "words" not in name else "")
    if short != name and f.get(short) not in (None, ""):  # Vobiz's docs name some without the prefix
        return forms.integer(short, f[short], lo, hi, "ms" if "words" not in name else "")
    return None


def amd_params(f: Mapping[str, str]) -> AmdParams | None:
    md = f.get("machine_detection")
    values = {name: _tunable(f, name) for name in TUNABLES}
    if md in (None, "", "false"):
        return None
    forms.choice("machine_detection", md, ("true", "hangup"))
    kw: dict[str, int] = {}
    for name, (_, _, default, target) in TUNABLES.items():
        if target is None:
            continue  # word counts and utterance lengths: our detector has no such rule
        value = values[name]
        if target == "timeout_ms":
            kw[target] = max(MIN_TIMEOUT_MS, value if value is not None else default)
        elif value is not None:
            kw[target] = value
    try:
        return AmdParams(mode=Mode.ENABLE, **kw)
    except ParameterError as e:
        raise bad_param(e.name, str(e)) from None


def build_request(c: ApiContext, account: str, f: Mapping[str, str]) -> CallRequest:
    to = f.get("to", "").strip()
    if not to:
        raise bad_param("to", "to is required", MISSING_TO)
    if "<" in to:
        raise bad_param("to", "to: one destination per request (bulk '<' calls are not supported)")
    from_ = f.get("from", "").strip()
    if not from_:
        raise bad_param("from", "from is required", MISSING_FROM)
    answer_url = c.url("answer_url", f.get("answer_url"), required=True)
    md_url = c.url("machine_detection_url", f.get("machine_detection_url"))
    amd = amd_params(f)
    meta = {
        "dialect": "plivo",
        "account_sid": account,
        "to": to,
        "from": from_,
        "answer_url": answer_url,
        "answer_method": forms.method("answer_method", f.get("answer_method")),
        "ring_url": c.url("ring_url", f.get("ring_url")),
        "ring_method": forms.method("ring_method", f.get("ring_method")),
        "hangup_url": c.url("hangup_url", f.get("hangup_url")),
        "hangup_method": forms.method("hangup_method", f.get("hangup_method")),
        "machine_detection": (f.get("machine_detection") or "").lower() or None,
        "machine_detection_url": md_url,
        "machine_detection_method": forms.method("machine_detection_method", f.get("machine_detection_method")),
    }
    return CallRequest(
        endpoint=c.endpoint_for(to, name="to"),
        amd=amd,
        async_amd=amd is not None and md_url is not None,
        after=AfterDetection.HOLD,  # Plivo XML drives every call
        caller_id=from_,
        ring_timeout_s=forms.integer("ring_timeout", f.get("ring_timeout"), 1, 600, "s") or 60,
        meta=meta,
    )


class PlivoCall(CallDriver):
    def __init__(self, ctx: ApiContext, call: Call) -> None:
        super().__init__(ctx, call)
        self.account: str = call.request.meta["account_sid"]
        self.token = ctx.token(self.account)
        self._documents = 0

    def base(self) -> dict[str, str]:
        m = self.call.request.meta
        u = call_uuid(self.call.id)
        return {
            "From": m["from"],
            "To": m["to"],
            "CallUUID": u,
            "RequestUUID": u,
            "ALegUUID": u,
            "ALegRequestUUID": u,
            "Direction": "outbound",
            "CallStatus": CALL_STATUS.get(self.call.status, self.call.status.value),
        }

    async def _send(self, url_key: str, params: dict[str, str], key: str) -> None:
        m = self.call.request.meta
        url = m.get(url_key)
        if url:
            method = m.get(url_key.replace("_url", "_method"), "POST")
            await self.ctx.webhooks.send_form(
                url=url, method=method, params=params, token=self.token, key=key, plivo=True
            )

    async def on_ringing(self, at: datetime) -> None:
        await self._send("ring_url", {**self.base(), "Event": "Ring"}, f"{self.call.id}-ring")

    async def on_answered(self, at: datetime) -> None:
        if self.call.request.amd is None or self.call.request.async_amd:
            self._run({})

    async def on_verdict(self, verdict: Verdict, at: datetime) -> None:
        if not verdict.final:
            return
        m = self.call.request.meta
        machine = verdict.answered_by.is_machine or verdict.answered_by is AnsweredBy.FAX
        if self.call.request.async_amd:
            params = {
                **self.base(),
                "Machine": "true" if machine else "false",
                "IfMachine": "hangup" if m["machine_detection"] == "hangup" else "continue",
                "Event": "MachineDetection",
            }
            await self._send("machine_detection_url", params, f"{self.call.id}-amd")
        if machine and m["machine_detection"] == "hangup":
            self.log.info("plivo_machine_hangup", answered_by=verdict.answered_by.value)
            await self.ctx.engine.hangup(self.call)
        elif not self.call.request.async_amd and not self.call.ended:
            self._run({"Machine": "true" if machine else "false"})

    async def on_completed(self, status: CallStatus, at: datetime) -> None:
        c = self.call
        params = {
            **self.base(),
            "Event": "Hangup",
            "HangupCause": HANGUP_CAUSE.get(status, "NORMAL_CLEARING"),
            "Duration": str(c.duration_s or 0),
            "BillDuration": str(c.duration_s or 0),
            "StartTime": _ts(c.created_at),
            "AnswerTime": _ts(c.answered_at),
            "EndTime": _ts(c.ended_at),
        }
        await self._send("hangup_url", params, f"{self.call.id}-hangup")

    def _run(self, extra: dict[str, str]) -> None:
        m = self.call.request.meta
        runner = TwimlRunner(
            self.ctx.engine,
            self.call,
            fetch=self._fetch,
            endpoint_for=self.ctx.endpoint_for,
            dial_status_param="DialStatus",
            url_refused=self.ctx.settings.url_policy.reason,
        )
        self.spawn(runner.run_url(m["answer_url"], m["answer_method"], {"Event": "StartApp", **extra}))

    async def _fetch(self, url: str, method: str, extra: Mapping[str, str]) -> tuple[str, str]:
        self._documents += 1
        return await self.ctx.webhooks.fetch_document(
            url=url,
            method=method,
            params={**self.base(), **extra},
            token=self.token,
            key=f"{self.call.id}-doc-{self._documents}",
            plivo=True,
        )


def _ts(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else ""


def _api_id() -> str:
    return str(uuid.uuid4())


def _call(request: web.Request, account: str) -> Call:
    cid = call_id(request.match_info["uuid"])
    call = ctx(request).engine.get(cid) if cid else None
    if call is None or call.request.meta.get("account_sid") != account or call.request.meta.get("dialect") != "plivo":
        raise ApiError(404, "call not found", code=NOT_FOUND)
    return call


def call_details(call: Call) -> dict[str, Any]:
    m = call.request.meta
    u = call_uuid(call.id)
    return {
        "api_id": _api_id(),
        "call_uuid": u,
        "request_uuid": u,
        "call_status": CALL_STATUS.get(call.status, call.status.value),
        "call_direction": "outbound",
        "from_number": m.get("from"),
        "to_number": m.get("to"),
        "answer_time": _ts(call.answered_at) or None,
        "end_time": _ts(call.ended_at) or None,
        "call_duration": call.duration_s,
        "hangup_cause_name": HANGUP_CAUSE.get(call.status) if call.ended else None,
        "machine_detection": m.get("machine_detection"),
        "answered_by": call.answered_by,  # ours: Twilio's finer verdict, for those who want it
    }


async def make_call(request: web.Request) -> web.Response:
    c = ctx(request)
    account = auth.basic(request, c.settings.accounts, request.match_info["account"])
    req = build_request(c, account, await fields(request))
    with c.admit(account):
        try:
            call = await c.engine.place(req)
        except PlaceError as e:
            if e.status == 400:
                raise bad_param("to", f"to: Asterisk refused the endpoint {req.endpoint!r}: {e.reason}") from None
            raise ApiError(503, f"the call could not be placed: {e.reason}", code=UNAVAILABLE) from None
        PlivoCall(c, call).attach()
    call.log.info(
        "call_created", dialect="plivo", account_sid=account, amd=req.amd is not None, async_amd=req.async_amd
    )
    return web.json_response(
        {"api_id": _api_id(), "message": "call fired", "request_uuid": call_uuid(call.id)}, status=201
    )


async def get_call(request: web.Request) -> web.Response:
    c = ctx(request)
    account = auth.basic(request, c.settings.accounts, request.match_info["account"])
    return web.json_response(call_details(_call(request, account)))


async def hangup_call(request: web.Request) -> web.Response:
    c = ctx(request)
    account = auth.basic(request, c.settings.accounts, request.match_info["account"])
    call = _call(request, account)
    await c.engine.hangup(call)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.post(PREFIX + "/Call/", make_call),
        web.get(PREFIX + "/Call/{uuid}/", get_call, allow_head=False),
        web.delete(PREFIX + "/Call/{uuid}/", hangup_call),
    ]

"""Twilio's Calls resource: create, fetch, list, update (hang up / redirect)."""

from __future__ import annotations

import contextlib
import re

from aiohttp import web
from multidict import MultiDictProxy

from ari_amd.api import auth, bodies, forms
from ari_amd.api.context import ApiContext, ctx
from ari_amd.api.errors import (
    MISSING_FROM,
    MISSING_TO,
    NOT_FOUND,
    NOT_IN_PROGRESS,
    UNAVAILABLE,
    ApiError,
    bad_param,
)
from ari_amd.api.twilio_calls import STATUS_EVENTS, TwilioCall, call_resource
from ari_amd.calls.model import AfterDetection, Call, CallRequest, CallStatus, PlaceError
from ari_amd.detect import AmdParams, Mode, ParameterError

PREFIX = "/2010-04-01/Accounts/{account}"
MAX_PAGE_SIZE = 1000
_SID = re.compile(r"^CA[0-9a-f]{32}$")


def amd_params(form: MultiDictProxy[str]) -> AmdParams | None:
    """AmdParams from Twilio's fields (its timeout is in seconds); every value is checked even
    without MachineDetection, so a typo is reported rather than silently ignored."""
    kw: dict[str, object] = {}
    t = forms.integer("MachineDetectionTimeout", form.get("MachineDetectionTimeout"), 3, 59, "s")
    if t is not None:
        kw["timeout_ms"] = t * 1000
    for name, field in (
        ("MachineDetectionSpeechThreshold", "speech_threshold_ms"),
        ("MachineDetectionSpeechEndThreshold", "speech_end_threshold_ms"),
        ("MachineDetectionSilenceTimeout", "silence_timeout_ms"),
        ("MachineDetectionBeepTimeout", "beep_timeout_ms"),  # ari-amd's own (DetectMessageEnd)
    ):
        n = forms.integer(name, form.get(name))
        if n is not None:
            kw[field] = n
    mode = form.get("MachineDetection")
    try:
        if mode is None or mode.strip() == "":
            AmdParams(**kw)  # type: ignore[arg-type]  # ranges checked all the same
            return None
        return AmdParams(mode=Mode.parse(mode), **kw)  # type: ignore[arg-type]
    except ParameterError as e:
        raise bad_param(e.name, str(e)) from None


def status_events(form: MultiDictProxy[str]) -> tuple[str, ...]:
    """StatusCallbackEvent, repeated (the twilio library) or space-separated (Twilio's docs)."""
    events: list[str] = []
    for raw in form.getall("StatusCallbackEvent", []):
        for e in re.split(r"[\s,]+", raw.strip()):
            if not e:
                continue
            if e.lower() not in STATUS_EVENTS:
                raise bad_param(
                    "StatusCallbackEvent", f"StatusCallbackEvent must be one of {', '.join(STATUS_EVENTS)} (got {e!r})"
                )
            if e.lower() not in events:
                events.append(e.lower())
    return tuple(events)


def build_request(c: ApiContext, account: str, form: MultiDictProxy[str]) -> CallRequest:
    to = (form.get("To") or "").strip()
    if not to:
        raise bad_param("To", "To is required: the number, PJSIP/... endpoint or sip: URI to call", MISSING_TO)
    endpoint = c.endpoint_for(to)
    from_ = (form.get("From") or "").strip()
    if not from_:
        raise bad_param("From", "From is required: the caller ID to present", MISSING_FROM)
    if len(from_) > 64 or any(ord(ch) < 32 for ch in from_):
        raise bad_param("From", "From must be at most 64 printable characters")
    url = c.url("Url", form.get("Url"))
    twiml = form.get("Twiml")
    if twiml is not None and not twiml.strip():
        twiml = None
    if url and twiml:
        raise bad_param("Twiml", "give Url or Twiml, not both")
    status_callback = c.url("StatusCallback", form.get("StatusCallback"))
    amd_callback = c.url("AsyncAmdStatusCallback", form.get("AsyncAmdStatusCallback"))
    ring_timeout = forms.integer("Timeout", form.get("Timeout"), 1, 600, "s") or 60
    meta = {
        "dialect": "twilio",
        "account_sid": account,
        "to": to,
        "from": from_,
        "url": url,
        "method": forms.method("Method", form.get("Method")),
        "twiml": twiml,
        "status_callback": status_callback,
        "status_callback_method": forms.method("StatusCallbackMethod", form.get("StatusCallbackMethod")),
        "status_callback_events": status_events(form) or ("completed",),
        "async_amd_status_callback": amd_callback,
        "async_amd_status_callback_method": forms.method(
            "AsyncAmdStatusCallbackMethod", form.get("AsyncAmdStatusCallbackMethod")
        ),
    }
    return CallRequest(
        endpoint=endpoint,
        amd=amd_params(form),
        async_amd=forms.boolean("AsyncAmd", form.get("AsyncAmd")),
        # TwiML drives the call: keep it in Stasis; without any, the dialplan takes it
        after=AfterDetection.HOLD if (url or twiml) else AfterDetection.CONTINUE,
        dialplan=c.settings.dialplan,
        caller_id=from_,
        ring_timeout_s=ring_timeout,
        meta=meta,
    )


def _account(request: web.Request) -> str:
    c = ctx(request)
    return auth.basic(request, c.settings.accounts, request.match_info["account"])


def _call(request: web.Request, account: str) -> Call:
    sid = request.match_info["sid"]
    call = ctx(request).engine.get(sid) if _SID.match(sid) else None
    if call is None or call.request.meta.get("account_sid") != account:
        raise ApiError(
            404, f"The requested resource /2010-04-01/Accounts/{account}/Calls/{sid}.json was not found", code=NOT_FOUND
        )
    return call


async def create_call(request: web.Request) -> web.Response:
    account = _account(request)
    c = ctx(request)
    form = await bodies.form(request)
    req = build_request(c, account, form)
    with c.admit(account):
        try:
            call = await c.engine.place(req)
        except PlaceError as e:
            if e.status == 400:
                raise bad_param("To", f"To: Asterisk refused the endpoint {req.endpoint!r}: {e.reason}") from None
            raise ApiError(503, f"the call could not be placed: {e.reason}", code=UNAVAILABLE) from None
        TwilioCall(c, call).attach()
    call.log.info(
        "call_created", dialect="twilio", account_sid=account, amd=req.amd is not None, async_amd=req.async_amd
    )
    return web.json_response(call_resource(call), status=201)


async def fetch_call(request: web.Request) -> web.Response:
    return web.json_response(call_resource(_call(request, _account(request))))


async def update_call(request: web.Request) -> web.Response:
    account = _account(request)
    call = _call(request, account)
    c = ctx(request)
    form = await bodies.form(request)
    status = form.get("Status")
    url = c.url("Url", form.get("Url"))
    twiml = form.get("Twiml")
    method = forms.method("Method", form.get("Method"))
    if status:
        status = forms.choice("Status", str(status), ("completed", "canceled"))
        # canceled only ends a call not yet answered, as in Twilio
        if status == "completed" or call.status in (CallStatus.QUEUED, CallStatus.INITIATED, CallStatus.RINGING):
            await c.engine.hangup(call)
            with contextlib.suppress(TimeoutError):
                await call.wait_ended(timeout=2.0)
        return web.json_response(call_resource(call))
    if url or twiml:
        driver = c.drivers.get(call.id)
        if call.status is not CallStatus.IN_PROGRESS or not isinstance(driver, TwilioCall):
            raise ApiError(400, "Call is not in-progress. Cannot redirect.", code=NOT_IN_PROGRESS, param="Url")
        driver.start_script(url=url, method=method, twiml=str(twiml) if twiml else None)
        return web.json_response(call_resource(call))
    raise bad_param("Status", "give Status=completed to hang up, or a new Url or Twiml")


async def list_calls(request: web.Request) -> web.Response:
    account = _account(request)
    q = request.query
    size = forms.integer("PageSize", q.get("PageSize"), 1, MAX_PAGE_SIZE) or 50
    page = forms.integer("Page", q.get("Page"), 0, None) or 0
    calls = [k for k in ctx(request).engine.recent() if k.request.meta.get("account_sid") == account]
    if q.get("Status"):
        calls = [k for k in calls if k.status.value == q["Status"]]
    if q.get("To"):
        calls = [k for k in calls if k.request.meta.get("to") == q["To"]]
    if q.get("From"):
        calls = [k for k in calls if k.request.meta.get("from") == q["From"]]
    start = page * size
    chunk = calls[start : start + size]
    base = f"/2010-04-01/Accounts/{account}/Calls.json"

    def page_uri(p: int) -> str:
        return f"{base}?PageSize={size}&Page={p}"

    return web.json_response(
        {
            "calls": [call_resource(k) for k in chunk],
            "page": page,
            "page_size": size,
            "start": start,
            "end": start + max(len(chunk) - 1, 0),
            "uri": page_uri(page),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if start + size < len(calls) else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        }
    )


def routes() -> list[web.RouteDef]:
    return [
        web.post(PREFIX + "/Calls.json", create_call),
        web.get(PREFIX + "/Calls.json", list_calls, allow_head=False),
        web.get(PREFIX + "/Calls/{sid}.json", fetch_call, allow_head=False),
        web.post(PREFIX + "/Calls/{sid}.json", update_call),
    ]

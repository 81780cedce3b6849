"""A Twilio-dialect call: its status callbacks, AMD callback, and the TwiML that drives it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from ari_amd.api.context import ApiContext
from ari_amd.api.driver import CallDriver
from ari_amd.api.twiml import TwimlRunner
from ari_amd.calls.model import Call, CallStatus
from ari_amd.detect import AnsweredBy, Rule, Verdict

API_VERSION = "2010-04-01"
DIRECTION = "outbound-api"
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")


def hung_up(v: Verdict) -> bool:
    """The verdict the detector gives when the callee hung up before one."""
    return v.rule is Rule.AUDIO_END and v.cause.startswith("hangup")


def rfc2822(at: datetime | None) -> str | None:
    """Twilio's date format: 'Tue, 01 Dec 2026 07:30:00 +0000'."""
    return format_datetime(at) if at is not None else None


class TwilioCall(CallDriver):
    def __init__(self, ctx: ApiContext, call: Call) -> None:
        super().__init__(ctx, call)
        m = call.request.meta
        self.account: str = m["account_sid"]
        self.token = ctx.token(self.account)
        self.events: frozenset[str] = frozenset(m.get("status_callback_events") or ("completed",))
        self._sequence = 0
        self._documents = 0
        self._script: asyncio.Task[None] | None = None
        self._amd_sent = False
        self._redirected = False

    # -- what Twilio sends ---------------------------------------------------------------------
    def base_params(self) -> dict[str, str]:
        m = self.call.request.meta
        return {
            "CallSid": self.call.id,
            "AccountSid": self.account,
            "From": m.get("from", ""),
            "To": m.get("to", ""),
            "Caller": m.get("from", ""),
            "Called": m.get("to", ""),
            "CallStatus": self.call.status.value,
            "Direction": DIRECTION,
            "ApiVersion": API_VERSION,
        }

    def _amd_params(self) -> dict[str, str]:
        if self.call.request.amd is None or not self.call.verdicts:
            return {}
        v = self.call.verdicts[-1]
        return {"AnsweredBy": v.answered_by.value, "MachineDetectionDuration": str(v.duration_ms)}

    async def _status(
        self, event: str, status: CallStatus, at: datetime, extra: Mapping[str, str] | None = None
    ) -> None:
        url = self.call.request.meta.get("status_callback")
        if not url or event not in self.events:
            return
        params = self.base_params()
        params.update(
            CallStatus=status.value,
            CallbackSource="call-progress-events",
            Timestamp=rfc2822(at) or "",
            SequenceNumber=str(self._sequence),
        )
        params.update(self._amd_params())
        params.update(extra or {})
        self._sequence += 1
        await self.ctx.webhooks.send_form(
            url=url,
            method=self.call.request.meta.get("status_callback_method", "POST"),
            params=params,
            token=self.token,
            key=f"{self.call.id}-status-{event}",
        )
        self.log.info("status_callback_queued", callback=event, status=status.value)

    # -- lifecycle -----------------------------------------------------------------------------
    async def on_initiated(self, at: datetime) -> None:
        await self._status("initiated", CallStatus.INITIATED, at)

    async def on_ringing(self, at: datetime) -> None:
        await self._status("ringing", CallStatus.RINGING, at)

    async def on_answered(self, at: datetime) -> None:
        await self._status("answered", CallStatus.IN_PROGRESS, at)
        req = self.call.request
        if req.amd is None or req.async_amd:
            self.start_script()  # no detection to wait for: the call runs its TwiML at once

    async def on_verdict(self, verdict: Verdict, at: datetime) -> None:
        if not verdict.final:
            return  # machine_start before DetectMessageEnd's end: Twilio reports only the last
        req = self.call.request
        if req.async_amd:
            url = req.meta.get("async_amd_status_callback")
            if url:
                await self.ctx.webhooks.send_form(
                    url=url,
                    method=req.meta.get("async_amd_status_callback_method", "POST"),
                    params={
                        "CallSid": self.call.id,
                        "AccountSid": self.account,
                        "AnsweredBy": verdict.answered_by.value,
                        "MachineDetectionDuration": str(verdict.duration_ms),
                    },
                    token=self.token,
                    key=f"{self.call.id}-amd",
                )
            self._amd_sent = True
        elif not self.call.ended and not hung_up(verdict):
            self.start_script()  # a callee who hung up during detection gets no Url, as in Twilio

    async def on_completed(self, status: CallStatus, at: datetime) -> None:
        req = self.call.request
        if req.async_amd and req.amd is not None and self.call.answered_at is not None and not self._amd_sent:
            # ended during detection without a verdict reaching us: Twilio still reports unknown
            await self.on_verdict(Verdict(AnsweredBy.UNKNOWN, 0, "ended before a verdict", Rule.AUDIO_END), at)
        duration = str(self.call.duration_s or 0)
        minutes = str(-(-int(duration) // 60))  # rounded up
        await self._status("completed", status, at, {"CallDuration": duration, "Duration": minutes})

    # -- TwiML ---------------------------------------------------------------------------------
    def start_script(self, url: str | None = None, method: str | None = None, twiml: str | None = None) -> None:
        """Run the call's Url / Twiml (or a new one from an update), replacing a running one."""
        m = self.call.request.meta
        if url is None and twiml is None:
            if self._redirected:
                return  # an update's Url took over: the verdict does not bring the first one back
            url, method, twiml = m.get("url"), m.get("method"), m.get("twiml")
        else:
            self._redirected = True
        if url is None and twiml is None:
            return
        if self._script is not None and not self._script.done():
            self._script.cancel()
        runner = TwimlRunner(
            self.ctx.engine,
            self.call,
            fetch=self._fetch,
            endpoint_for=self.ctx.endpoint_for,
            url_refused=self.ctx.settings.url_policy.reason,
        )
        if twiml is not None:
            self._script = self.spawn(runner.run_document(twiml))
        else:
            assert url is not None
            self._script = self.spawn(runner.run_url(url, method or "POST"))

    async def _fetch(self, url: str, method: str, extra: Mapping[str, str]) -> tuple[str, str]:
        self._documents += 1
        params = self.base_params()
        params.update(self._amd_params())
        params.update(extra)
        return await self.ctx.webhooks.fetch_document(
            url=url, method=method, params=params, token=self.token, key=f"{self.call.id}-doc-{self._documents}"
        )


def call_resource(call: Call) -> dict[str, Any]:
    """The Call as Twilio's API shows it."""
    m = call.request.meta
    account = m.get("account_sid", "")
    uri = f"/2010-04-01/Accounts/{account}/Calls/{call.id}"
    started = call.created_at if call.status is not CallStatus.QUEUED else None
    updated = call.ended_at or call.answered_at or call.created_at
    duration = call.duration_s if call.ended else None
    if call.ended and duration is None:
        duration = 0  # ended unanswered: Twilio says "0"
    return {
        "sid": call.id,
        "date_created": rfc2822(call.created_at),
        "date_updated": rfc2822(updated),
        "parent_call_sid": None,
        "account_sid": account,
        "to": m.get("to", ""),
        "to_formatted": m.get("to", ""),
        "from": m.get("from", call.from_number),
        "from_formatted": m.get("from", call.from_number),
        "phone_number_sid": None,
        "status": call.status.value,
        "start_time": rfc2822(started),
        "end_time": rfc2822(call.ended_at),
        "duration": None if duration is None else str(duration),
        "price": None,
        "price_unit": "USD",
        "direction": "inbound" if call.inbound else DIRECTION,
        "answered_by": call.answered_by,
        "api_version": API_VERSION,
        "forwarded_from": None,
        "group_sid": None,
        "caller_name": None,
        "queue_time": "0",
        "trunk_sid": None,
        "uri": uri + ".json",
        "subresource_uris": {
            "notifications": uri + "/Notifications.json",
            "recordings": uri + "/Recordings.json",
            "payments": uri + "/Payments.json",
            "events": uri + "/Events.json",
            "siprec": uri + "/Siprec.json",
            "streams": uri + "/Streams.json",
            "transcriptions": uri + "/Transcriptions.json",
            "user_defined_message_subscriptions": uri + "/UserDefinedMessageSubscriptions.json",
            "user_defined_messages": uri + "/UserDefinedMessages.json",
        },
    }

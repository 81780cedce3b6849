"""The async-AMD callback: the verdict POSTed (or GET) as Twilio's form fields.

A Sender delivers one webhook; the engine's default sends directly with a few quick retries,
and a durable outbox (persisted before the first attempt) can take its place.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import aiohttp
import structlog

from ari_amd.calls.model import Call, CallEvent, CallEventKind
from ari_amd.calls.signing import twilio_signature
from ari_amd.calls.urlpolicy import UrlPolicy, UrlRefused, client_session

SIGNATURE_HEADER = "X-Twilio-Signature"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
DIRECT_ATTEMPTS = 4
DIRECT_BACKOFF_S = 0.5

log = structlog.get_logger(__name__)


class Sender(Protocol):
    async def send(
        self, url: str, method: str, fields: Mapping[str, str], *, call_id: str, auth_token: str | None = None
    ) -> None: ...


def amd_fields(call: Call, account_sid: str) -> dict[str, str]:
    """Twilio's AsyncAmdStatusCallback fields for the call's final verdict."""
    v = call.verdict
    return {
        "CallSid": call.id,
        "AccountSid": account_sid,
        "AnsweredBy": v.answered_by.value if v is not None else "unknown",
        "MachineDetectionDuration": str(v.duration_ms if v is not None else 0),
    }


def signed_headers(url: str, fields: Mapping[str, str], auth_token: str | None, key: str) -> dict[str, str]:
    headers = {IDEMPOTENCY_HEADER: key}
    if auth_token:
        headers[SIGNATURE_HEADER] = twilio_signature(auth_token, url, fields)
    return headers


class DirectSender:
    """Sends now, retrying connection errors, timeouts and 5xx a few times; logs what is lost.
    Where it may send is the URL policy's to say, as for the outbox (`serve` uses the outbox)."""

    def __init__(self, policy: UrlPolicy | None = None, timeout_s: float = 10.0) -> None:
        self.policy = policy or UrlPolicy()
        self.timeout_s = timeout_s

    async def send(
        self, url: str, method: str, fields: Mapping[str, str], *, call_id: str, auth_token: str | None = None
    ) -> None:
        key = secrets.token_hex(16)
        headers = signed_headers(url, fields, auth_token, key)
        try:
            self.policy.check_url(url)
        except UrlRefused as e:
            log.error("callback_url_refused", call_id=call_id, reason=e.reason)
            return
        # The policy's resolver checks every address a name resolves to; no redirects followed.
        session = client_session(self.policy, self.timeout_s)
        try:
            for attempt in range(1, DIRECT_ATTEMPTS + 1):
                try:
                    if method.upper() == "GET":
                        request = session.get(url, params=dict(fields), headers=headers, allow_redirects=False)
                    else:
                        request = session.post(url, data=dict(fields), headers=headers, allow_redirects=False)
                    async with request as resp:
                        if resp.status < 500:
                            log.info("callback_sent", call_id=call_id, status=resp.status, attempt=attempt)
                            return
                        error = f"HTTP {resp.status}"
                except UrlRefused as e:
                    log.error("callback_url_refused", call_id=call_id, reason=e.reason)
                    return
                except (aiohttp.ClientError, TimeoutError, OSError) as e:
                    error = f"{type(e).__name__}: {e}"
                log.warning("callback_failed", call_id=call_id, attempt=attempt, error=error)
                await asyncio.sleep(DIRECT_BACKOFF_S * 2 ** (attempt - 1) * random.uniform(0.5, 1.0))
            log.error("callback_lost", call_id=call_id, attempts=DIRECT_ATTEMPTS)
        finally:
            await session.close()


def amd_callback_listener(
    sender: Sender, url: str, method: str, account_sid: str, auth_token: str | None
) -> Callable[[CallEvent], Awaitable[None]]:
    """A Call listener that sends the final verdict once (the interim machine_start is not sent:
    Twilio's async callback carries the final AnsweredBy only)."""
    sent = False

    async def listener(ev: CallEvent) -> None:
        nonlocal sent
        final = (ev.kind is CallEventKind.VERDICT and ev.verdict is not None and ev.verdict.final) or (
            ev.kind is CallEventKind.COMPLETED and ev.call.answered_at is not None
        )
        if sent or not final:
            return
        sent = True
        await sender.send(url, method, amd_fields(ev.call, account_sid), call_id=ev.call.id, auth_token=auth_token)

    return listener

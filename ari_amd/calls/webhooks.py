"""Webhooks as the carriers send them: signed with the account's token, with an idempotency token.

Callbacks that only inform (status, AMD verdicts) go through the durable Outbox. A request whose
answer the call needs now (the TwiML at Url) is sent here directly, signed the same way.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import hashlib
import hmac
import json as jsonlib
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp
import structlog

from ari_amd.calls.outbox import IDEMPOTENCY_HEADER, Outbox, redact_url
from ari_amd.calls.signing import twilio_signature
from ari_amd.calls.urlpolicy import UrlPolicy, UrlRefused, client_session, request

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
USER_AGENT = "ari-amd (TwilioProxy compatible)"


def _with_query(url: str, params: Mapping[str, str]) -> str:
    if not params:
        return url
    return url + ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(list(params.items()))


def signed_form(
    token: str, url: str, method: str, params: Mapping[str, str]
) -> tuple[str, dict[str, str] | None, dict[str, str]]:
    """(url to request, form body or None for GET, headers). GET is signed over the full URL
    with its query, POST over URL + sorted fields: what Twilio's RequestValidator checks."""
    if method.upper() == "GET":
        full = _with_query(url, params)
        return full, None, {SIGNATURE_HEADER: twilio_signature(token, full, {})}
    return url, dict(params), {SIGNATURE_HEADER: twilio_signature(token, url, params)}


def signed_json(token: str, url: str, payload: Any) -> tuple[str, bytes, dict[str, str]]:
    """Twilio's scheme for JSON bodies: bodySHA256 (hex) in the query, the URL signed alone."""
    body = jsonlib.dumps(payload, separators=(",", ":")).encode()
    full = _with_query(url, {"bodySHA256": hashlib.sha256(body).hexdigest()})
    return full, body, {SIGNATURE_HEADER: twilio_signature(token, full, {}), "Content-Type": "application/json"}


def _short(e: BaseException | None) -> str:
    if isinstance(e, aiohttp.ServerConnectionError):
        return str(e)  # ours: "HTTP 503"
    return ""


def plivo_signature_v2(token: str, url: str, nonce: str) -> str:
    """Plivo's X-Plivo-Signature-V2: base64(HMAC-SHA256(auth token, URL without its query + nonce))."""
    p = urllib.parse.urlsplit(url)
    base = urllib.parse.urlunsplit((p.scheme, p.netloc, p.path, "", ""))
    return base64.b64encode(hmac.new(token.encode(), (base + nonce).encode(), hashlib.sha256).digest()).decode()


def plivo_headers(token: str, url: str) -> dict[str, str]:
    nonce = secrets.token_hex(10)
    return {"X-Plivo-Signature-V2": plivo_signature_v2(token, url, nonce), "X-Plivo-Signature-V2-Nonce": nonce}


def _codec(charset: str | None) -> str:
    """The response's charset if Python knows it (a bogus one must not raise LookupError)."""
    try:
        return codecs.lookup(charset or "utf-8").name
    except LookupError:
        return "utf-8"


class DocumentError(Exception):
    """A document could not be had; the message names the URL without userinfo or query."""


class Webhooks:
    def __init__(
        self,
        outbox: Outbox,
        *,
        timeout_s: float = 10.0,
        max_document_bytes: int = 256 * 1024,
        policy: UrlPolicy | None = None,
    ) -> None:
        self.outbox = outbox
        self.policy = policy or outbox.policy
        self.timeout_s = timeout_s
        self.max_document_bytes = max_document_bytes
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_form(
        self, *, url: str, method: str, params: Mapping[str, str], token: str, key: str, plivo: bool = False
    ) -> str:
        """A signed form callback, through the outbox (durable, retried). plivo: Plivo's V2
        signature headers as well as Twilio's."""
        full, form, headers = signed_form(token, url, method, params)
        headers["User-Agent"] = USER_AGENT
        if plivo:
            headers.update(plivo_headers(token, full))
        return await self.outbox.enqueue(full, method=method, form=form, headers=headers, key=key)

    async def send_json(
        self,
        *,
        url: str,
        payload: Any,
        token: str,
        key: str,
        headers: Mapping[str, str] | None = None,
        signer: str | None = None,
    ) -> str:
        """A JSON callback through the outbox, Twilio-signed; `signer` (an outbox signer's name)
        adds another signature at each attempt."""
        full, body, hdrs = signed_json(token, url, payload)
        hdrs.update(headers or {})
        hdrs["User-Agent"] = USER_AGENT
        return await self.outbox.enqueue(full, method="POST", body=body, headers=hdrs, key=key, signer=signer)

    async def fetch_document(
        self,
        *,
        url: str,
        method: str,
        params: Mapping[str, str],
        token: str,
        key: str,
        attempts: int = 2,
        plivo: bool = False,
    ) -> tuple[str, str]:
        """Request a document (TwiML / Plivo XML) the call runs next: (text, final URL).
        Retried once on a connection error or a 5xx; anything else raises."""
        if self._session is None:
            self._session = client_session(self.policy, self.timeout_s)
        full, form, headers = signed_form(token, url, method, params)
        headers[IDEMPOTENCY_HEADER] = key
        headers["User-Agent"] = USER_AGENT
        if plivo:
            headers.update(plivo_headers(token, full))
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                reply = await request(
                    self._session, self.policy, method, full,
                    data=form, headers=headers, max_body=self.max_document_bytes,
                )
                if len(reply.body) > self.max_document_bytes:
                    raise DocumentError(f"{redact_url(full)}: larger than {self.max_document_bytes} bytes")
                if reply.status >= 500:
                    raise aiohttp.ServerConnectionError(f"HTTP {reply.status}")
                if reply.status >= 400:
                    raise DocumentError(f"{redact_url(full)}: HTTP {reply.status}")
                log.info("document_fetched", url=redact_url(full), status=reply.status, attempt=attempt)
                return reply.body.decode(_codec(reply.charset), "replace"), reply.url
            except UrlRefused as e:  # not requested: no retry will change the policy's answer
                log.warning("document_url_refused", url=redact_url(full), reason=e.reason)
                raise DocumentError(f"{redact_url(full)}: refused: {e.reason}") from None
            except (aiohttp.ClientError, TimeoutError) as e:
                last = e
                log.warning("document_fetch_retry", url=redact_url(full), error=type(e).__name__, attempt=attempt)
                if attempt < attempts:
                    await asyncio.sleep(0.2 * attempt)
        # aiohttp's messages can carry the full URL (credentials in its query): name the type only
        raise DocumentError(f"{redact_url(full)}: {type(last).__name__} {_short(last)}")


class OutboxSender:
    """The engine's callbacks.Sender over the durable outbox, for the AMD callbacks the engine
    sends itself (dialplan Stasis() calls): `CallEngine(settings, sender=OutboxSender(outbox))`."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def send(
        self, url: str, method: str, fields: Mapping[str, str], *, call_id: str, auth_token: str | None = None
    ) -> None:
        # one AMD callback per call and URL: a stable key, so a repeated send is one delivery
        key = f"{call_id}-amd-{hashlib.sha1(f'{method} {url}'.encode()).hexdigest()[:10]}"
        if auth_token:
            full, form, headers = signed_form(auth_token, url, method, fields)
        elif method.upper() == "GET":
            full, form, headers = _with_query(url, fields), None, {}
        else:
            full, form, headers = url, dict(fields), {}
        headers["User-Agent"] = USER_AGENT
        await self.outbox.enqueue(full, method=method, form=form, headers=headers, key=key)

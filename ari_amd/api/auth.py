"""HTTP Basic (Twilio, Plivo) and Bearer (Telnyx) against the configured accounts."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from aiohttp import web

from ari_amd.api.errors import AUTH_FAILED, ApiError


def _fail(message: str = "authentication failed: check the account SID and auth token") -> ApiError:
    return ApiError(401, message, code=AUTH_FAILED)


def basic(request: web.Request, accounts: Mapping[str, str], path_account: str) -> str:
    """The account the request is authenticated as; it must be the one in the path."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise _fail("authentication required: HTTP Basic with the account SID and auth token")
    try:
        sid, sep, token = base64.b64decode(value.strip().encode("ascii"), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeError):  # not base64 (non-ASCII bytes among it), not UTF-8
        raise _fail() from None
    expected = accounts.get(sid)
    # compare_digest on a dummy too, so an unknown SID takes as long as a wrong token
    if not sep or not hmac.compare_digest((expected or "\0").encode(), token.encode()) or expected is None:
        raise _fail()
    if sid != path_account:
        raise _fail(f"the credentials are not those of account {path_account}")
    return sid


def bearer(request: web.Request, accounts: Mapping[str, str]) -> str:
    """Telnyx's `Authorization: Bearer KEY`: KEY is an account's auth token."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _fail("authentication required: Authorization: Bearer <API key>")
    # aiohttp hands undecodable header bytes over as surrogates: encode them back, never raise
    presented = key.strip().encode("utf-8", "surrogateescape")
    found = None
    for sid, token in accounts.items():
        if hmac.compare_digest(token.encode(), presented):
            found = sid
    if found is None:
        raise _fail("authentication failed: unknown API key")
    return found

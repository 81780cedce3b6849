"""Signing webhooks the way Twilio does, so that Twilio's own request validators accept ours.

X-Twilio-Signature = base64(HMAC-SHA1(auth_token, url + name1 + value1 + name2 + value2 ...)),
parameters sorted by name (and a repeated name's values sorted), form-encoded bodies only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence

Params = Mapping[str, "str | Sequence[str]"]


def twilio_signature(auth_token: str, url: str, params: Params) -> str:
    payload = url
    for name in sorted(params):
        value = params[name]
        values = [value] if isinstance(value, str) else list(value)
        for v in sorted(set(values)):
            payload += name + v
    digest = hmac.new(auth_token.encode(), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")

"""Reading request values the way the carriers do, with a 400 naming the parameter otherwise."""

from __future__ import annotations

import re
import urllib.parse

from ari_amd.api.errors import INVALID_TO, INVALID_URL, bad_param

_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
# One Asterisk dial string: no spaces, no '&' (several endpoints), no ',' / '(' (app arguments).
PJSIP = re.compile(r"^PJSIP/[A-Za-z0-9_.@:+*#=;/\-]{1,200}$")
SIP = re.compile(
    r"^sips?:(?:[A-Za-z0-9_.!~*'+\-%#]{1,64}@)?[A-Za-z0-9.\-]{1,253}(?::[0-9]{1,5})?(?:;[A-Za-z0-9_=.\-]{1,64})*$"
)
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def boolean(name: str, value: str | None, default: bool = False) -> bool:
    """True/False as the twilio library sends them, true/false as curl users type them."""
    if value is None or value == "":
        return default
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise bad_param(name, f"{name} must be true or false (got {value!r})")


def integer(
    name: str, value: str | int | None, lo: int | None = None, hi: int | None = None, unit: str = ""
) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise bad_param(name, f"{name} must be an integer (got {value!r})")
    try:
        n = int(str(value).strip())
    except ValueError:
        raise bad_param(name, f"{name} must be an integer (got {value!r})") from None
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        if lo is not None and hi is not None:
            span = f"{lo}-{hi}"
        else:
            span = f"at least {lo}" if lo is not None else f"at most {hi}"
        raise bad_param(name, f"{name} must be {span}{' ' + unit if unit else ''} (got {n})")
    return n


def url(name: str, value: str | None, *, required: bool = False) -> str | None:
    """An absolute http(s) URL."""
    if value is None or value.strip() == "":
        if required:
            raise bad_param(name, f"{name} is required", INVALID_URL)
        return None
    v = value.strip()
    try:
        p = urllib.parse.urlsplit(v)
        scheme, host = p.scheme, p.hostname
        p.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:  # "http://[::1", "http://h:99999"
        scheme, host = "", None
    if scheme not in ("http", "https") or not host or any(c.isspace() for c in v):
        raise bad_param(name, f"{name} must be an absolute http or https URL (got {value!r})", INVALID_URL)
    return v


def method(name: str, value: str | None, default: str = "POST") -> str:
    if value is None or value.strip() == "":
        return default
    v = value.strip().upper()
    if v not in ("GET", "POST"):
        raise bad_param(name, f"{name} must be GET or POST (got {value!r})")
    return v


def choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    for a in allowed:
        if value.strip().lower() == a.lower():
            return a
    raise bad_param(name, f"{name} must be one of {', '.join(allowed)} (got {value!r})")


def endpoint(to: str, template: str, sip_endpoint: str, *, name: str = "To") -> str:
    """A number through the configured template; an explicit PJSIP/... or sip: target as it is."""
    t = to.strip()
    if PJSIP.match(t):
        return t
    if t.lower().startswith(("sip:", "sips:")):
        if not SIP.match(t):
            raise bad_param(name, f"{name} is not a valid SIP URI (got {to!r})", INVALID_TO)
        return f"PJSIP/{sip_endpoint}/{t}"
    compact = re.sub(r"[\s().\-]", "", t)  # "+1 (555) 010-0000" as people write it
    if _NUMBER.match(compact):
        return template.format(number=compact)
    raise bad_param(name, f"{name} must be a phone number, a PJSIP/... endpoint or a sip: URI (got {to!r})", INVALID_TO)

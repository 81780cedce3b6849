"""Reading request bodies: a Content-Type we do not read is a 415, a body that does not parse a
400 naming the problem; never a 500. Too large stays aiohttp's 413 (client_max_size)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from ari_amd.api.errors import BAD_BODY, UNSUPPORTED_MEDIA_TYPE, ApiError

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"


def _has_body(request: web.Request) -> bool:
    return request.body_exists and request.content_length != 0


def _accept(request: web.Request, allowed: tuple[str, ...]) -> str | None:
    """The body's media type, one of `allowed`; None when there is no body."""
    if not _has_body(request):
        return None
    ctype = request.content_type  # aiohttp says application/octet-stream when none was sent
    if ctype not in allowed:
        got = request.headers.get("Content-Type") or "none"
        raise ApiError(
            415, f"Content-Type must be {' or '.join(allowed)} (got {got[:80]!r})", code=UNSUPPORTED_MEDIA_TYPE
        )
    return ctype


async def form(request: web.Request) -> MultiDictProxy[str]:
    """A form body (urlencoded or multipart), text fields only."""
    if _accept(request, (FORM, MULTIPART)) is None:
        return MultiDictProxy(MultiDict())
    try:
        data = await request.post()
    except web.HTTPException:
        raise  # 413
    except Exception as e:  # noqa: BLE001 - whatever a hostile body makes the parser raise is the client's error
        raise ApiError(400, f"the body is not a valid form ({type(e).__name__})", code=BAD_BODY) from None
    out: MultiDict[str] = MultiDict()
    for name, value in data.items():
        if not isinstance(value, str):
            raise ApiError(400, f"form field {name[:64]!r} must be text, not a file", code=BAD_BODY, param=name[:64])
        out.add(name, value)
    return MultiDictProxy(out)


async def json_object(request: web.Request) -> dict[str, Any]:
    """A JSON object body ({} when there is none)."""
    if _accept(request, (JSON,)) is None:
        return {}
    return await _parse_json(request)


async def _parse_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as e:  # RecursionError: [[[[... nested past the parser's depth
        detail = e.msg if isinstance(e, json.JSONDecodeError) else type(e).__name__
        raise ApiError(400, f"the body is not valid JSON ({detail})", code=BAD_BODY) from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object", code=BAD_BODY)
    return data


async def fields(request: web.Request) -> dict[str, Any]:
    """JSON (as the plivo SDK sends) or a form (as curl users send), by Content-Type."""
    ctype = _accept(request, (JSON, FORM, MULTIPART))
    if ctype is None:
        return {}
    if ctype == JSON:
        return await _parse_json(request)
    return dict((await form(request)).items())

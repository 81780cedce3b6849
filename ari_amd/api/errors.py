"""Errors the dialects answer with, each in its carrier's JSON shape.

Twilio's is {"code", "message", "more_info", "status"}: never add "type" and "title" to it, the
twilio library would then parse it as RFC 9457 and lose the message.
"""

from __future__ import annotations

import traceback
import uuid

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

# Twilio's error catalogue where one fits.
AUTH_FAILED = 20003
NOT_FOUND = 20404
METHOD_NOT_ALLOWED = 20004
INVALID_PARAMETER = 21200  # ours for "this value is out of range / malformed"; docs/API.md lists it
MISSING_TO = 21201
INVALID_URL = 21205
INVALID_TO = 21211
MISSING_FROM = 21213
NOT_IN_PROGRESS = 21220
TOO_LARGE = 21203  # ours: the body is larger than we accept
UNAVAILABLE = 20503
TOO_MANY_REQUESTS = 20429  # here: too many calls in flight for the account
BAD_BODY = 21204  # ours: the body does not parse (not JSON, not a form)
UNSUPPORTED_MEDIA_TYPE = 20415  # ours: a Content-Type this resource does not read
INTERNAL = 20500


def plain_traceback() -> str:
    """The exception being handled as plain text, logged as `exception=` instead of exc_info: a
    renderer given exc_info may print each frame's locals (structlog's default with rich does),
    and frames here hold auth tokens."""
    return traceback.format_exc()


class ApiError(Exception):
    """status: HTTP status; code: Twilio's error code; param: the offending parameter;
    retry_after: seconds, sent as Retry-After (a 429 or 503 the client may retry)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int = INVALID_PARAMETER,
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after


def bad_param(param: str, message: str, code: int = INVALID_PARAMETER) -> ApiError:
    return ApiError(400, message, code=code, param=param)


def twilio_body(err: ApiError) -> dict[str, object]:
    return {
        "code": err.code,
        "message": err.message,
        "more_info": f"https://www.twilio.com/docs/errors/{err.code}",
        "status": err.status,
    }


def plivo_body(err: ApiError) -> dict[str, object]:
    return {"api_id": str(uuid.uuid4()), "error": err.message}


def telnyx_body(err: ApiError) -> dict[str, object]:
    e: dict[str, object] = {"code": str(err.code), "title": _TITLES.get(err.status, "Error"), "detail": err.message}
    if err.param:
        e["source"] = {"pointer": "/" + err.param.replace(".", "/")}
    return {"errors": [e]}


_TITLES = {
    400: "Bad request",
    401: "Authentication failed",
    404: "Resource not found",
    405: "Method not allowed",
    413: "Request too large",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Internal error",
    422: "Invalid parameter",
    503: "Service unavailable",
}


def render(err: ApiError, path: str) -> web.Response:
    """The error in the shape of the dialect `path` belongs to."""
    headers = {"WWW-Authenticate": 'Basic realm="ari-amd"'} if err.status == 401 else {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    if path.startswith("/v1/"):
        body = plivo_body(err)
    elif path.startswith("/v2/"):
        body = telnyx_body(err)
    else:
        body = twilio_body(err)
    return web.json_response(body, status=err.status, headers=headers)


def from_http(exc: web.HTTPException) -> ApiError:
    """aiohttp's own refusals (no route, wrong method, body too large) as an ApiError."""
    if exc.status == 413:
        return ApiError(413, f"request body too large: {exc.text or 'over the limit'}", code=TOO_LARGE)
    if exc.status == 405:
        return ApiError(405, "method not allowed on this resource", code=METHOD_NOT_ALLOWED)
    if exc.status == 404:
        return ApiError(404, "the requested resource was not found", code=NOT_FOUND)
    return ApiError(exc.status, exc.reason or "error", code=exc.status)


@web.middleware
async def error_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except ApiError as err:
        return render(err, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = render(from_http(exc), request.path)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        # a bug of ours: logged with its traceback, answered in the dialect's shape all the same
        log.error("api_handler_failed", path=request.path, method=request.method, exception=plain_traceback())
        return render(ApiError(500, "internal error", code=INTERNAL), request.path)

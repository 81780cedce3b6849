"""/openapi.json: an OpenAPI 3.0 description of every dialect, built from the same tables the
validators use (ranges, enums), so the document cannot drift from what the server enforces."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ari_amd import __version__ as VERSION
from ari_amd.api import forms, plivo, telnyx
from ari_amd.api.twilio_calls import STATUS_EVENTS
from ari_amd.detect.params import RANGES, AmdParams
from ari_amd.detect.verdict import AnsweredBy

S = dict[str, Any]


def _str(desc: str, **kw: Any) -> S:
    return {"type": "string", "description": desc, **kw}


def _int(desc: str, lo: int | None = None, hi: int | None = None, default: int | None = None) -> S:
    s: S = {"type": "integer", "description": desc}
    if lo is not None:
        s["minimum"] = lo
    if hi is not None:
        s["maximum"] = hi
    if default is not None:
        s["default"] = default
    return s


_URL = {"type": "string", "format": "uri", "description": "absolute http(s) URL"}
_METHOD = {"type": "string", "enum": ["GET", "POST"], "default": "POST"}
_BOOL = {"type": "string", "enum": ["true", "false", "True", "False"], "default": "false"}
_ANSWERED_BY = {"type": "string", "enum": [a.value for a in AnsweredBy]}


def _twilio_amd() -> S:
    props: S = {
        "MachineDetection": {"type": "string", "enum": ["Enable", "DetectMessageEnd"]},
    }
    defaults = AmdParams()
    for field, (name, lo, hi, _) in RANGES.items():
        default = getattr(defaults, field)
        if field == "timeout_ms":
            props[name] = _int("seconds", lo // 1000, hi // 1000, default // 1000)
        else:
            props[name] = _int("milliseconds", lo, hi, default)
    return props


def _error(schema_ref: str, description: str) -> S:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


_WHEN = {
    400: "a parameter is missing or invalid (the message names it), or the body does not parse",
    401: "bad credentials, or not those of the path's account",
    404: "no such call",
    413: "body too large",
    415: "a Content-Type this resource does not read",
    422: "an invalid field (Telnyx's status for it; the pointer names it)",
    429: "the account has its limit of calls in flight",
    503: "Asterisk unreachable",
}


def _errors(schema: str, *codes: int) -> S:
    return {str(c): _error(f"#/components/schemas/{schema}", _WHEN[c]) for c in codes}


def _twilio_errors(*codes: int) -> S:
    return _errors("TwilioError", *codes)


# The validators' own expressions (forms.py), so the document says exactly what is accepted.
_SEP = r"[\s().\-]"
_TO = (
    r"^\s*(?:"
    + rf"{_SEP}*(?:\+{_SEP}*)?(?:[0-9*#]{_SEP}*){{1,32}}"
    + "|" + forms.PJSIP.pattern.strip("^$")
    + "|" + forms.SIP.pattern.strip("^$")
    + r")\s*$"
)
_FROM = r"^\s*[^\x00-\x1f\s](?:[^\x00-\x1f]{0,62}[^\x00-\x1f\s])?\s*$"  # Twilio's: 1-64 printable
_NONBLANK = r"\S"


def document() -> S:
    twilio_create: S = {
        "type": "object",
        "required": ["To", "From"],
        "properties": {
            "To": _str("E.164 number (through the endpoint template), PJSIP/... endpoint or sip: URI", pattern=_TO),
            "From": _str("caller ID: 1-64 printable characters", pattern=_FROM),
            "Url": _URL,
            "Method": _METHOD,
            "Twiml": _str("inline TwiML instead of Url"),
            "StatusCallback": _URL,
            "StatusCallbackEvent": {
                "type": "array",
                "items": {"type": "string", "enum": list(STATUS_EVENTS)},
                "description": "repeat the field (or space-separate); default completed",
            },
            "StatusCallbackMethod": _METHOD,
            "Timeout": _int("ring timeout, seconds", 1, 600, 60),
            **_twilio_amd(),
            "AsyncAmd": _BOOL,
            "AsyncAmdStatusCallback": _URL,
            "AsyncAmdStatusCallbackMethod": _METHOD,
        },
    }
    twilio_update: S = {
        "type": "object",
        "properties": {
            "Status": {"type": "string", "enum": ["completed", "canceled"]},
            "Url": _URL,
            "Method": _METHOD,
            "Twiml": _str("inline TwiML"),
        },
    }
    call_props = [
        "sid", "date_created", "date_updated", "parent_call_sid", "account_sid", "to", "to_formatted", "from",
        "from_formatted", "phone_number_sid", "status", "start_time", "end_time", "duration", "price", "price_unit",
        "direction", "answered_by", "api_version", "forwarded_from", "group_sid", "caller_name", "queue_time",
        "trunk_sid", "uri",
    ]  # fmt: skip
    twilio_call: S = {
        "type": "object",
        "properties": {
            **{p: {"type": "string", "nullable": True} for p in call_props},
            "sid": {"type": "string", "pattern": "^CA[0-9a-f]{32}$"},
            "answered_by": {**_ANSWERED_BY, "nullable": True},
            "date_created": {"type": "string", "description": "RFC 2822"},
            "subresource_uris": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    twilio_list: S = {
        "type": "object",
        "properties": {
            "calls": {"type": "array", "items": {"$ref": "#/components/schemas/TwilioCall"}},
            **{k: {"type": "integer"} for k in ("page", "page_size", "start", "end")},
            **{
                k: {"type": "string", "nullable": True}
                for k in ("uri", "first_page_uri", "next_page_uri", "previous_page_uri")
            },
        },
    }
    amd_callback: S = {
        "type": "object",
        "description": "form fields; signed with X-Twilio-Signature, with I-Twilio-Idempotency-Token",
        "properties": {
            "CallSid": {"type": "string"},
            "AccountSid": {"type": "string"},
            "AnsweredBy": _ANSWERED_BY,
            "MachineDetectionDuration": {"type": "string", "description": "ms"},
        },
    }
    plivo_props: S = {
        "from": _str("caller ID", pattern=_NONBLANK),
        "to": _str("one number, PJSIP/... endpoint or sip: URI", pattern=_TO),
        "answer_url": _URL,
        "answer_method": _METHOD,
        "ring_url": _URL,
        "ring_method": _METHOD,
        "hangup_url": _URL,
        "hangup_method": _METHOD,
        "ring_timeout": _int("seconds", 1, 600, 60),
        "machine_detection": {"type": "string", "enum": ["true", "hangup"]},
        "machine_detection_url": _URL,
        "machine_detection_method": _METHOD,
    }
    for name, (lo, hi, default, target) in plivo.TUNABLES.items():
        what = f"sets {target}" if target else "accepted, not used by this detector"
        plivo_props[name] = _int(f"ms; {what}", lo, hi, default)
    telnyx_config: S = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **{
                name: _int(f"ms, sets {field}", RANGES[field][1], RANGES[field][2])
                for name, field in telnyx.CONFIG_MAP.items()
            },
            **{name: _int("accepted, not used by this detector", 0) for name in telnyx.CONFIG_UNUSED},
        },
    }
    telnyx_dial: S = {
        "type": "object",
        "required": ["to", "from"],
        "properties": {
            "connection_id": {"type": "string"},
            "to": _str("one number, PJSIP/... endpoint or sip: URI", pattern=_TO),
            "from": _str("caller ID", minLength=1),
            "webhook_url": _URL,
            "webhook_url_method": _METHOD,
            "timeout_secs": _int("ring timeout", 1, 600, 30),
            "client_state": {"type": "string"},
            "command_id": {"type": "string"},
            "answering_machine_detection": {"type": "string", "enum": list(telnyx.AMD_MODES), "default": "disabled"},
            "answering_machine_detection_config": telnyx_config,
        },
    }
    telnyx_event: S = {
        "type": "object",
        "properties": {
            "data": {
                "type": "object",
                "properties": {
                    "event_type": {
                        "type": "string",
                        "enum": [
                            "call.initiated",
                            "call.answered",
                            "call.machine.detection.ended",
                            "call.machine.greeting.ended",
                            "call.hangup",
                        ],
                    },
                    "id": {"type": "string"},
                    "occurred_at": {"type": "string", "format": "date-time"},
                    "record_type": {"type": "string", "enum": ["event"]},
                    "payload": {
                        "type": "object",
                        "properties": {
                            "call_control_id": {"type": "string"},
                            "result": {
                                "type": "string",
                                "enum": ["human", "machine", "not_sure", "beep_detected", "ended"],
                            },
                            "hangup_cause": {"type": "string"},
                        },
                    },
                },
            }
        },
    }
    form = "application/x-www-form-urlencoded"
    twilio_sec: list[dict[str, list[str]]] = [{"basicAuth": []}]
    acct = {"name": "AccountSid", "in": "path", "required": True, "schema": {"type": "string"}}
    sid = {"name": "Sid", "in": "path", "required": True, "schema": {"type": "string"}}
    auth_id = {"name": "auth_id", "in": "path", "required": True, "schema": {"type": "string"}}
    call_uuid = {"name": "call_uuid", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
    tx_id = {"name": "call_control_id", "in": "path", "required": True, "schema": {"type": "string"}}

    def ref(name: str) -> S:
        return {"$ref": f"#/components/schemas/{name}"}

    def json_of(name: str) -> S:
        return {"application/json": {"schema": ref(name)}}

    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ari-amd",
            "version": VERSION,
            "description": (
                "Answering-machine detection on Asterisk with the carriers' APIs: Twilio, Plivo/Vobiz, Telnyx."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": {
            "/2010-04-01/Accounts/{AccountSid}/Calls.json": {
                "parameters": [acct],
                "post": {
                    "summary": "Twilio: create a call",
                    "operationId": "twilioCreateCall",
                    "security": twilio_sec,
                    "requestBody": {"required": True, "content": {form: {"schema": ref("TwilioCreateCall")}}},
                    "responses": {
                        "201": {"description": "created", "content": json_of("TwilioCall")},
                        **_twilio_errors(400, 401, 413, 415, 429, 503),
                    },
                    "callbacks": {
                        "asyncAmd": {
                            "{$request.body#/AsyncAmdStatusCallback}": {
                                "post": {
                                    "requestBody": {"content": {form: {"schema": ref("TwilioAmdCallback")}}},
                                    "responses": {"200": {"description": "received"}},
                                }
                            }
                        }
                    },
                },
                "get": {
                    "summary": "Twilio: list calls",
                    "operationId": "twilioListCalls",
                    "security": twilio_sec,
                    "parameters": [
                        {"name": "PageSize", "in": "query", "schema": _int("", 1, 1000, 50)},
                        {"name": "Page", "in": "query", "schema": _int("", 0, None, 0)},
                        {"name": "Status", "in": "query", "schema": {"type": "string"}},
                        {"name": "To", "in": "query", "schema": {"type": "string"}},
                        {"name": "From", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {"description": "a page", "content": json_of("TwilioCallList")},
                        **_twilio_errors(400, 401),
                    },
                },
            },
            "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json": {
                "parameters": [acct, sid],
                "get": {
                    "summary": "Twilio: fetch a call",
                    "operationId": "twilioFetchCall",
                    "security": twilio_sec,
                    "responses": {
                        "200": {"description": "the call", "content": json_of("TwilioCall")},
                        **_twilio_errors(401, 404),
                    },
                },
                "post": {
                    "summary": "Twilio: hang up (Status=completed) or redirect (Url/Twiml)",
                    "operationId": "twilioUpdateCall",
                    "security": twilio_sec,
                    "requestBody": {"required": True, "content": {form: {"schema": ref("TwilioUpdateCall")}}},
                    "responses": {
                        "200": {"description": "the call", "content": json_of("TwilioCall")},
                        **_twilio_errors(400, 401, 404, 413, 415),
                    },
                },
            },
            "/v1/Account/{auth_id}/Call/": {
                "parameters": [auth_id],
                "post": {
                    "summary": "Plivo/Vobiz: make a call",
                    "operationId": "plivoMakeCall",
                    "security": twilio_sec,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": ref("PlivoMakeCall")},
                            form: {"schema": ref("PlivoMakeCall")},
                        },
                    },
                    "responses": {
                        "201": {"description": "call fired", "content": json_of("PlivoCallFired")},
                        **_errors("PlivoError", 400, 401, 413, 415, 429, 503),
                    },
                },
            },
            "/v1/Account/{auth_id}/Call/{call_uuid}/": {
                "parameters": [auth_id, call_uuid],
                "get": {
                    "summary": "Plivo: a call's details",
                    "operationId": "plivoGetCall",
                    "security": twilio_sec,
                    "responses": {"200": {"description": "the call"}, **_errors("PlivoError", 401, 404)},
                },
                "delete": {
                    "summary": "Plivo: hang up",
                    "operationId": "plivoHangup",
                    "security": twilio_sec,
                    "responses": {"204": {"description": "hung up"}, **_errors("PlivoError", 401, 404)},
                },
            },
            "/v2/calls": {
                "post": {
                    "summary": "Telnyx: dial",
                    "operationId": "telnyxDial",
                    "security": [{"bearerAuth": []}],
                    "requestBody": {"required": True, "content": json_of("TelnyxDial")},
                    "responses": {
                        "200": {"description": "the call"},
                        **_errors("TelnyxErrors", 400, 401, 413, 415, 422, 429, 503),
                    },
                    "callbacks": {
                        "events": {
                            "{$request.body#/webhook_url}": {
                                "post": {
                                    "requestBody": {"content": json_of("TelnyxEvent")},
                                    "responses": {"200": {"description": "received"}},
                                }
                            }
                        }
                    },
                }
            },
            "/v2/calls/{call_control_id}": {
                "parameters": [tx_id],
                "get": {
                    "summary": "Telnyx: retrieve a call's status",
                    "operationId": "telnyxRetrieveCall",
                    "security": [{"bearerAuth": []}],
                    "responses": {"200": {"description": "the call"}, **_errors("TelnyxErrors", 401, 404)},
                },
            },
            "/v2/calls/{call_control_id}/actions/hangup": {
                "parameters": [tx_id],
                "post": {
                    "summary": "Telnyx: hang up",
                    "operationId": "telnyxHangup",
                    "security": [{"bearerAuth": []}],
                    "responses": {"200": {"description": "ok"}, **_errors("TelnyxErrors", 401, 404)},
                },
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "operationId": "openapi",
                    "responses": {"200": {"description": "OpenAPI 3"}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic", "description": "AccountSid (auth_id) : AuthToken"},
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "an account's AuthToken"},
            },
            "schemas": {
                "TwilioCreateCall": twilio_create,
                "TwilioUpdateCall": twilio_update,
                "TwilioCall": twilio_call,
                "TwilioCallList": twilio_list,
                "TwilioAmdCallback": amd_callback,
                "TwilioError": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "integer"},
                        "message": {"type": "string"},
                        "more_info": {"type": "string"},
                        "status": {"type": "integer"},
                    },
                },
                "PlivoMakeCall": {
                    "type": "object", "required": ["from", "to", "answer_url"], "properties": plivo_props
                },
                "PlivoCallFired": {
                    "type": "object",
                    "properties": {k: {"type": "string"} for k in ("api_id", "message", "request_uuid")},
                },
                "PlivoError": {
                    "type": "object", "properties": {"api_id": {"type": "string"}, "error": {"type": "string"}}
                },
                "TelnyxDial": telnyx_dial,
                "TelnyxEvent": telnyx_event,
                "TelnyxErrors": {
                    "type": "object",
                    "properties": {
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "code": {"type": "string"},
                                    "title": {"type": "string"},
                                    "detail": {"type": "string"},
                                    "source": {"type": "object", "properties": {"pointer": {"type": "string"}}},
                                },
                            },
                        }
                    },
                },
            },
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document())


def routes() -> list[web.RouteDef]:
    return [web.get("/openapi.json", openapi_json, allow_head=False)]

"""/openapi.json: a valid OpenAPI 3 document that covers every route and the enforced ranges."""

from __future__ import annotations

import re

import aiohttp
from openapi_spec_validator import validate

from ari_amd.api import plivo, telnyx
from ari_amd.detect.params import RANGES
from tests.test_api_fakes import Api, api  # noqa: F401


async def fetch(api: Api) -> dict:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as s, s.get(api.base + "/openapi.json") as r:
        assert r.status == 200
        return await r.json()


async def test_the_document_is_valid_openapi_3(api: Api) -> None:
    doc = await fetch(api)
    validate(doc)
    assert doc["openapi"].startswith("3.")


async def test_every_route_of_the_app_is_described(api: Api) -> None:
    from ari_amd.api import openapi, twilio

    doc = openapi.document()
    described = {
        (re.sub(r"\{[^}]+\}", "{}", path), method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if method != "parameters"
    }
    served = {
        (re.sub(r"\{[^}]+\}", "{}", r.path), r.method)
        for r in twilio.routes() + plivo.routes() + telnyx.routes() + openapi.routes()
    }
    assert served == described


async def test_the_ranges_are_the_enforced_ones(api: Api) -> None:
    schemas = (await fetch(api))["components"]["schemas"]
    twilio = schemas["TwilioCreateCall"]["properties"]
    for field, (name, lo, hi, _) in RANGES.items():
        scale = 1000 if field == "timeout_ms" else 1
        assert (twilio[name]["minimum"], twilio[name]["maximum"]) == (lo // scale, hi // scale)
    assert twilio["MachineDetection"]["enum"] == ["Enable", "DetectMessageEnd"]
    p = schemas["PlivoMakeCall"]["properties"]
    assert (p["machine_detection_time"]["minimum"], p["machine_detection_time"]["maximum"]) == (2000, 10000)
    t = schemas["TelnyxDial"]["properties"]
    assert set(t["answering_machine_detection"]["enum"]) == set(telnyx.AMD_MODES)
    assert set(t["answering_machine_detection_config"]["properties"]) == set(telnyx.CONFIG_MAP) | set(telnyx.CONFIG_UNUSED)
    assert set(plivo.TUNABLES) <= set(p)

"""`ari-amd call`: one call placed and followed to its verdict, as a JSON-able record."""

from __future__ import annotations

import contextlib
from typing import Any

from ari_amd.calls.config import Settings
from ari_amd.calls.engine import CallEngine
from ari_amd.calls.model import AfterDetection, Call, CallRequest, PlaceError
from ari_amd.detect import AmdParams

VERDICT_MARGIN_S = 15.0  # beyond MachineDetectionTimeout, how long to wait for the verdict
END_WAIT_S = 10.0


def call_record(call: Call) -> dict[str, Any]:
    v = call.verdict
    return {
        "call_id": call.id,
        "endpoint": call.request.endpoint,
        "status": call.status.value,
        "answered_by": v.answered_by.value if v is not None else None,
        "duration_ms": v.duration_ms if v is not None else None,
        "cause": v.cause if v is not None else None,
        "rule": v.rule.value if v is not None else None,
        "verdicts": [x.as_dict() | {"segments": None} for x in call.verdicts],
        "hangup_cause": call.hangup_cause,
        "error": call.error,
    }


async def place_one(
    settings: Settings,
    app: str,
    endpoint: str,
    params: AmdParams,
    async_amd: bool = False,
    callback: str | None = None,
    ring_timeout_s: int = 30,
    caller_id: str | None = None,
) -> dict[str, Any]:
    """Place the call, wait for its final verdict (and the callback's delivery), hang up."""
    meta = {"amd_callback": callback} if callback else {}
    # Async from the CLI: nothing else will drive the channel, so it is held (not hung up at
    # answer) while the verdict travels to the callback; then the call is hung up.
    after = AfterDetection.HOLD if async_amd else AfterDetection.HANGUP
    request = CallRequest(endpoint, params, async_amd, after, caller_id=caller_id, ring_timeout_s=ring_timeout_s,
                          meta=meta)
    engine = CallEngine(settings, app=app)
    try:
        await engine.start()
        call = await engine.place(request)
    except PlaceError as e:  # ARI not there, or the endpoint refused
        await engine.close()
        return {"call_id": request.call_id, "endpoint": endpoint, "status": "failed", "answered_by": None,
                "error": str(e)}
    try:
        await call.wait_verdict(ring_timeout_s + params.timeout_ms / 1000 + VERDICT_MARGIN_S)
        await call.drain()  # the callback is sent by a listener: let it finish
        await engine.hangup(call)
        with contextlib.suppress(TimeoutError):
            await call.wait_ended(END_WAIT_S)
        return call_record(call)
    finally:
        await engine.close()

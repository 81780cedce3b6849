"""CallDriver: each step once and in order, including what the call did before it listened."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from ari_amd.api.context import ApiContext
from ari_amd.api.driver import CallDriver
from ari_amd.api.settings import ApiSettings
from ari_amd.calls.model import Call, CallEventKind, CallRequest, CallStatus
from ari_amd.calls.outbox import Outbox
from ari_amd.calls.webhooks import Webhooks
from ari_amd.detect import AmdParams, Verdict
from tests.test_api_fakes import FakeEngine, verdict


class Recorder(CallDriver):
    def __init__(self, ctx: ApiContext, call: Call) -> None:
        super().__init__(ctx, call)
        self.steps: list[str] = []

    async def on_initiated(self, at: datetime) -> None:
        self.steps.append("initiated")

    async def on_ringing(self, at: datetime) -> None:
        self.steps.append("ringing")

    async def on_answered(self, at: datetime) -> None:
        self.steps.append("answered")

    async def on_verdict(self, v: Verdict, at: datetime) -> None:
        self.steps.append(f"verdict:{v.answered_by.value}")

    async def on_completed(self, status: CallStatus, at: datetime) -> None:
        self.steps.append(f"completed:{status.value}")


def context(tmp_path: Path) -> ApiContext:
    outbox = Outbox(tmp_path / "o.db")
    return ApiContext(FakeEngine(), ApiSettings(), outbox, Webhooks(outbox))  # type: ignore[arg-type]


async def test_steps_taken_before_listening_are_caught_up_and_late_ones_ignored(tmp_path: Path) -> None:
    call = Call(CallRequest("PJSIP/1@x", amd=AmdParams()))
    call._set_status(CallStatus.INITIATED)
    call._emit(CallEventKind.INITIATED)  # nobody listens yet: lost, as from a real engine's place()
    call.answered_at = datetime.now(UTC)
    call._set_status(CallStatus.IN_PROGRESS)
    interim = verdict("machine_start", 2400, final=False)
    call._add_verdict(interim)
    d = Recorder(context(tmp_path), call)
    d.attach()
    call._set_status(CallStatus.RINGING)
    call._emit(CallEventKind.RINGING)  # reordered: after answer, it must not be reported
    call._emit(CallEventKind.VERDICT, verdict=interim)  # seen already in the catch-up
    final = verdict("machine_end_beep", 6000)
    call._add_verdict(final)
    call._emit(CallEventKind.VERDICT, verdict=final)
    call._end(CallStatus.COMPLETED)
    call._emit(CallEventKind.COMPLETED)
    call._emit(CallEventKind.ANSWERED)  # after the end: ignored
    await call.drain()
    await asyncio.sleep(0.01)
    assert d.steps == [
        "initiated",
        "answered",
        "verdict:machine_start",
        "verdict:machine_end_beep",
        "completed:completed",
    ]
    assert call.id not in d.ctx.drivers  # forgotten once completed
    await d.ctx.outbox.close()


async def test_a_call_that_ended_before_listening_is_reported_whole(tmp_path: Path) -> None:
    call = Call(CallRequest("PJSIP/1@x"))
    call._set_status(CallStatus.RINGING)
    call._end(CallStatus.NO_ANSWER)
    d = Recorder(context(tmp_path), call)
    d.attach()
    await asyncio.sleep(0.01)
    assert d.steps == ["initiated", "completed:no-answer"]  # whether it rang is not known any more
    await d.ctx.outbox.close()

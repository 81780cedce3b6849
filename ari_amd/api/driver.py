"""Following one call for a dialect: each lifecycle step handled once and in order, including the
steps the call took before we could listen (place() returns after the call was initiated)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ari_amd.api.context import ApiContext
from ari_amd.api.errors import plain_traceback
from ari_amd.calls.model import Call, CallEvent, CallEventKind, CallStatus
from ari_amd.detect import Verdict

_ORDER = {
    CallEventKind.INITIATED: 0,
    CallEventKind.RINGING: 1,
    CallEventKind.ANSWERED: 2,
    CallEventKind.COMPLETED: 3,
}


@dataclass(frozen=True, slots=True)
class _Past:
    status: CallStatus
    answered_at: datetime | None
    verdicts: tuple[Verdict, ...]
    ended: bool
    ended_at: datetime | None


class CallDriver:
    """Subclasses implement the on_* steps; `at` is when the step happened."""

    def __init__(self, ctx: ApiContext, call: Call) -> None:
        self.ctx = ctx
        self.call = call
        self.log = call.log.bind(dialect=type(self).__name__)
        self._done: set[CallEventKind] = set()
        self._verdicts_seen: set[int] = set()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unlisten: Callable[[], None] = lambda: None

    def attach(self) -> None:
        self.ctx.drivers[self.call.id] = self
        c = self.call
        # What the call did before we listened, as it stood now: later events come by listen()
        past = _Past(c.status, c.answered_at, tuple(c.verdicts), c.ended, c.ended_at)
        self._unlisten = c.listen(self._on_event)
        self.spawn(self._catch_up(past))  # created before any later event's delivery: it runs first

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _catch_up(self, past: _Past) -> None:
        created = self.call.created_at
        async with self._lock:
            if past.status is not CallStatus.QUEUED:
                await self._step(CallEventKind.INITIATED, CallStatus.INITIATED, created)
            if past.status is CallStatus.RINGING:
                await self._step(CallEventKind.RINGING, CallStatus.RINGING, created)
            if past.answered_at is not None:
                await self._step(CallEventKind.ANSWERED, CallStatus.IN_PROGRESS, past.answered_at)
            for v in past.verdicts:
                await self._verdict(v, past.answered_at or created)
            if past.ended:
                await self._step(CallEventKind.COMPLETED, past.status, past.ended_at or datetime.now(UTC))

    async def _on_event(self, ev: CallEvent) -> None:
        async with self._lock:
            if ev.kind is CallEventKind.VERDICT and ev.verdict is not None:
                await self._verdict(ev.verdict, ev.at)
            elif ev.kind is not CallEventKind.AMD:
                await self._step(ev.kind, ev.status, ev.at)

    async def _verdict(self, v: Verdict, at: datetime) -> None:
        if id(v) in self._verdicts_seen:
            return
        self._verdicts_seen.add(id(v))
        await self.on_verdict(v, at)

    async def _step(self, kind: CallEventKind, status: CallStatus, at: datetime) -> None:
        if kind in self._done or any(_ORDER[d] >= _ORDER[kind] for d in self._done):
            return  # once each, and never behind a later step (ringing after answered)
        self._done.add(kind)
        try:
            if kind is CallEventKind.INITIATED:
                await self.on_initiated(at)
            elif kind is CallEventKind.RINGING:
                await self.on_ringing(at)
            elif kind is CallEventKind.ANSWERED:
                await self.on_answered(at)
            elif kind is CallEventKind.COMPLETED:
                await self._complete(status, at)
        except Exception:
            self.log.error("driver_step_failed", step=kind.value, exception=plain_traceback())

    async def _complete(self, status: CallStatus, at: datetime) -> None:
        self._unlisten()
        for t in list(self._tasks):
            if t is not asyncio.current_task():
                t.cancel()
        await self.on_completed(self.call.status if self.call.status.final else status, at)
        self.ctx.drivers.pop(self.call.id, None)

    # -- for the dialects ----------------------------------------------------------------------
    async def on_initiated(self, at: datetime) -> None: ...
    async def on_ringing(self, at: datetime) -> None: ...
    async def on_answered(self, at: datetime) -> None: ...
    async def on_verdict(self, verdict: Verdict, at: datetime) -> None: ...
    async def on_completed(self, status: CallStatus, at: datetime) -> None: ...

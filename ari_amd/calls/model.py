"""What a call is to the layers above the engine: the request, its status, the events it emits.

The engine (ari_amd.calls.engine) turns a CallRequest into a Call and drives it; the HTTP
dialects (ari_amd.api) and the CLI read a Call's state and listen to its CallEvents. Nothing
here talks to Asterisk.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

import structlog

from ari_amd.detect import AmdEvent, AmdParams, Verdict

log = structlog.get_logger(__name__)


class CallStatus(str, Enum):
    """Twilio's call statuses; the last five are final."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, CallStatus.CANCELED}
)


class AfterDetection(str, Enum):
    """What the engine does with the callee's channel once detection no longer holds it
    (sync: at the verdict; async: at once).

    HANGUP: hang up (the CLI's one-off calls). CONTINUE: leave Stasis for the dialplan
    (CallRequest.dialplan, or the next priority for a channel that came from Stasis()).
    HOLD: keep it in the Stasis application; the layer above drives it (TwiML) and hangs up.
    """

    HANGUP = "hangup"
    CONTINUE = "continue"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class DialplanTarget:
    context: str
    extension: str = "s"
    priority: int = 1


def new_call_id() -> str:
    """Twilio's CallSid shape: "CA" and 32 hex digits (also a valid ARI channel id)."""
    return "CA" + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class CallRequest:
    """One outbound call to place (or one channel handed to us by the dialplan).

    amd None: no detection (the call is placed and followed, nothing else).
    async_amd False (sync): the channel waits in Stasis until the final verdict, gets
    AMDSTATUS/AMDCAUSE/ANSWEREDBY/AMDDURATION, then `after` happens. True: `after` happens
    at answer while detection goes on; the verdict reaches listeners (and callbacks) later.
    """

    endpoint: str
    amd: AmdParams | None = None
    async_amd: bool = False
    after: AfterDetection = AfterDetection.HANGUP
    dialplan: DialplanTarget | None = None  # for CONTINUE; None: the channel's next priority
    caller_id: str | None = None
    ring_timeout_s: int = 60
    variables: Mapping[str, str] = field(default_factory=dict)
    call_id: str = field(default_factory=new_call_id)
    # Free-form context of whoever placed it (dialect, account, callback URLs): the engine
    # carries it and never reads it.
    meta: Mapping[str, Any] = field(default_factory=dict)


class CallEventKind(str, Enum):
    INITIATED = "initiated"  # the originate was accepted by Asterisk
    RINGING = "ringing"
    ANSWERED = "answered"
    AMD = "amd"  # a detector event (speech start/end, beep start/end, fax tone, interim verdict)
    VERDICT = "verdict"  # a verdict: interim machine_start in DetectMessageEnd, then the final one
    COMPLETED = "completed"  # final status reached; the call's resources are freed


@dataclass(frozen=True, slots=True)
class CallEvent:
    kind: CallEventKind
    call: Call
    status: CallStatus
    verdict: Verdict | None = None
    amd_event: AmdEvent | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


Listener = Callable[[CallEvent], Awaitable[None] | None]


class Call:
    """A call's state as the engine keeps it. Read it freely; only the engine mutates it."""

    def __init__(self, request: CallRequest, *, inbound: bool = False) -> None:
        self.request = request
        self.id = request.call_id
        self.inbound = inbound  # handed over by the dialplan's Stasis() rather than originated
        self.channel_id = request.call_id  # originated with channelId = call id
        self.status = CallStatus.QUEUED
        self.created_at = datetime.now(UTC)
        self.answered_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.verdicts: list[Verdict] = []
        self.hangup_cause: int | None = None  # Q.850 cause of the callee's channel
        self.hangup_cause_txt = ""
        self.error: str | None = None  # why the call failed, in words
        self.from_number = request.caller_id or ""
        self._listeners: list[Listener] = []
        self._verdict = asyncio.Event()
        self._ended = asyncio.Event()
        self._queue: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._delivery: asyncio.Future[None] | None = None
        self.log = log.bind(call_id=self.id)

    def __repr__(self) -> str:
        return f"Call({self.id}, {self.request.endpoint!r}, {self.status.value}, {self.answered_by})"

    # -- reading -------------------------------------------------------------------------------
    @property
    def verdict(self) -> Verdict | None:
        """The final verdict, once known."""
        return self.verdicts[-1] if self.verdicts and self.verdicts[-1].final else None

    @property
    def answered_by(self) -> str | None:
        """Twilio's AnsweredBy as it stands (an interim machine_start included)."""
        return self.verdicts[-1].answered_by.value if self.verdicts else None

    @property
    def duration_s(self) -> int | None:
        """Seconds from answer to end, once ended (Twilio's Duration)."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return int((self.ended_at - self.answered_at).total_seconds())

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def wait_verdict(self, timeout: float | None = None) -> Verdict | None:
        """The final verdict; None if the call ended without detection (not answered, no AMD)."""
        waiter = asyncio.ensure_future(self._verdict.wait())
        ender = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({waiter, ender}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            ender.cancel()
        return self.verdict

    async def wait_ended(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._ended.wait(), timeout)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every CallEvent from now on, in order, in a task of the call's
        own (an async listener is awaited before the next event: slow ones delay only this call's
        listeners, never the engine)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # -- for the engine ------------------------------------------------------------------------
    def _emit(
        self, kind: CallEventKind, verdict: Verdict | None = None, amd_event: AmdEvent | None = None
    ) -> CallEvent:
        ev = CallEvent(kind, self, self.status, verdict, amd_event)
        if self._listeners:
            self._queue.put_nowait(ev)
            if self._delivery is None or self._delivery.done():
                self._delivery = asyncio.ensure_future(self._deliver())
        return ev

    async def _deliver(self) -> None:
        while not self._queue.empty():
            ev = self._queue.get_nowait()
            for listener in list(self._listeners):
                try:
                    result = listener(ev)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    self.log.exception("call_listener_failed", call_event=ev.kind.value)

    async def drain(self) -> None:
        """Until every event emitted so far has been through the listeners."""
        while self._delivery is not None and not self._delivery.done():
            await asyncio.shield(self._delivery)

    def _set_status(self, status: CallStatus) -> None:
        self.status = status

    def _add_verdict(self, v: Verdict) -> None:
        self.verdicts.append(v)
        if v.final:
            self._verdict.set()

    def _end(self, status: CallStatus) -> None:
        if self._ended.is_set():
            return
        if not self.status.final:
            self.status = status
        self.ended_at = datetime.now(UTC)
        self._ended.set()


class PlaceError(Exception):
    """A call could not be placed: `reason` in words (bad endpoint, Asterisk unreachable...)."""

    def __init__(self, reason: str, *, status: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status  # Asterisk's HTTP status when it refused (400 bad endpoint), else 0


class Engine(Protocol):
    """What the dialects and the CLI need from the call engine (ari_amd.calls.engine.CallEngine).

    Control methods act on the callee's channel while the engine HOLDs it in Stasis; on a call
    that already ended they return at once and do nothing.
    """

    app: str

    async def place(self, request: CallRequest) -> Call:
        """Originate; returns at once with the Call (status initiated). Raises PlaceError."""
        ...

    def get(self, call_id: str) -> Call | None: ...

    def recent(self) -> list[Call]:
        """Calls in flight and recently ended, newest first."""
        ...

    async def hangup(self, call: Call) -> None: ...

    async def play(self, call: Call, media: str) -> None:
        """Play an Asterisk media URI ("sound:hello-world", "tone:ring") and return when it has
        finished (or the call ended)."""
        ...

    async def continue_in_dialplan(self, call: Call, target: DialplanTarget | None = None) -> None: ...

    async def dial(self, call: Call, endpoint: str, timeout_s: int = 30) -> str:
        """Call `endpoint` and bridge it with the call; returns Twilio's DialCallStatus
        (completed, busy, no-answer, failed) once the dialled leg has ended."""
        ...

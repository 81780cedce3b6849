"""One call's life, from its creation (or the dialplan's Stasis()) to its last resource freed.

    channels/create -> StasisStart -> MediaTap (snoop + externalMedia) -> dial -> Ringing
      -> Up (Asterisk's stamp: t0 of detection) -> DetectionSession.start (media/detection.py:
         the audio held since answer, then the detector, batched), verdicts as they come
      -> sync: variables, then continue / hang up / hold   |   async: that at answer, verdict later
      -> tap torn down -> ChannelDestroyed -> completed

A CallController owns its call's channel events (one queue, Asterisk's order) and is the only
writer of its Call. Every path out of detection (verdict, hangup, media gone, Asterisk gone,
shutdown) goes through the end of `_detect`, and every path out of `run` through the detection
session's and the tap's close. The call's audio (holding, the feed routes, recording) is the
DetectionSession's; the controller starts it at answer, takes its events, and closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from ari_amd.ari import (
    AriClient,
    AriError,
    ChannelDestroyed,
    ChannelEvents,
    ChannelStateChange,
    Dial,
    Event,
    EventStream,
    StasisEnd,
    StasisStart,
)
from ari_amd.calls.model import AfterDetection, Call, CallEventKind, CallStatus, DialplanTarget
from ari_amd.calls.tap import MediaTap, TapError
from ari_amd.calls.variables import channel_variables
from ari_amd.detect import AmdEvent, EventKind
from ari_amd.media import PortPool
from ari_amd.media.batch import FrameBatch
from ari_amd.media.detection import DetectionSession
from ari_amd.media.hub import RtpHub
from ari_amd.metrics import Metrics, record_receiver_stats, record_verdict

GUARD_TICK_S = 0.25  # how often the wall-clock guard looks at a call under detection
WALL_MARGIN_S = 5.0  # past MachineDetectionTimeout on the wall clock, the audio is not coming
LOST_GRACE_S = 2.0  # after an unexpected StasisEnd, how long a hangup's ChannelDestroyed may take

DIAL_STATUS = {
    "BUSY": CallStatus.BUSY,
    "NOANSWER": CallStatus.NO_ANSWER,
    "CANCEL": CallStatus.CANCELED,
    "CHANUNAVAIL": CallStatus.FAILED,
    "CONGESTION": CallStatus.FAILED,
}
# Q.850 causes of a channel that never answered: 17 user busy, 21 call rejected,
# 18 no user responding, 19 no answer. The values are also Twilio's DialCallStatus words.
CAUSE_STATUS = {17: CallStatus.BUSY, 21: CallStatus.BUSY, 18: CallStatus.NO_ANSWER, 19: CallStatus.NO_ANSWER}

MAX_EVENT_AGE_S = 5.0  # an older (or future) timestamp means clocks differ: trust our own

log = structlog.get_logger(__name__)


def _futures(*futures: asyncio.Future[Any]) -> set[asyncio.Future[Any]]:
    return set(futures)


def event_age_s(timestamp: str) -> float:
    """How long ago Asterisk stamped an event ("2026-12-01T07:10:14.123+0000"); 0 if unknown."""
    try:
        stamped = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return 0.0
    age = (datetime.now(UTC) - stamped).total_seconds()
    return age if 0.0 <= age <= MAX_EVENT_AGE_S else 0.0


@dataclass(frozen=True)
class CallContext:
    """What every controller shares: the engine's connections and settings."""

    ari: AriClient
    events: EventStream
    pool: PortPool
    media_format: str
    media_timeout_s: float
    record_dir: str = ""
    metrics: Metrics | None = None
    batch: FrameBatch | None = None  # None: each call's detector is fed per packet
    hub: RtpHub | None = None  # the shared RTP socket; None: a port of `pool` per call


class CallController:
    def __init__(self, ctx: CallContext, call: Call, events: ChannelEvents) -> None:
        self.ctx = ctx
        self.call = call
        self.events = events
        self.tap: MediaTap | None = None
        self.detection: DetectionSession | None = None  # the call's audio, tap to detector
        self._detection_over = asyncio.Event()
        self._left_stasis = False  # we sent it to the dialplan: its StasisEnd is not a hangup
        self._lost = False  # it left Stasis without us: hung up, or taken elsewhere
        self._gone = False  # the callee's channel no longer exists
        self._wake = asyncio.Event()  # abort() or channel_vanished() want the run loop's attention
        self._pending: asyncio.Future[Event | None] | None = None
        self._stream_ended = False
        self._tap_error: str | None = None
        self._answered_mono: float | None = None
        self._abort_cause: str | None = None
        self._log = call.log

    # -- entry points ------------------------------------------------------------------------
    async def run(self) -> None:
        """Follow the call until its channel is gone. Never raises (but CancelledError)."""
        try:
            amd = self.call.request.amd is not None
            if not self.call.inbound:
                # Created in the app, tapped, then dialled: the tap hears the callee from the
                # first frame after answer (a snoop made at answer would miss the first ~100 ms).
                if not await self._until_in_app():
                    return
                if amd:
                    await self._open_tap()
                if not await self._dial() or not await self._until_answered():
                    return
            else:
                await self._answered(self.call.request.meta.get("stasis_timestamp", ""))
                if amd:
                    await self._open_tap()
            if amd:
                await self._detect()
            elif self.call.request.after is not AfterDetection.HOLD:
                await self._after_detection()
            await self._until_gone()
        except Exception as e:  # a bug must not leave the call hanging in Stasis
            self._log.exception("call_failed", error=repr(e))
            self.call.error = self.call.error or f"internal error: {e!r}"
            if not self._gone:
                with contextlib.suppress(AriError):
                    await self.ctx.ari.hangup(self.call.channel_id)
        finally:
            if self.detection is not None:
                self.detection.close()  # (tapped but never answered: it leaves the batch all the same)
            if self.tap is not None:
                await self.tap.close()
            self.events.release()
            self._complete(self.call.status if self.call.status.final else self._final_status())

    def abort(self, cause: str) -> None:
        """End detection now with `unknown` (shutdown, Asterisk lost); the call goes on to
        its delivery and teardown as after any verdict."""
        self._abort_cause = self._abort_cause or cause
        self._detection_over.set()
        self._wake.set()

    def channel_vanished(self, cause: str) -> None:
        """The callee's channel is gone and its ChannelDestroyed was lost (ARI reconnect)."""
        self.call.hangup_cause_txt = cause
        self._gone = True
        self.abort(cause)

    def _pending_get(self) -> asyncio.Future[Event | None]:
        """The one outstanding read of the channel's queue (kept across waits: nothing is lost)."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(self.events.get())
        return self._pending

    async def _next_event(self, timeout: float | None = None) -> Event | None:
        """The channel's next event; None on timeout, when woken, or when the stream ended."""
        pending = self._pending_get()
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait(_futures(pending, waker), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
        self._wake.clear()
        if not pending.done():
            return None
        ev = pending.result()
        self._pending = None
        if ev is None:  # the event stream closed (shutdown): nothing more will come
            self._stream_ended = True
        return ev

    # -- phases ------------------------------------------------------------------------------
    async def _until_in_app(self) -> bool:
        """Until the created channel's StasisStart (True), or its end (False)."""
        while self._abort_cause is None:
            ev = await self._next_event()
            if isinstance(ev, StasisStart):
                return True
            if isinstance(ev, ChannelDestroyed):
                self._destroyed(ev)
                return False
            if ev is None and self._stream_ended:
                break
        if not self._gone:  # aborted (shutdown) before it was dialled: it must not stay behind
            with contextlib.suppress(AriError):
                await self.ctx.ari.hangup(self.call.channel_id)
            self.call._set_status(CallStatus.CANCELED)
        return False

    async def _dial(self) -> bool:
        try:
            await self.ctx.ari.dial(self.call.channel_id, timeout=self.call.request.ring_timeout_s)
        except AriError as e:
            self.call.error = f"dial {self.call.request.endpoint}: {e.message or e}"
            self._log.warning("dial_failed", error=self.call.error)
            self.call._set_status(CallStatus.FAILED)
            with contextlib.suppress(AriError):
                await self.ctx.ari.hangup(self.call.channel_id)
            return False
        return True

    async def _until_answered(self) -> bool:
        """Until the dialled channel is Up (True) or its end before answer (False)."""
        while self._abort_cause is None:
            ev = await self._next_event()
            if ev is None:
                if self._stream_ended:
                    break
                continue
            if isinstance(ev, ChannelStateChange) and ev.state == "Up":
                await self._answered(ev.timestamp)
                return True
            if isinstance(ev, Dial) and ev.dialstatus:
                if ev.dialstatus == "RINGING" and self.call.status is CallStatus.INITIATED:
                    self._ringing()
                elif ev.dialstatus in DIAL_STATUS:
                    # Not answered: the channel stays in the app until we hang it up.
                    self.call._set_status(DIAL_STATUS[ev.dialstatus])
                    with contextlib.suppress(AriError):
                        await self.ctx.ari.hangup(self.call.channel_id)
            elif isinstance(ev, ChannelStateChange) and ev.state == "Ringing":
                if self.call.status is CallStatus.INITIATED:
                    self._ringing()
            elif isinstance(ev, ChannelDestroyed):
                self._destroyed(ev)
                return False
        if not self._gone:  # aborted while ringing (shutdown): hang up, do not wait for an answer
            with contextlib.suppress(AriError):
                await self.ctx.ari.hangup(self.call.channel_id)
            self.call._set_status(CallStatus.CANCELED)
        return False

    def _ringing(self) -> None:
        self.call._set_status(CallStatus.RINGING)
        self.call._emit(CallEventKind.RINGING)

    async def _answered(self, timestamp: str) -> None:
        # t0 of detection is when Asterisk said so, not when we got round to it: under load the
        # StasisStart can wait in our queue, and durations must still count from the answer.
        lag = event_age_s(timestamp)
        self._answered_mono = time.monotonic() - lag
        self.call.answered_at = datetime.now(UTC) - timedelta(seconds=lag)
        self.call._set_status(CallStatus.IN_PROGRESS)
        self._log.info("call_answered", channel_id=self.call.channel_id, event_age_ms=round(lag * 1000))
        self.call._emit(CallEventKind.ANSWERED)

    async def _open_tap(self) -> None:
        assert self.call.request.amd is not None
        self.tap = MediaTap(
            self.ctx.ari, self.ctx.events, self.ctx.pool, self.call.id, self.call.channel_id, self.ctx.media_format,
            hub=self.ctx.hub,
        )
        # Before the tap opens: its first packets can arrive before open() returns (held until answer).
        self.detection = DetectionSession(
            self.call.request.amd, self.ctx.media_format, self._on_amd_event, batch=self.ctx.batch,
            record=bool(self.ctx.record_dir), logger=self._log,
        )
        try:
            await self.tap.open(self.detection.on_audio, self.detection.on_g711)
        except (TapError, AriError) as e:
            self._log.error("tap_failed", error=str(e))
            self._tap_error = f"tap_failed: {e}"

    async def _detect(self) -> None:
        request = self.call.request
        assert request.amd is not None and self.tap is not None and self.detection is not None
        if self._tap_error is not None:
            self.abort(self._tap_error)  # an answered call we cannot hear: `unknown`, then delivery
        assert self._answered_mono is not None
        self.detection.start(self._answered_mono, self.tap.snooped_at, self.tap.receiver)
        if request.async_amd and self._abort_cause is None:
            await self._after_detection()
        await self._watch_detection()
        self.detection.finish("hangup" if (self._gone or self._lost) else (self._abort_cause or "no_media"))
        await self.tap.close()
        if self.ctx.metrics is not None and self.tap.receiver is not None:
            record_receiver_stats(self.ctx.metrics, self.tap.receiver.stats)
        if self.detection.recording is not None:
            path = Path(self.ctx.record_dir) / f"{self.call.id}.wav"
            await asyncio.to_thread(self.detection.write_recording, path)
        verdict = self.call.verdict
        if verdict is not None:
            self._log.info("verdict", answered_by=verdict.answered_by.value, duration_ms=verdict.duration_ms,
                           cause=verdict.cause)
        if not (self._gone or self._lost) and verdict is not None:
            with contextlib.suppress(AriError):
                for name, value in channel_variables(verdict).items():
                    await self.ctx.ari.set_variable(self.call.channel_id, name, value)
        if not request.async_amd:
            await self._after_detection()

    async def _watch_detection(self) -> None:
        """Until the final verdict, the callee's hangup, or a wall-clock guard trips."""
        params = self.call.request.amd
        assert params is not None
        started = time.monotonic()
        while not self._detection_over.is_set() and not (self._gone or self._lost):
            over = asyncio.ensure_future(self._detection_over.wait())
            pending = self._pending_get()
            await asyncio.wait(_futures(pending, over), timeout=GUARD_TICK_S, return_when=asyncio.FIRST_COMPLETED)
            over.cancel()
            if pending.done():
                ev = pending.result()
                self._pending = None
                if ev is None:
                    self._stream_ended = True
                    self.abort("ari_events_closed")
                self._channel_event(ev)
            now = time.monotonic()
            receiver = self.tap.receiver if self.tap is not None else None
            last = (receiver.last_packet_at if receiver is not None else None) or started
            if now - last > self.ctx.media_timeout_s:
                self._log.warning("media_timeout", silent_s=round(now - last, 1))
                self.abort("no_media")
            elif now - started > params.timeout_ms / 1000 + WALL_MARGIN_S:
                self.abort("wall_clock_timeout")

    def _channel_event(self, ev: Event | None) -> None:
        if isinstance(ev, StasisEnd) and not self._left_stasis:
            # Hung up (ChannelDestroyed follows), or taken out of Stasis by someone else: either
            # way detection has lost its channel.
            self._lost = True
        elif isinstance(ev, ChannelDestroyed):
            self._destroyed(ev)

    async def _after_detection(self) -> None:
        request = self.call.request
        if self._gone or self._lost:
            return
        try:
            if request.after is AfterDetection.HANGUP:
                await self.ctx.ari.hangup(self.call.channel_id)
            elif request.after is AfterDetection.CONTINUE:
                await self.continue_in_dialplan(request.dialplan)
        except AriError as e:
            self._log.warning("after_detection_failed", after=request.after.value, error=str(e))

    async def continue_in_dialplan(self, target: DialplanTarget | None) -> None:
        """Out of Stasis to `target` (None: the next priority). Raises AriError."""
        # After /continue, Asterisk tells the app nothing more about the channel unless it
        # subscribed: we still want its ChannelDestroyed (and to set variables, async).
        await self.ctx.ari.subscribe(self.ctx.events.app, f"channel:{self.call.channel_id}")
        self._left_stasis = True
        if target is None:
            await self.ctx.ari.continue_in_dialplan(self.call.channel_id)
        else:
            await self.ctx.ari.continue_in_dialplan(self.call.channel_id, target.context, target.extension,
                                                    target.priority)

    async def _until_gone(self) -> None:
        """Follow the channel to its ChannelDestroyed (its status and duration need it)."""
        while not self._gone:
            if self._lost:
                # Out of Stasis without us: ChannelDestroyed comes at once if it was a hangup.
                ev = await self._next_event(LOST_GRACE_S)
                if ev is None and not self._gone:
                    if await self.ctx.ari.get_channel(self.call.channel_id) is None:
                        self._gone = True
                    else:
                        self._log.info("call_left_stasis", channel_id=self.call.channel_id)
                    return
            else:
                ev = await self._next_event()
                if ev is None and (self._stream_ended or self._abort_cause is not None):
                    return  # shutting down: stop following
            self._channel_event(ev)

    # -- detection's events ---------------------------------------------------------------------
    def _on_amd_event(self, ev: AmdEvent) -> None:
        if ev.kind is EventKind.VERDICT and ev.verdict is not None:
            self.call._add_verdict(ev.verdict)
            self.call._emit(CallEventKind.VERDICT, verdict=ev.verdict, amd_event=ev)
            if ev.verdict.final:
                self._detection_over.set()
                if self.ctx.metrics is not None and self.call.request.amd is not None:
                    record_verdict(self.ctx.metrics, ev.verdict.answered_by, self.call.request.amd.mode,
                                   ev.verdict.duration_ms)
        else:
            self.call._emit(CallEventKind.AMD, amd_event=ev)

    # -- the end -----------------------------------------------------------------------------
    def _destroyed(self, ev: ChannelDestroyed) -> None:
        self._gone = True
        self.call.hangup_cause = ev.cause
        self.call.hangup_cause_txt = ev.cause_txt
        if self.call.answered_at is None and not self.call.status.final:
            status = CAUSE_STATUS.get(ev.cause or 0, CallStatus.FAILED)
            if self._abort_cause is not None:
                status = CallStatus.CANCELED
            self.call._set_status(status)

    def _final_status(self) -> CallStatus:
        return CallStatus.COMPLETED if self.call.answered_at is not None else CallStatus.FAILED

    def _complete(self, status: CallStatus) -> None:
        if self.call.ended:
            return
        self.call._end(status)
        self._log.info("call_completed", status=self.call.status.value, cause=self.call.hangup_cause,
                       answered_by=self.call.answered_by)
        self.call._emit(CallEventKind.COMPLETED)

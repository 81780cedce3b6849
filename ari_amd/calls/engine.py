"""The call engine: one ARI connection, the RTP port pool, and a CallController per call.

Two doors lead in. `place()` originates a call into our Stasis application (the dialects and
`ari-amd call` use it). A channel the dialplan hands over with `Stasis(<app>,options)` arrives
as a StasisStart nobody claimed: it becomes an inbound Call, detected with the options its
dialplan gave (ari_amd.calls.stasis_args) and sent back to its next priority with app_amd's
variables, the AMD() drop-in.

After every (re)connect the engine reconciles with Asterisk: calls whose channel vanished while
the websocket was down are resolved, and snoop/externalMedia channels and bridges of ours that
no live call owns (a crash, a kill -9) are swept.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

import structlog

from ari_amd.ari import AriClient, AriError, Channel, ChannelDestroyed, ChannelEvents, EventStream, StasisStart, naming
from ari_amd.calls.callbacks import DirectSender, Sender, amd_callback_listener
from ari_amd.calls.config import Settings
from ari_amd.calls.controller import CAUSE_STATUS, CallContext, CallController
from ari_amd.calls.model import (
    AfterDetection,
    Call,
    CallEventKind,
    CallRequest,
    CallStatus,
    DialplanTarget,
    PlaceError,
    new_call_id,
)
from ari_amd.calls.stasis_args import parse_stasis_args
from ari_amd.calls.tap import TAP_ARG
from ari_amd.calls.urlpolicy import UrlPolicy
from ari_amd.detect import ParameterError
from ari_amd.media import PortPool
from ari_amd.media.batch import FrameBatch
from ari_amd.media.hub import RtpHub
from ari_amd.metrics import Metrics, create_metrics, record_tick

CALL_ARG = "ari-amd-call"  # appArgs of channels we originate
READY_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 5.0
HISTORY = 1000  # ended calls kept for GET /Calls
PLAYBACK_POLL_S = 0.1
STRANDED_GRACE_S = 2.0

log = structlog.get_logger(__name__)


def stasis_app(channel: Channel) -> tuple[str, str]:
    """(application, its arguments) of a channel in Stasis(), from its dialplan app_data."""
    dialplan = channel.raw.get("dialplan")
    app_data = str(dialplan.get("app_data", "")) if isinstance(dialplan, dict) else ""
    app, _, args = app_data.partition(",")
    return app, args


class CallEngine:
    """Use as `async with CallEngine(settings) as engine: call = await engine.place(request)`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        app: str | None = None,
        sender: Sender | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.app = app or self.settings.ari_app
        s = self.settings
        self.ari = AriClient(s.ari_url, s.ari_user, s.ari_password)
        self.events = EventStream(self.ari, self.app, on_connected=self._on_connected)
        self.pool = PortPool(s.rtp_port_first, s.rtp_port_last, s.rtp_host, s.rtp_advertise_host or None)
        self.sender: Sender = sender or DirectSender(
            UrlPolicy(s.callbacks_allow, s.callbacks_deny), s.callbacks_timeout_s
        )
        self.metrics = metrics or create_metrics()
        self.batch = FrameBatch(on_tick=lambda *tick: record_tick(self.metrics, *tick))
        self._batch_task: asyncio.Task[None] | None = None
        self.hub: RtpHub | None = None  # the shared RTP socket (rtp.socket = "shared"), bound by start()
        self.ctx = CallContext(self.ari, self.events, self.pool, s.rtp_format, s.detection_media_timeout_s,
                               s.detection_record_dir, self.metrics, self.batch)
        # Called with each inbound (dialplan) Call as it arrives, before detection starts.
        self.on_inbound: list[Callable[[Call], None]] = []
        self._controllers: dict[str, CallController] = {}  # by the callee's channel id
        self._placing: set[str] = set()  # channel ids being created, not yet under a controller
        self._calls: OrderedDict[str, Call] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._closing = False
        self._log = log.bind(app=self.app)
        self.metrics.calls_in_flight.set_function(lambda: len(self._controllers))

    # -- lifecycle -----------------------------------------------------------------------------
    def open_media(self) -> None:
        """Bind the shared RTP socket (rtp.socket = "shared"; start() does it too). Raises
        PortPoolExhausted when no port of the range is free, OSError when the host cannot be bound."""
        s = self.settings
        if s.rtp_socket == "shared" and self.hub is None:
            self.hub = RtpHub.open_range(s.rtp_host, s.rtp_port_first, s.rtp_port_last, s.rtp_advertise_host or None,
                                   self.batch, self._rtp_dropped)
            self.ctx = replace(self.ctx, hub=self.hub)

    def _rtp_dropped(self, reason: str, count: int) -> None:
        self.metrics.rtp_packets_dropped.labels(reason).inc(count)

    async def start(self, ready_timeout: float = READY_TIMEOUT_S) -> None:
        self.open_media()
        if self._batch_task is None:
            self._batch_task = asyncio.create_task(self.batch.run(), name="detector-batch")
        self._unsubscribe = self.events.subscribe(self._on_stasis_start, types={"StasisStart"})
        await self.events.start()
        try:
            await self.events.wait_ready(ready_timeout)
        except TimeoutError:
            raise PlaceError(f"ARI at {self.settings.ari_url} not ready within {ready_timeout} s: "
                             f"{self.events.last_error or 'no answer'}") from None

    async def close(self) -> None:
        """Resolve every call in flight (`unknown`, cause shutdown), free its resources, disconnect."""
        self._closing = True
        for ctl in list(self._controllers.values()):
            ctl.abort("shutdown")
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=SHUTDOWN_GRACE_S)
        for t in list(self._tasks):
            t.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._batch_task is not None:
            self._batch_task.cancel()
            await asyncio.wait({self._batch_task})
        if self.hub is not None:
            self.hub.close()
        await self.events.close()
        await self.ari.close()

    async def __aenter__(self) -> CallEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self.events.connected

    @property
    def in_flight(self) -> int:
        return len(self._controllers)

    # -- the Engine protocol -------------------------------------------------------------------
    async def place(self, request: CallRequest) -> Call:
        if self._closing:
            raise PlaceError("shutting down")
        call = Call(request)
        if call.id in self._calls or call.channel_id in self._controllers:
            raise PlaceError(f"call id {call.id} is in use")
        events = self.events.claim(call.channel_id)
        self._placing.add(call.channel_id)  # its StasisStart can beat create's response
        variables = dict(request.variables)
        if request.caller_id:
            variables["CALLERID(all)"] = request.caller_id
        try:
            # Created in the app first, dialled by the controller once its tap is in place.
            await self.ari.create_channel(
                request.endpoint, self.app, CALL_ARG, channel_id=call.channel_id, variables=variables or None
            )
        except AriError as e:
            self._placing.discard(call.channel_id)
            events.release()
            call.error = f"originate {request.endpoint}: {e.message or e}"
            self._log.warning("originate_failed", call_id=call.id, endpoint=request.endpoint, error=call.error)
            raise PlaceError(call.error, status=e.status) from e
        self._placing.discard(call.channel_id)
        call._set_status(CallStatus.INITIATED)
        call.log.info("call_initiated", endpoint=request.endpoint, amd=request.amd is not None,
                      async_amd=request.async_amd)
        self._start(call, events)
        call._emit(CallEventKind.INITIATED)
        return call

    def get(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    def recent(self) -> list[Call]:
        return list(reversed(self._calls.values()))

    async def hangup(self, call: Call) -> None:
        if not call.ended:
            with contextlib.suppress(AriError):
                await self.ari.hangup(call.channel_id)

    async def play(self, call: Call, media: str) -> None:
        if call.ended:
            return
        playback_id = f"{call.id}-play-{secrets.token_hex(4)}"
        try:
            await self.ari.play(call.channel_id, media, playback_id=playback_id)
            while not call.ended and await self.ari.get_playback(playback_id) is not None:
                await asyncio.sleep(PLAYBACK_POLL_S)
        except AriError as e:
            call.log.warning("play_failed", media=media, error=str(e))

    async def continue_in_dialplan(self, call: Call, target: DialplanTarget | None = None) -> None:
        ctl = self._controllers.get(call.channel_id)
        if call.ended or ctl is None:
            return
        try:
            await ctl.continue_in_dialplan(target)
        except AriError as e:
            call.log.warning("continue_failed", error=str(e))

    async def dial(self, call: Call, endpoint: str, timeout_s: int = 30) -> str:
        """Bridge the call with a new leg to `endpoint`; Twilio's DialCallStatus when it ends."""
        if call.ended:
            return "failed"
        leg_id = new_call_id()
        bridge_id = f"{naming.PREFIX}-dial-{leg_id}"
        leg_events = self.events.claim(leg_id)
        status = "failed"
        try:
            await self.ari.originate(endpoint, app=self.app, app_args=TAP_ARG, channel_id=leg_id, timeout=timeout_s)
            async for ev in leg_events:
                if isinstance(ev, StasisStart):
                    await self.ari.create_bridge("mixing", bridge_id=bridge_id, name=self.app)
                    await self.ari.add_to_bridge(bridge_id, [call.channel_id, leg_id])
                    status = "completed"
                elif isinstance(ev, ChannelDestroyed):
                    if status != "completed":
                        status = CAUSE_STATUS.get(ev.cause or 0, CallStatus.FAILED).value
                    break
                if call.ended:
                    break
        except AriError as e:
            call.log.warning("dial_failed", endpoint=endpoint, error=str(e))
        finally:
            leg_events.release()
            with contextlib.suppress(AriError):
                await self.ari.hangup(leg_id)
            with contextlib.suppress(AriError):
                await self.ari.destroy_bridge(bridge_id)
        return status

    # -- internals -----------------------------------------------------------------------------
    def _start(self, call: Call, events: ChannelEvents) -> None:
        ctl = CallController(self.ctx, call, events)
        self._controllers[call.channel_id] = ctl
        self._calls[call.id] = call
        while len(self._calls) > HISTORY:
            oldest = next(iter(self._calls))
            if not self._calls[oldest].ended:
                break
            del self._calls[oldest]
        meta = call.request.meta
        if meta.get("amd_callback"):
            call.listen(amd_callback_listener(
                self.sender, str(meta["amd_callback"]), str(meta.get("amd_callback_method", "POST")),
                str(meta.get("account_sid", self.settings.callbacks_account_sid)),
                meta.get("auth_token") and str(meta["auth_token"]),
            ))
        task = asyncio.create_task(self._run(ctl), name=f"call-{call.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, ctl: CallController) -> None:
        try:
            await ctl.run()
        finally:
            self._controllers.pop(ctl.call.channel_id, None)

    async def _on_stasis_start(self, ev: object) -> None:
        if not isinstance(ev, StasisStart) or self._closing:
            return
        channel = ev.channel
        if channel.id in self._controllers or channel.id in self._placing or naming.owner_of(channel.id):
            return  # ours: an originated call (its controller has the event) or a tap channel
        if ev.args[:1] == (TAP_ARG,):
            return  # a dialled leg of ours
        if ev.args[:1] == (CALL_ARG,):
            # Originated by an earlier run of ours that is gone: nobody is waiting for it.
            self._log.warning("orphan_call_hung_up", channel_id=channel.id)
            with contextlib.suppress(AriError):
                await self.ari.hangup(channel.id)
            return
        await self._adopt(ev)

    async def _adopt(self, ev: StasisStart) -> None:
        """A channel from the dialplan's Stasis(): the AMD() drop-in."""
        channel = ev.channel
        events = self.events.claim(channel.id)  # with what came since its StasisStart
        try:
            options = parse_stasis_args(ev.args)
        except ParameterError as e:
            events.release()
            self._log.error("stasis_args_invalid", channel_id=channel.id, args=list(ev.args), error=str(e))
            with contextlib.suppress(AriError):
                for name, value in {"AMDSTATUS": "NOTSURE", "AMDCAUSE": f"BADARGS-{e.name}",
                                    "ANSWEREDBY": "unknown", "AMDDURATION": "0", "AMDERROR": str(e)}.items():
                    await self.ari.set_variable(channel.id, name, value)
                await self.ari.continue_in_dialplan(channel.id)
            return
        meta: dict[str, object] = {"source": "dialplan", "account_sid": self.settings.callbacks_account_sid,
                                   "stasis_timestamp": ev.timestamp}
        if options.callback_url:
            meta["amd_callback"] = options.callback_url
            meta["amd_callback_method"] = options.callback_method
        request = CallRequest(
            endpoint=channel.name,
            amd=options.params,
            async_amd=options.async_amd,
            after=AfterDetection.CONTINUE,
            caller_id=channel.caller_number or None,
            meta=meta,
        )
        call = Call(request, inbound=True)
        call.channel_id = channel.id
        if channel.state != "Up":
            with contextlib.suppress(AriError):
                await self.ari.answer(channel.id)
        call.log.info("call_adopted", channel_id=channel.id, channel=channel.name, args=list(ev.args))
        for hook in self.on_inbound:
            hook(call)
        self._start(call, events)

    def _orphan(self, channel: Channel, live: set[str]) -> bool:
        """A channel in our application that no call of this process owns: a tap, a dialled leg
        or an originated callee left by an earlier run (a crash, a kill -9)."""
        app, arg = stasis_app(channel)
        if app != self.app or channel.id in self._controllers or channel.id in self._placing:
            return False
        owner = naming.owner_of(channel.id)
        if owner is not None:
            return owner[1] not in live
        return arg in (CALL_ARG, TAP_ARG)

    def _stranded(self, channel: Channel) -> bool:
        """A channel the dialplan handed to our application that nobody here follows: its
        detection died with an earlier run, and its dialplan waits in Stasis() for ever."""
        app, arg = stasis_app(channel)
        return (
            app == self.app
            and channel.id not in self._controllers
            and channel.id not in self._placing
            and naming.owner_of(channel.id) is None
            and arg.split(",", 1)[0] not in (CALL_ARG, TAP_ARG)
        )

    async def _release_stranded(self, channel: Channel) -> int:
        """Back to its dialplan, NOTSURE: what it said while nobody listened is lost."""
        self._log.warning("stranded_channel_released", channel_id=channel.id, channel=channel.name)
        try:
            for name, value in {"AMDSTATUS": "NOTSURE", "AMDCAUSE": "RESTART", "ANSWEREDBY": "unknown",
                                "AMDDURATION": "0"}.items():
                await self.ari.set_variable(channel.id, name, value)
            await self.ari.continue_in_dialplan(channel.id)
        except AriError as e:
            self._log.warning("stranded_channel_release_failed", channel_id=channel.id, error=str(e))
            return 0
        return 1

    async def _on_connected(self, reconnected: bool) -> None:
        """Reconcile with Asterisk: resolve calls whose channel vanished, sweep our orphans."""
        try:
            channels = await self.ari.list_channels()
            bridges = await self.ari.list_bridges()
        except AriError as e:
            self._log.warning("reconcile_failed", error=str(e))
            return
        present = {c.id for c in channels}
        if reconnected:
            self.metrics.ari_reconnects.inc()
            for cid, ctl in list(self._controllers.items()):
                if cid not in present:
                    ctl.channel_vanished("channel gone while ARI was disconnected")
        live = {ctl.call.id for ctl in self._controllers.values()}
        swept = 0
        stranded = []
        for c in channels:
            if self._orphan(c, live):
                with contextlib.suppress(AriError):
                    await self.ari.hangup(c.id)
                    swept += 1
            elif self._stranded(c):
                stranded.append(c)
        released = 0
        if stranded:
            # A StasisStart that came with this connection may still be on its way to _adopt.
            await asyncio.sleep(STRANDED_GRACE_S)
            for c in stranded:
                if self._stranded(c) and not self._closing:
                    released += await self._release_stranded(c)
        for b in bridges:
            owner = naming.owner_of(b.id)
            if owner is not None and owner[1] not in live and b.name == self.app:
                with contextlib.suppress(AriError):
                    await self.ari.destroy_bridge(b.id)
                    swept += 1
        if swept or released or reconnected:
            self._log.info("reconciled", reconnected=reconnected, swept=swept, released=released,
                           in_flight=len(self._controllers))

"""ARI's event half: one websocket, kept up with backoff, events routed to per-channel queues.

The read loop only parses and enqueues; it never awaits anyone's handler. Each channel a call
claims gets its own queue (events in Asterisk's order, consumed by that call's own task), and
each app-wide subscriber gets its own queue and task, so one slow call stalls nobody else.

When the socket closes (network, Asterisk restart) the stream reconnects with exponential
backoff and jitter, capped at RECONNECT_MAX_S. Events in the gap are lost (Asterisk does not
replay them) and channels stay in Stasis: `on_connected(reconnected=True)` is where the layer
above lists channels and sweeps its own (see ari_amd.ari.naming).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

import aiohttp
import structlog

from ari_amd.ari.client import AriClient
from ari_amd.ari.errors import AriError
from ari_amd.ari.events import ApplicationRegistered, ApplicationReplaced, Event, UnknownEvent, parse_message

RECONNECT_INITIAL_S = 0.25
RECONNECT_MAX_S = 5.0
# A connection that lived this long resets the backoff; one that Asterisk drops at once does not,
# so a server that accepts and closes cannot put us in a tight loop.
STABLE_AFTER_S = 10.0
HEARTBEAT_S = 10.0  # websocket ping: finds a peer that vanished without closing TCP
# The app is registered just after the handshake, not before it: wait (briefly) until
# GET /applications/NAME knows it, so an originate right after `ready` cannot miss it.
REGISTER_CONFIRM_S = 2.0
REGISTER_POLL_S = 0.02
CLOSE_TIMEOUT_S = 2.0
# Events for channels nobody has claimed yet are kept (bounded) so a call that claims its channel
# after StasisStart reached a subscriber still sees everything from the start.
MAX_UNCLAIMED_CHANNELS = 512
MAX_BACKLOG_PER_CHANNEL = 32

Handler = Callable[[Event], Awaitable[None] | None]
ConnectedHook = Callable[[bool], Awaitable[None] | None]  # argument: this is a reconnect
DisconnectedHook = Callable[[str], Awaitable[None] | None]  # argument: why

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class StreamStats:
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    events: int = 0
    unknown_events: int = 0
    unreadable_events: int = 0  # not JSON, or a known type with a body we could not read
    handler_errors: int = 0
    backlog_evictions: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ChannelEvents:
    """One channel's events, in order. `async for event in events:` ends when released or closed."""

    def __init__(self, stream: EventStream, channel_id: str) -> None:
        self.channel_id = channel_id
        self._stream = stream
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._ended = False

    def qsize(self) -> int:
        return self._queue.qsize()

    async def get(self) -> Event | None:
        """The next event; None once the stream closed or this channel was released."""
        if self._ended and self._queue.empty():
            return None
        ev = await self._queue.get()
        if ev is None:
            self._ended = True
        return ev

    def __aiter__(self) -> ChannelEvents:
        return self

    async def __anext__(self) -> Event:
        ev = await self.get()
        if ev is None:
            raise StopAsyncIteration
        return ev

    def release(self) -> None:
        """Stop routing this channel's events here (idempotent)."""
        self._stream._release(self)

    def _put(self, ev: Event | None) -> None:
        self._queue.put_nowait(ev)


class _Subscriber:
    def __init__(self, handler: Handler, types: Collection[str] | None) -> None:
        self.handler = handler
        self.types = frozenset(types) if types is not None else None
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None


class EventStream:
    """The events websocket of one ARI application, with reconnect."""

    def __init__(
        self,
        client: AriClient,
        app: str,
        *,
        subscribe_all: bool = False,
        on_connected: ConnectedHook | None = None,
        on_disconnected: DisconnectedHook | None = None,
        reconnect_initial: float = RECONNECT_INITIAL_S,
        reconnect_max: float = RECONNECT_MAX_S,
        heartbeat: float = HEARTBEAT_S,
    ) -> None:
        self.client = client
        self.app = app
        self.subscribe_all = subscribe_all
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.heartbeat = heartbeat
        self.stats = StreamStats()
        self.last_error = ""
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._closed = False
        self._replaced = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._generation = 0
        self._registered = asyncio.Event()  # ApplicationRegistered seen on this connection
        self._tasks: set[asyncio.Task[None]] = set()
        self._claimed: dict[str, ChannelEvents] = {}
        self._backlog: OrderedDict[str, deque[Event]] = OrderedDict()
        self._subscribers: list[_Subscriber] = []
        self._log = log.bind(app=app)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Begin connecting (in the background); await `wait_ready` to know it is up."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ari-events-{self.app}")

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Until connected and the application is registered; TimeoutError after `timeout`."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    @property
    def ready(self) -> asyncio.Event:
        """Set while connected with the application registered; cleared on disconnect."""
        return self._ready

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    @property
    def closed(self) -> bool:
        """close() was called: no event will come any more."""
        return self._closed

    @property
    def replaced(self) -> bool:
        """Another websocket took our application name; this stream stopped for good."""
        return self._replaced

    async def close(self) -> None:
        """Close the websocket cleanly, stop reconnecting, end every queue. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            # A clean close frame: Asterisk has been seen to wedge new handshakes after many
            # clients vanished without one.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT_S)
        if self._task is not None:
            # asyncio.wait, not wait_for: it never raises, so a cancel of close() itself still
            # propagates instead of being taken for the task's.
            done, _ = await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT_S)
            if not done:
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT_S)
            elif not self._task.cancelled() and self._task.exception() is not None:
                self._log.error("ari_events_task_failed", error=repr(self._task.exception()))
        self._ready.clear()
        for sub in self._subscribers:
            sub.queue.put_nowait(None)
        pending = [s.task for s in self._subscribers if s.task is not None] + list(self._tasks)
        for t in self._tasks:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)
        for ch in list(self._claimed.values()):
            ch._put(None)
        self._claimed.clear()
        self._backlog.clear()
        self._log.info("ari_events_closed", **self.stats.as_dict())

    async def __aenter__(self) -> EventStream:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def force_reconnect(self) -> bool:
        """Cut the socket as a network failure would (no close handshake); the stream reconnects.

        For tests, and for a layer above that has reason to think the connection is stale.
        """
        ws = self._ws
        if ws is None or ws.closed:
            return False
        sock = ws.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
                return True
        # aiohttp drops the response's connection after the upgrade; the websocket keeps it.
        transport = getattr(getattr(ws, "_conn", None), "transport", None)
        if isinstance(transport, asyncio.Transport):
            transport.abort()
            return True
        return False

    # -- routing -------------------------------------------------------------------------------
    def claim(self, channel_id: str) -> ChannelEvents:
        """This channel's events from now on, preceded by any that came before the claim.

        Claim before originating with your own channel_id, or on the StasisStart a subscriber saw.
        """
        if channel_id in self._claimed:
            raise RuntimeError(f"channel {channel_id} is already claimed")
        ch = ChannelEvents(self, channel_id)
        if self._closed:
            ch._put(None)
            return ch
        for ev in self._backlog.pop(channel_id, ()):
            ch._put(ev)
        self._claimed[channel_id] = ch
        return ch

    def _release(self, ch: ChannelEvents) -> None:
        if self._claimed.get(ch.channel_id) is ch:
            del self._claimed[ch.channel_id]
            ch._put(None)

    def subscribe(self, handler: Handler, types: Collection[str] | None = None) -> Callable[[], None]:
        """Call handler (sync or async) with every event (or those of `types`), in order, in its
        own task. Returns a function that unsubscribes."""
        sub = _Subscriber(handler, types)
        sub.task = asyncio.create_task(self._serve(sub), name=f"ari-subscriber-{getattr(handler, '__name__', '')}")
        self._subscribers.append(sub)

        def unsubscribe() -> None:
            if sub in self._subscribers:
                self._subscribers.remove(sub)
                sub.queue.put_nowait(None)

        return unsubscribe

    def _dispatch(self, ev: Event) -> None:
        for cid in dict.fromkeys(ev.channel_ids):  # Dial can name one channel twice
            ch = self._claimed.get(cid)
            if ch is not None:
                ch._put(ev)
                continue
            backlog = self._backlog.get(cid)
            if backlog is None:
                if len(self._backlog) >= MAX_UNCLAIMED_CHANNELS:
                    self._backlog.popitem(last=False)
                    self.stats.backlog_evictions += 1
                backlog = self._backlog[cid] = deque(maxlen=MAX_BACKLOG_PER_CHANNEL)
            else:
                self._backlog.move_to_end(cid)
            backlog.append(ev)
        for sub in self._subscribers:
            if sub.types is None or ev.type in sub.types:
                sub.queue.put_nowait(ev)

    async def _serve(self, sub: _Subscriber) -> None:
        while True:
            ev = await sub.queue.get()
            if ev is None:
                return
            try:
                result = sub.handler(ev)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.stats.handler_errors += 1
                self._log.exception("ari_event_handler_failed", event_type=ev.type)

    # -- the connection ------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = self.reconnect_initial
        ever_connected = False
        while not self._closing.is_set():
            ws = await self._connect()
            if ws is not None and self._closing.is_set():  # close() came during the handshake
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT_S)
                break
            if ws is None:
                await self._pause(backoff)
                backoff = min(backoff * 2, self.reconnect_max)
                continue
            connected_at = time.monotonic()
            self.stats.connects += 1
            if ever_connected:
                self.stats.reconnects += 1
            self._generation += 1
            self._registered.clear()
            self._ws = ws
            self._spawn(self._confirm_registered(self._generation, ever_connected))
            ever_connected = True
            reason = await self._read(ws)
            self._ws = None
            self._generation += 1  # a registration check still running is now stale
            was_ready = self._ready.is_set()
            self._ready.clear()
            self.stats.disconnects += 1
            if self._closing.is_set():
                break
            self._log.warning("ari_disconnected", reason=reason, was_ready=was_ready)
            self._spawn_hook(self.on_disconnected, reason)
            if self._replaced:
                self._log.error("ari_application_replaced", hint="another client registered this app name")
                break
            if time.monotonic() - connected_at >= STABLE_AFTER_S:
                backoff = self.reconnect_initial
            await self._pause(backoff)
            backoff = min(backoff * 2, self.reconnect_max)

    async def _connect(self) -> aiohttp.ClientWebSocketResponse | None:
        params = {"app": self.app}
        if self.subscribe_all:
            params["subscribeAll"] = "true"
        try:
            # Basic auth in the handshake's header rather than api_key in the URL: URLs end up in
            # exception texts and logs.
            return await self.client.session.ws_connect(
                self.client.events_url,
                params=params,
                headers=self.client.auth_headers,
                heartbeat=self.heartbeat,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
            )
        except aiohttp.WSServerHandshakeError as e:
            error = f"handshake refused: HTTP {e.status}"
            if e.status == 401:
                error += " (wrong ARI user or password)"
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            error = f"{type(e).__name__}: {e}"
        self.stats.connect_failures += 1
        if error != self.last_error or self.stats.connect_failures % 20 == 1:
            # The same failure every few seconds while Asterisk is down: say it once, then rarely.
            self._log.warning("ari_connect_failed", url=self.client.events_url, error=error)
        self.last_error = error
        return None

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._on_text(msg.data)
                    if self._replaced:
                        return "application replaced"
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    return f"error: {ws.exception()}"
            return f"closed (code {ws.close_code})"
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            return f"{type(e).__name__}: {e}"
        finally:
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT_S)

    def _on_text(self, text: str) -> None:
        ev = parse_message(text)
        self.stats.events += 1
        if isinstance(ev, UnknownEvent):
            if ev.problem:
                self.stats.unreadable_events += 1
                self._log.warning("ari_event_unreadable", event_type=ev.type, problem=ev.problem)
            else:
                self.stats.unknown_events += 1
        elif isinstance(ev, ApplicationRegistered):
            self._registered.set()
        elif isinstance(ev, ApplicationReplaced):
            self._replaced = True
        self._dispatch(ev)

    async def _confirm_registered(self, generation: int, reconnected: bool) -> None:
        deadline = time.monotonic() + REGISTER_CONFIRM_S
        confirmed = False
        while time.monotonic() < deadline and generation == self._generation:
            if self._registered.is_set():
                confirmed = True
                break
            try:
                if await self.client.get_application(self.app) is not None:
                    confirmed = True
                    break
            except AriError:
                pass
            await asyncio.sleep(REGISTER_POLL_S)
        if generation != self._generation:
            return
        if not confirmed:
            self._log.warning("ari_registration_unconfirmed", waited_s=REGISTER_CONFIRM_S)
        self.last_error = ""
        self._ready.set()
        self._log.info(
            "ari_connected",
            url=self.client.events_url,
            reconnects=self.stats.reconnects,
            subscribe_all=self.subscribe_all,
        )
        if self.on_connected is not None:
            await self._call(self.on_connected, reconnected)

    async def _pause(self, backoff: float) -> None:
        # Equal jitter: at least half the backoff, so retries stay spaced, but never in lockstep
        # with other instances that lost the same Asterisk.
        delay = backoff / 2 + random.uniform(0, backoff / 2)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn_hook(self, hook: Callable[..., Awaitable[None] | None] | None, *args: object) -> None:
        if hook is not None:
            self._spawn(self._call(hook, *args))

    async def _call(self, fn: Callable[..., Awaitable[None] | None], *args: object) -> None:
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.stats.handler_errors += 1
            self._log.exception("ari_hook_failed", hook=getattr(fn, "__name__", repr(fn)))

"""ARI's events as typed dataclasses, and a parser that never raises.

The websocket delivers whatever this Asterisk version emits; a type we do not model, or a known
type with a body we cannot read, becomes an `UnknownEvent` (with the reason in `problem`) so the
read loop can pass it on and carry on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ari_amd.ari.models import Bridge, Channel, as_dict, as_int, as_str


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    application: str
    timestamp: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def channel_ids(self) -> tuple[str, ...]:
        """The channels this event concerns (its per-channel queues)."""
        return ()


@dataclass(frozen=True, slots=True)
class ChannelEvent(Event):
    channel: Channel

    @property
    def channel_ids(self) -> tuple[str, ...]:
        return (self.channel.id,)


@dataclass(frozen=True, slots=True)
class StasisStart(ChannelEvent):
    args: tuple[str, ...]
    replace_channel: Channel | None


@dataclass(frozen=True, slots=True)
class StasisEnd(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class ChannelStateChange(ChannelEvent):
    @property
    def state(self) -> str:
        return self.channel.state


@dataclass(frozen=True, slots=True)
class ChannelDestroyed(ChannelEvent):
    cause: int | None  # Q.850 cause: 16 normal clearing, 17 busy, 19 no answer, 21 rejected
    cause_txt: str


@dataclass(frozen=True, slots=True)
class ChannelHangupRequest(ChannelEvent):
    cause: int | None
    soft: bool


@dataclass(frozen=True, slots=True)
class ChannelEnteredBridge(ChannelEvent):
    bridge: Bridge


@dataclass(frozen=True, slots=True)
class ChannelLeftBridge(ChannelEvent):
    bridge: Bridge


@dataclass(frozen=True, slots=True)
class Dial(Event):
    """Progress of a dial. On an originate the peer is our channel and there is no caller."""

    peer: Channel
    caller: Channel | None
    # "" when dialling starts, RINGING, then a final ANSWER, BUSY, NOANSWER, CHANUNAVAIL,
    # CONGESTION or CANCEL (an originate into the app, seen in the lab: "", RINGING, ANSWER).
    dialstatus: str
    dialstring: str
    forward: str

    @property
    def channel_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in (self.peer, self.caller) if c is not None and c.id)


@dataclass(frozen=True, slots=True)
class ChannelVarset(Event):
    variable: str
    value: str
    channel: Channel | None  # None: a global variable

    @property
    def channel_ids(self) -> tuple[str, ...]:
        return (self.channel.id,) if self.channel is not None and self.channel.id else ()


@dataclass(frozen=True, slots=True)
class ChannelUserevent(Event):
    eventname: str
    userevent: Mapping[str, Any]
    channel: Channel | None

    @property
    def channel_ids(self) -> tuple[str, ...]:
        return (self.channel.id,) if self.channel is not None and self.channel.id else ()


@dataclass(frozen=True, slots=True)
class ApplicationReplaced(Event):
    """Another websocket registered our application name: this connection no longer gets events."""


@dataclass(frozen=True, slots=True)
class ApplicationRegistered(Event):
    """Sent by newer Asterisk releases once the application is registered."""


@dataclass(frozen=True, slots=True)
class UnknownEvent(Event):
    problem: str  # "" for a type we do not model; else why a known type could not be read

    @property
    def channel_ids(self) -> tuple[str, ...]:
        # Route what we can even for unmodelled types (ChannelDtmfReceived, ChannelDialplan...).
        cid = as_str(as_dict(self.raw.get("channel")), "id")
        return (cid,) if cid else ()


def _channel(d: Mapping[str, Any], key: str = "channel") -> Channel:
    c = Channel.from_json(d.get(key))
    if not c.id:
        raise ValueError(f"no {key}.id")
    return c


def _optional_channel(d: Mapping[str, Any], key: str = "channel") -> Channel | None:
    v = d.get(key)
    return Channel.from_json(v) if isinstance(v, dict) else None


Base = dict[str, Any]
_Builder = Callable[[Mapping[str, Any], Base], Event]


def _args(d: Mapping[str, Any]) -> tuple[str, ...]:
    v = d.get("args")
    return tuple(str(a) for a in v) if isinstance(v, list) else ()


def _soft(d: Mapping[str, Any]) -> bool:
    return d.get("soft") is True


_BUILDERS: dict[str, _Builder] = {
    "StasisStart": lambda d, b: StasisStart(
        **b, channel=_channel(d), args=_args(d), replace_channel=_optional_channel(d, "replace_channel")
    ),
    "StasisEnd": lambda d, b: StasisEnd(**b, channel=_channel(d)),
    "ChannelStateChange": lambda d, b: ChannelStateChange(**b, channel=_channel(d)),
    "ChannelDestroyed": lambda d, b: ChannelDestroyed(
        **b, channel=_channel(d), cause=as_int(d, "cause"), cause_txt=as_str(d, "cause_txt")
    ),
    "ChannelHangupRequest": lambda d, b: ChannelHangupRequest(
        **b, channel=_channel(d), cause=as_int(d, "cause"), soft=_soft(d)
    ),
    "ChannelEnteredBridge": lambda d, b: ChannelEnteredBridge(
        **b, channel=_channel(d), bridge=Bridge.from_json(d.get("bridge"))
    ),
    "ChannelLeftBridge": lambda d, b: ChannelLeftBridge(
        **b, channel=_channel(d), bridge=Bridge.from_json(d.get("bridge"))
    ),
    "Dial": lambda d, b: Dial(
        **b,
        peer=_channel(d, "peer"),
        caller=_optional_channel(d, "caller"),
        dialstatus=as_str(d, "dialstatus"),
        dialstring=as_str(d, "dialstring"),
        forward=as_str(d, "forward"),
    ),
    "ChannelVarset": lambda d, b: ChannelVarset(
        **b, variable=as_str(d, "variable"), value=as_str(d, "value"), channel=_optional_channel(d)
    ),
    "ChannelUserevent": lambda d, b: ChannelUserevent(
        **b, eventname=as_str(d, "eventname"), userevent=as_dict(d.get("userevent")), channel=_optional_channel(d)
    ),
    "ApplicationReplaced": lambda d, b: ApplicationReplaced(**b),
    "ApplicationRegistered": lambda d, b: ApplicationRegistered(**b),
}

EVENT_TYPES = frozenset(_BUILDERS)


def parse_event(data: Any) -> Event:
    """A decoded JSON message -> its typed event. Never raises."""
    d = as_dict(data)
    base: Base = {
        "type": as_str(d, "type"),
        "application": as_str(d, "application"),
        "timestamp": as_str(d, "timestamp"),
        "raw": d,
    }
    if not isinstance(data, dict):
        return UnknownEvent(**base, problem=f"not a JSON object: {type(data).__name__}")
    builder = _BUILDERS.get(base["type"])
    if builder is None:
        return UnknownEvent(**base, problem="")
    try:
        return builder(d, base)
    except Exception as e:  # a body we cannot read must not stop the read loop
        return UnknownEvent(**base, problem=f"{type(e).__name__}: {e}")


def parse_message(text: str | bytes) -> Event:
    """One websocket text frame -> its typed event. Never raises."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError, RecursionError) as e:
        return UnknownEvent(type="", application="", timestamp="", raw={}, problem=f"not JSON: {e}")
    return parse_event(data)

"""ARI's resources as typed, read-only values: Channel and Bridge.

Asterisk's JSON is read leniently (a missing or mistyped field becomes its empty value) because
these come from the network and from events: a field Asterisk renames in a later release must
not take a call down. The full object stays in `raw`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# What Asterisk's externalMedia channel sends from (chan_rtp sets them on the channel).
UNICASTRTP_LOCAL_ADDRESS = "UNICASTRTP_LOCAL_ADDRESS"
UNICASTRTP_LOCAL_PORT = "UNICASTRTP_LOCAL_PORT"


def as_str(d: Mapping[str, Any], key: str) -> str:
    v = d.get(key)
    return v if isinstance(v, str) else "" if v is None else str(v)


def as_int(d: Mapping[str, Any], key: str) -> int | None:
    v = d.get(key)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            return None
    return None


def as_dict(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, dict) else {}


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    name: str
    state: str  # Down, Rsrvd, OffHook, Dialing, Ring, Ringing, Up, Busy, Dialing Offhook, Pre-ring, Unknown
    caller_number: str
    caller_name: str
    connected_number: str
    context: str
    extension: str
    priority: int | None
    creationtime: str
    channelvars: Mapping[str, str]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> Channel:
        d = as_dict(data)
        caller = as_dict(d.get("caller"))
        connected = as_dict(d.get("connected"))
        dialplan = as_dict(d.get("dialplan"))
        channelvars = {str(k): "" if v is None else str(v) for k, v in as_dict(d.get("channelvars")).items()}
        return cls(
            id=as_str(d, "id"),
            name=as_str(d, "name"),
            state=as_str(d, "state"),
            caller_number=as_str(caller, "number"),
            caller_name=as_str(caller, "name"),
            connected_number=as_str(connected, "number"),
            context=as_str(dialplan, "context"),
            extension=as_str(dialplan, "exten"),
            priority=as_int(dialplan, "priority"),
            creationtime=as_str(d, "creationtime"),
            channelvars=channelvars,
            raw=d,
        )

    @property
    def is_up(self) -> bool:
        return self.state == "Up"

    def rtp_source(self) -> tuple[str, int] | None:
        """Where an externalMedia channel sends RTP from, if Asterisk said so in channelvars."""
        host = self.channelvars.get(UNICASTRTP_LOCAL_ADDRESS)
        port = self.channelvars.get(UNICASTRTP_LOCAL_PORT)
        if not host or not port or not port.isdigit():
            return None
        return host, int(port)


@dataclass(frozen=True, slots=True)
class Bridge:
    id: str
    technology: str
    bridge_type: str
    bridge_class: str
    name: str
    channels: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> Bridge:
        d = as_dict(data)
        chans = d.get("channels")
        return cls(
            id=as_str(d, "id"),
            technology=as_str(d, "technology"),
            bridge_type=as_str(d, "bridge_type"),
            bridge_class=as_str(d, "bridge_class"),
            name=as_str(d, "name"),
            channels=tuple(str(c) for c in chans) if isinstance(chans, list) else (),
            raw=d,
        )

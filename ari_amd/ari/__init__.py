"""A thin typed ARI client on aiohttp: REST calls (AriClient) and the events websocket (EventStream)."""

from ari_amd.ari.client import AriClient
from ari_amd.ari.errors import AriConnectionError, AriError
from ari_amd.ari.events import (
    ApplicationRegistered,
    ApplicationReplaced,
    ChannelDestroyed,
    ChannelEnteredBridge,
    ChannelEvent,
    ChannelHangupRequest,
    ChannelLeftBridge,
    ChannelStateChange,
    ChannelUserevent,
    ChannelVarset,
    Dial,
    Event,
    StasisEnd,
    StasisStart,
    UnknownEvent,
    parse_event,
    parse_message,
)
from ari_amd.ari.models import Bridge, Channel
from ari_amd.ari.websocket import ChannelEvents, EventStream, StreamStats

__all__ = [
    "ApplicationRegistered",
    "ApplicationReplaced",
    "AriClient",
    "AriConnectionError",
    "AriError",
    "Bridge",
    "Channel",
    "ChannelDestroyed",
    "ChannelEnteredBridge",
    "ChannelEvent",
    "ChannelEvents",
    "ChannelHangupRequest",
    "ChannelLeftBridge",
    "ChannelStateChange",
    "ChannelUserevent",
    "ChannelVarset",
    "Dial",
    "Event",
    "EventStream",
    "StasisEnd",
    "StasisStart",
    "StreamStats",
    "UnknownEvent",
    "parse_event",
    "parse_message",
]

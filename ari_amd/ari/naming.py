"""Ids for the channels and bridges ari-amd creates, so it can find its own after a restart.

When the events websocket drops, Asterisk keeps our snoop and externalMedia channels and their
bridges; the events that would have told us to clean them up are lost. Naming them
`ari-amd-<kind>-<call id>` lets a sweep after reconnect (GET /channels, GET /bridges) tell ours
from everyone else's and match each to its call.
"""

from __future__ import annotations

import re

PREFIX = "ari-amd"
SNOOP = "snoop"
MEDIA = "media"
BRIDGE = "bridge"
KINDS = (SNOOP, MEDIA, BRIDGE)
# A call id goes into URL paths and into addChannel's comma-separated list: keep it plain.
_CALL_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_OWNED = re.compile(rf"^{PREFIX}-({'|'.join(KINDS)})-([A-Za-z0-9._-]{{1,100}})$")


def _check(call_id: str) -> str:
    if not _CALL_ID.match(call_id):
        raise ValueError(f"call id {call_id!r} must be 1-100 of A-Z a-z 0-9 . _ -")
    return call_id


def snoop_id(call_id: str) -> str:
    return f"{PREFIX}-{SNOOP}-{_check(call_id)}"


def media_id(call_id: str) -> str:
    return f"{PREFIX}-{MEDIA}-{_check(call_id)}"


def bridge_id(call_id: str) -> str:
    return f"{PREFIX}-{BRIDGE}-{_check(call_id)}"


def owner_of(resource_id: str) -> tuple[str, str] | None:
    """(kind, call id) for an id made here; None for anything else."""
    m = _OWNED.match(resource_id)
    return (m.group(1), m.group(2)) if m else None

"""The UDP ports calls receive RTP on: one per call, from a configured range."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable, Iterator
from typing import TypeVar

DEFAULT_HOST = "127.0.0.1"  # Asterisk and ari-amd on one host; bind wider only on purpose
DEFAULT_FIRST_PORT = 40000
DEFAULT_LAST_PORT = 40999
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})

P = TypeVar("P", bound=asyncio.DatagramProtocol)


class PortPoolExhausted(RuntimeError):
    """Every port of the range is taken, by our calls or by other processes."""


class PortPool:
    """Hands out ports of [first, last] round-robin and binds them.

    Round-robin rather than lowest-free: a port freed by a call that just ended is handed out last,
    so stray packets still in flight to it from the old call are unlikely to meet a new receiver
    (which would pin its source to the wrong sender).
    """

    def __init__(
        self,
        first: int = DEFAULT_FIRST_PORT,
        last: int = DEFAULT_LAST_PORT,
        host: str = DEFAULT_HOST,
        advertise_host: str | None = None,
    ) -> None:
        """host: the address to bind. advertise_host: the address Asterisk should send RTP to
        (externalMedia's external_host), when it differs, e.g. host 0.0.0.0 on a multi-homed box."""
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"bad port range {first}-{last}")
        if advertise_host is None and host in WILDCARD_HOSTS:
            raise ValueError(f"binding {host!r} needs an advertise_host Asterisk can send to")
        self.first = first
        self.last = last
        self.host = host
        self.advertise_host = advertise_host or host
        self._in_use: set[int] = set()
        self._cursor = first

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    @property
    def in_use(self) -> frozenset[int]:
        return frozenset(self._in_use)

    def release(self, port: int) -> None:
        self._in_use.discard(port)

    def _candidates(self) -> Iterator[int]:
        for i in range(self.size):
            port = self.first + (self._cursor - self.first + i) % self.size
            if port not in self._in_use:
                yield port

    async def bind(self, protocol_factory: Callable[[], P]) -> tuple[asyncio.DatagramTransport, P, int]:
        """Bind the next free port of the range; raises PortPoolExhausted when none is left."""
        loop = asyncio.get_running_loop()
        busy_elsewhere = 0
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for port in self._candidates():
            # Bound here, not by create_datagram_endpoint(local_addr=...): uvloop's error for a port
            # in use carries no errno, and a port another process holds must be skipped, not fatal.
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((self.host, port))
            except OSError as e:
                sock.close()
                if e.errno in (errno.EADDRINUSE, errno.EACCES):
                    busy_elsewhere += 1  # another process holds it: try the next one
                    continue
                raise
            sock.setblocking(False)
            try:
                transport, protocol = await loop.create_datagram_endpoint(protocol_factory, sock=sock)
            except BaseException:
                sock.close()
                raise
            self._in_use.add(port)
            self._cursor = self.first + (port - self.first + 1) % self.size
            return transport, protocol, port
        raise PortPoolExhausted(
            f"no free UDP port in {self.first}-{self.last} on {self.host}: "
            f"{len(self._in_use)} held by our calls, {busy_elsewhere} by other processes"
        )

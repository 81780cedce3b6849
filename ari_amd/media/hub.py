"""One UDP socket for every call's RTP, read a few hundred datagrams at a time and checked as arrays.

With a socket per call, each packet costs a readiness event, a system call and a trip through
RtpReceiver (~10 us; at 1000 calls, half a core before any detection). Here every externalMedia
channel sends to the one socket, and each detector tick `drain` reads everything waiting with
recvmmsg (ari_amd.media.mmsg) and tells calls apart by source: Asterisk names the address each
externalMedia channel sends from (UNICASTRTP_LOCAL_ADDRESS/PORT) before its first packet, so a
call's receiver is attached under that source, and a packet from any other source reaches no call.

Per packet, in numpy: the call its source port names, then the receiver's fast-path test (plain
RTP v2, the call's payload type, SSRC and length, the sequence number due). A call's run of such
packets is accounted in arrays and its payloads go to the FrameBatch as one block with every other
call's (`FrameBatch.queue_g711_block`); once one of a call's packets fails the test, it and that
call's later packets of the read go one by one to `RtpReceiver.datagram_received`, which reorders,
re-pins and counts exactly as on a port of its own. The receiver takes the arrays' counts back
lazily, whenever anything reads or changes its state (`RtpReceiver.absorb`, through `take_counts`).
Each side reads the other through its public methods only: the hub asks the receiver what its
fast path expects (`RtpReceiver.fast_state`), the receiver asks the hub what it took.

IPv4 only (Asterisk's externalMedia on one host or a LAN). Packets that arrive from a source
before its call is attached (none in practice: the channel sends once it is bridged) wait a
little in a small per-source stash, then are dropped and counted.
"""

from __future__ import annotations

import errno
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import structlog

from ari_amd.detect.g711 import G711_TO_FLOAT
from ari_amd.media.batch import BatchSession, FrameBatch, occurrence_rank
from ari_amd.media.mmsg import DatagramBatch, int_to_ip, ip_to_int
from ari_amd.media.ports import WILDCARD_HOSTS, PortPoolExhausted
from ari_amd.media.rtp import HEADER_LEN

if TYPE_CHECKING:
    from ari_amd.media.receiver import RtpReceiver

READ_BATCH = 1024  # datagrams per recvmmsg call
# Bytes of receive buffer asked for: a tick's packets for 1000 calls (~500), with room for a
# tick that runs late, at the kernel's ~1-2 KB of accounting per small datagram. Without
# CAP_NET_ADMIN the kernel caps it at net.core.rmem_max: Debian's default, 208 KB, holds ~256
# packets, 5 ms of 1000 calls' RTP, so the hub logs what it got and counts the kernel's drops
# (which the kernel tells with each datagram read: DatagramBatch.dropped).
RECEIVE_BUFFER = 16 << 20
PACKET_TRUESIZE = 832  # bytes of receive buffer a 172-byte datagram takes on loopback (measured: 256 in 208 KB)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux's number; Python names it from 3.12 on
STASH_SOURCES = 64  # strangers whose packets are held for a moment in case their call attaches
STASH_PACKETS = 16  # per source
STASH_S = 1.0
NO_LANE, SHARED_PORT = -1, -2  # the port table's entries besides a lane: nobody, several lanes
WILDCARD_IP = -1

log = structlog.get_logger(__name__)

DropCallback = Callable[[str, int], None]  # reason, count: datagrams no call took


@dataclass(frozen=True, slots=True)
class LaneCounts:
    """What the array path took for one call since its receiver last asked (`RtpHub.take_counts`)."""

    packets: int
    first_seq: int  # -1, or the first sequence number of a stream the array path started
    ssrc: int  # the stream's SSRC (meaningful when first_seq >= 0)
    last_at: float  # time.monotonic() of the newest packet taken


@dataclass(slots=True)
class HubStats:
    datagrams: int = 0
    fast: int = 0  # taken by the array path
    serial: int = 0  # handed to a receiver one by one
    unknown_source: int = 0  # from no attached call's source (dropped once out of the stash)
    overflow: int = 0  # dropped by the kernel, the receive buffer full (Linux; known as the next datagram is read)
    truncated: int = 0  # longer than any RTP packet we take
    reads: int = 0  # recvmmsg calls that returned datagrams
    socket_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class RtpHub:
    """The shared RTP socket: `open`, attach receivers (`RtpReceiver.attach`), `drain` each tick."""

    def __init__(
        self,
        host: str,
        port: int,
        advertise_host: str | None = None,
        batch: FrameBatch | None = None,
        on_dropped: DropCallback | None = None,
        max_datagram: int = 1500,
        receive_buffer: int = RECEIVE_BUFFER,
    ) -> None:
        """batch: the FrameBatch whose ticks drain the hub (and whose sessions take blocks);
        without one, call `drain` yourself. port 0 binds any free port. receive_buffer: bytes
        asked of the kernel for the socket."""
        if advertise_host is None and host in WILDCARD_HOSTS:
            raise ValueError(f"binding {host!r} needs an advertise_host Asterisk can send to")
        if ":" in host:
            raise ValueError(f"the shared RTP socket is IPv4 only (got {host!r})")
        self.host = host
        self.port = port
        self.advertise_host = advertise_host or host
        self.batch = batch
        self.on_dropped = on_dropped
        self.receive_buffer = receive_buffer
        self.stats = HubStats()
        self._sock: socket.socket | None = None
        self._buf = DatagramBatch(READ_BATCH, max_datagram + 1)  # one byte more: a longer datagram shows as truncated
        self._max_datagram = max_datagram
        self._port_lane = np.full(65536, NO_LANE, dtype=np.int64)  # source port -> lane
        self._by_source: dict[tuple[int, int], int] = {}  # (ip, port) -> lane; ip WILDCARD_IP for any host
        self._source_of: list[tuple[int, int] | None] = []  # by lane
        self._on_port: dict[int, list[int]] = {}  # source port -> lanes (more than one: several hosts)
        self._receivers: list[RtpReceiver | None] = []
        self._sessions: list[BatchSession | None] = []
        self._free: list[int] = []
        # Per lane: what the fast path expects (length -1: none, every packet goes one by one)...
        self._ip = np.zeros(0, dtype=np.int64)
        self._fast_len = np.zeros(0, dtype=np.int64)
        self._fast_pt = np.zeros(0, dtype=np.int64)
        self._ssrc = np.zeros(0, dtype=np.int64)
        self._next_seq = np.zeros(0, dtype=np.int64)
        self._slot = np.zeros(0, dtype=np.int64)  # the batch session's slot, -1: count, queue nothing
        self._law = np.zeros(0, dtype=np.int64)  # index into LAWS
        # ...and what it took since the receiver last asked (take_counts).
        self._taken = np.zeros(0, dtype=np.int64)
        self._last_at = np.zeros(0, dtype=np.float64)
        self._started = np.zeros(0, dtype=np.int64)  # -1, or the first sequence number of a stream taken by array
        self._stash: dict[tuple[str, int], deque[tuple[float, bytes]]] = {}
        self._log = log.bind(rtp_port=port)

    # -- lifecycle ----------------------------------------------------------------------------------
    @classmethod
    def open_range(
        cls,
        host: str,
        first: int,
        last: int,
        advertise_host: str | None = None,
        batch: FrameBatch | None = None,
        on_dropped: DropCallback | None = None,
    ) -> RtpHub:
        """An open hub on the first port of [first, last] no other process holds."""
        for port in range(first, last + 1):
            hub = cls(host, port, advertise_host, batch, on_dropped)
            try:
                hub.open()
            except OSError as e:
                if e.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            return hub
        raise PortPoolExhausted(f"no free UDP port in {first}-{last} on {host} for the shared RTP socket")

    def open(self) -> None:
        """Bind the socket (raises OSError if the port is taken) and join the batch's ticks."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.receive_buffer)  # root may pass rmem_max
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._log = log.bind(rtp_port=self.port)
        self._buf.count_drops(sock)
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        # A 10 ms tick that runs 10 ms late: 20 ms of every call's packets, one each, must fit.
        calls = got // PACKET_TRUESIZE
        level = self._log.info if got >= self.receive_buffer else self._log.warning
        level("rtp_hub_open", host=self.host, receive_buffer=got, calls_held=calls, recvmmsg=self._buf.uses_recvmmsg,
              hint=None if got >= self.receive_buffer else
              f"about {calls} calls fit: raise net.core.rmem_max to {RECEIVE_BUFFER} (or give CAP_NET_ADMIN) for more")
        if self.batch is not None:
            self.batch.feeders.append(self.drain)

    def close(self) -> None:
        if self.batch is not None and self.drain in self.batch.feeders:
            self.batch.feeders.remove(self.drain)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._log.info("rtp_hub_closed", **self.stats.as_dict())

    @property
    def external_host(self) -> str:
        """host:port for every externalMedia channel's external_host."""
        return f"{self.advertise_host}:{self.port}"

    def __len__(self) -> int:
        return len(self._receivers) - len(self._free)

    # -- receivers (called by RtpReceiver) ------------------------------------------------------------
    def attach(self, receiver: RtpReceiver, source: tuple[str, int]) -> int:
        """Route `source`'s packets to `receiver` from now on; returns its lane. Raises ValueError
        if another receiver has that source."""
        host, port = source[0], int(source[1])
        try:
            ip = WILDCARD_IP if host in WILDCARD_HOSTS else ip_to_int(host)
        except OSError:
            raise ValueError(f"RTP source {host!r} is not an IPv4 address") from None
        if not 0 < port < 65536:
            raise ValueError(f"RTP source port {port} is out of range")
        if (ip, port) in self._by_source or (WILDCARD_IP, port) in self._by_source or (
            ip == WILDCARD_IP and port in self._on_port
        ):
            raise ValueError(f"RTP source {host}:{port} is already attached to another call")
        if not self._free:
            self._grow()
        lane = self._free.pop()
        self._receivers[lane] = receiver
        self._sessions[lane] = None
        self._by_source[(ip, port)] = lane
        self._source_of[lane] = (ip, port)
        self._ip[lane] = ip
        lanes = self._on_port.setdefault(port, [])
        lanes.append(lane)
        self._port_lane[port] = lane if len(lanes) == 1 else SHARED_PORT
        self._fast_len[lane] = -1
        self._slot[lane] = -1
        self._taken[lane] = 0
        self._last_at[lane] = 0.0
        self._started[lane] = -1
        stashed = self._stash.pop((host, port), None)
        if stashed:
            now = time.monotonic()
            for at, data in stashed:
                if now - at <= STASH_S:
                    receiver.datagram_received(data, (host, port))
        return lane

    def detach(self, lane: int) -> None:
        receiver = self._receivers[lane]
        if receiver is None:
            return
        self._receivers[lane] = None
        self._unbind(lane)
        key = self._source_of[lane]
        assert key is not None
        self._source_of[lane] = None
        del self._by_source[key]
        port = key[1]
        lanes = self._on_port[port]
        lanes.remove(lane)
        self._port_lane[port] = NO_LANE if not lanes else lanes[0] if len(lanes) == 1 else SHARED_PORT
        if not lanes:
            del self._on_port[port]
        self._fast_len[lane] = -1
        self._taken[lane] = 0
        self._free.append(lane)

    def bind_session(self, lane: int, session: BatchSession | None) -> None:
        """Let the lane's in-sequence 20 ms G.711 go to `session` as part of the tick's block (None:
        stop). The receiver's on_g711 must be what session.feed_g711 would do with them."""
        self._unbind(lane)
        if session is not None and not session.closed and session.batch is self.batch and session.law is not None:
            self._sessions[lane] = session
            session.on_leave = lambda: self._unbind(lane, session)
        self.refresh(lane)

    def _unbind(self, lane: int, session: BatchSession | None = None) -> None:
        current = self._sessions[lane]
        if current is None or (session is not None and current is not session):
            return
        current.on_leave = None
        self._sessions[lane] = None
        self._slot[lane] = -1

    def refresh(self, lane: int) -> None:
        """Copy the receiver's fast-path expectations to the lane's arrays (after it changed them).
        SSRC and sequence number -1: the receiver has had no packet, and takes the first plain one
        from its source as the start of the stream."""
        receiver = self._receivers[lane]
        state = receiver.fast_state(concrete_source=self._ip[lane] != WILDCARD_IP) if receiver is not None else None
        session = self._sessions[lane]
        if state is None or session is None or session.closed or session.slot is None:
            # Without a session to take blocks, the receiver's own path handles every packet.
            self._fast_len[lane] = -1
            self._slot[lane] = -1
            return
        length, payload_type, ssrc, next_seq = state
        self._fast_len[lane] = length
        self._fast_pt[lane] = payload_type
        self._ssrc[lane] = ssrc
        self._next_seq[lane] = next_seq
        self._slot[lane] = session.slot
        self._law[lane] = LAWS.index(session.law)

    def take_counts(self, lane: int) -> LaneCounts | None:
        """What the array path took for the lane since the last call (None: nothing), handed over
        once: its receiver accounts for it (RtpReceiver.absorb)."""
        n = int(self._taken[lane])
        if not n:
            return None
        self._taken[lane] = 0
        first = int(self._started[lane])
        self._started[lane] = -1
        return LaneCounts(n, first, int(self._ssrc[lane]), float(self._last_at[lane]))

    # -- the tick ---------------------------------------------------------------------------------------
    def drain(self) -> int:
        """Read and route everything waiting on the socket; returns the datagrams read."""
        sock = self._sock
        if sock is None:
            return 0
        total = 0
        buf = self._buf
        while True:
            try:
                n = buf.recv(sock)
            except OSError as e:
                self.stats.socket_errors += 1
                self._log.warning("rtp_hub_recv_failed", error=str(e), count=self.stats.socket_errors)
                break
            if not n:
                break
            self.stats.reads += 1
            total += n
            self._route(n)
            if n < buf.capacity:
                break
        if self._stash:
            self._expire_stash()
        if buf.dropped > self.stats.overflow:
            self._count_overflow(buf.dropped)
        return total

    def _count_overflow(self, drops: int) -> None:
        """Datagrams the kernel dropped since last time because the receive buffer was full."""
        new, self.stats.overflow = drops - self.stats.overflow, drops
        if self.on_dropped is not None:
            self.on_dropped("socket_overflow", new)
        self._log.warning("rtp_hub_overflow", dropped=new, total=drops,
                          hint=f"raise net.core.rmem_max to {RECEIVE_BUFFER}, or the ticks run late")

    def _route(self, n: int) -> None:
        buf = self._buf
        data = buf.data[:n]
        lengths = buf.lengths
        port = buf.src_port
        ip = buf.src_ip
        self.stats.datagrams += n
        lane = self._port_lane[port]
        shared = lane == SHARED_PORT
        if shared.any():
            for i in np.flatnonzero(shared):
                key = (int(ip[i]), int(port[i]))
                lane[i] = self._by_source.get(key, self._by_source.get((WILDCARD_IP, key[1]), NO_LANE))
        known = lane >= 0
        lane_c = np.where(known, lane, 0)
        if len(self._ip):
            expected_ip = self._ip[lane_c]
            known &= (expected_ip == ip) | (expected_ip == WILDCARD_IP)
        truncated = buf.truncated
        if truncated.any():
            self.stats.truncated += int(truncated.sum())
            if self.on_dropped is not None:
                self.on_dropped("oversized", int(truncated.sum()))
            known &= ~truncated
        if not known.all():
            for i in np.flatnonzero(~known & ~truncated):
                self._stray(bytes(data[i, : lengths[i]]), (int_to_ip(ip[i]), int(port[i])))
        if not known.any():
            return
        rows = np.flatnonzero(known)
        lanes = lane[rows]
        head = data[rows, :HEADER_LEN]  # (the rows are 1.5 KB: gather only what is read)
        rank = occurrence_rank(lanes)
        seq = (head[:, 2].astype(np.int64) << 8) | head[:, 3]
        ssrc = head[:, 8:12].copy().view(">u4").ravel().astype(np.int64)
        want_ssrc, want_seq = self._ssrc[lanes], self._next_seq[lanes]
        fresh = want_seq < 0  # a call's first packets: its stream starts at the first one's numbers
        if fresh.any():
            first = fresh & (rank == 0)
            start_seq, start_ssrc = np.full(len(self._receivers), -1), np.full(len(self._receivers), -1)
            start_seq[lanes[first]], start_ssrc[lanes[first]] = seq[first], ssrc[first]
            want_seq = np.where(fresh, start_seq[lanes], want_seq)
            want_ssrc = np.where(fresh, start_ssrc[lanes], want_ssrc)
        # The marker bit is let through: the receiver takes a marked packet in sequence the same way.
        ok = (
            (lengths[rows] == self._fast_len[lanes])
            & (head[:, 0] == 0x80)
            & ((head[:, 1] & 0x7F) == self._fast_pt[lanes])
            & (ssrc == want_ssrc)
            & (seq == (want_seq + rank) & 0xFFFF)
        )
        serial = self.batch.serial_slots() if self.batch is not None else set()
        if serial:
            ok &= ~np.isin(self._slot[lanes], list(serial))
        if not ok.all():
            # A call's packets after its first that fails go one by one, in order.
            first_bad = np.full(len(self._receivers), np.iinfo(np.int64).max)
            np.minimum.at(first_bad, lanes[~ok], rank[~ok])
            ok &= rank < first_bad[lanes]
        fast = lanes[ok]
        if len(fast):
            counts = np.bincount(fast, minlength=len(self._receivers))
            took = counts > 0
            if fresh.any():
                started = took & (self._next_seq < 0)
                self._started[started] = start_seq[started]  # for the receiver to take up (take_counts)
                self._ssrc[started], self._next_seq[started] = start_ssrc[started], start_seq[started]
            self._next_seq[took] = (self._next_seq[took] + counts[took]) & 0xFFFF
            self._taken += counts
            self._last_at[took] = time.monotonic()
            self.stats.fast += len(fast)
            self._queue(rows[ok], fast)
        if not ok.all():
            slow = rows[~ok]
            self.stats.serial += len(slow)
            touched = set()
            for i in slow:
                li = int(lane[i])
                receiver = self._receivers[li]
                if receiver is None:
                    continue
                receiver.absorb()  # its fast rows of this read first
                receiver.datagram_received(bytes(data[i, : lengths[i]]), (int_to_ip(ip[i]), int(port[i])))
                touched.add(li)
            for li in touched:
                self.refresh(li)

    def _queue(self, rows: np.ndarray, lanes: np.ndarray) -> None:
        """The fast rows' payloads (rows of the read buffer) into the batch, one block per law; rows
        of calls no session takes (decided, or not bound) were accounted and are dropped here."""
        batch = self.batch
        if batch is None:
            return
        slots = self._slot[lanes]
        live = slots >= 0
        if live.any():
            live[live] = batch.taking(slots[live])
        if not live.any():
            return
        payloads = self._buf.data[rows[live], HEADER_LEN : HEADER_LEN + FRAME_BYTES]
        slots, laws = slots[live], self._law[lanes[live]]
        for k, law in enumerate(LAWS):
            mine = laws == k
            if mine.all():
                batch.queue_g711_block(law, payloads, slots)
                break
            if mine.any():
                batch.queue_g711_block(law, payloads[mine], slots[mine])

    def _stray(self, data: bytes, source: tuple[str, int]) -> None:
        """A datagram from no attached call's source: held a moment (its call may be attaching),
        then dropped."""
        self.stats.unknown_source += 1
        if self.on_dropped is not None:
            self.on_dropped("unknown_source", 1)
        held = self._stash.get(source)
        if held is None:
            if len(self._stash) >= STASH_SOURCES:
                return
            held = self._stash[source] = deque(maxlen=STASH_PACKETS)
        held.append((time.monotonic(), data))

    def _expire_stash(self) -> None:
        cutoff = time.monotonic() - STASH_S
        for source in [s for s, held in self._stash.items() if held[-1][0] < cutoff]:
            del self._stash[source]

    def _grow(self) -> None:
        old = len(self._receivers)
        new = max(64, 2 * old)
        self._receivers += [None] * (new - old)
        self._sessions += [None] * (new - old)
        self._source_of += [None] * (new - old)
        self._free = list(range(new - 1, old - 1, -1)) + self._free
        for name in (
            "_ip", "_fast_len", "_fast_pt", "_ssrc", "_next_seq", "_slot", "_law", "_taken", "_last_at", "_started"
        ):
            arr = getattr(self, name)
            grown = np.zeros(new, dtype=arr.dtype)
            grown[:old] = arr
            setattr(self, name, grown)
        self._fast_len[old:] = -1
        self._slot[old:] = -1
        self._started[old:] = -1


FRAME_BYTES = 160  # one 20 ms G.711 payload
LAWS = tuple(sorted(G711_TO_FLOAT))


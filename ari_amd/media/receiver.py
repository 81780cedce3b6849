"""One call's RTP in, decoded int16 frames out, in order, with losses as silence.

Asterisk's externalMedia channel sends the call's audio to the UDP port we name. What arrives
there is untrusted: the receiver pins the sender the way Asterisk's strictrtp does (the address
Asterisk announced in UNICASTRTP_LOCAL_ADDRESS/PORT when known, else the first valid sender),
checks the payload type and size against the format we asked for, and drops and counts the rest.
Nothing a datagram contains can raise out of `datagram_received`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import structlog

from ari_amd.detect.g711 import decode_alaw, decode_slin16, decode_ulaw
from ari_amd.media.ports import WILDCARD_HOSTS, PortPool
from ari_amd.media.reorder import DEFAULT_WINDOW, ReorderBuffer
from ari_amd.media.rtp import DYNAMIC_PAYLOAD_TYPES, HEADER_LEN, RtpError, parse_packet

if TYPE_CHECKING:
    from ari_amd.media.batch import BatchSession
    from ari_amd.media.hub import RtpHub

# An Ethernet MTU: Asterisk sends 172-byte (ulaw) or 652-byte (slin16) datagrams per 20 ms, so
# anything bigger is not ours.
MAX_DATAGRAM = 1500
MAX_FRAME_MS = 120  # the longest packetisation RTP profiles use; a longer payload is not audio
# A dynamic payload type is adopted only from a packet carrying at least this much audio, so a
# stray 4-byte telephone-event packet arriving first cannot claim the stream.
MIN_DYNAMIC_PIN_MS = 5
DEFAULT_FRAME_MS = 20  # the length of a lost packet before any packet told us otherwise

AudioCallback = Callable[[np.ndarray, int], None]
# One 20 ms G.711 payload as it came, or None for a lost one: a FrameBatch session decodes a
# whole tick of them in one table lookup (ari_amd.media.batch).
G711Callback = Callable[[bytes | None], None]
G711_FRAME_BYTES = 160
PLAIN_RTP_V2 = 0x80  # first header octet: version 2, no padding, no extension, no CSRCs

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """An externalMedia format: what Asterisk sends when asked for it."""

    name: str
    payload_type: int | None  # None: a dynamic type, adopted from the first packet
    sample_rate: int
    sample_width: int  # bytes per sample in the payload
    decode: Callable[[bytes], np.ndarray]


FORMATS: dict[str, MediaFormat] = {
    "ulaw": MediaFormat("ulaw", 0, 8000, 1, decode_ulaw),
    "alaw": MediaFormat("alaw", 8, 8000, 1, decode_alaw),
    "slin": MediaFormat("slin", None, 8000, 2, decode_slin16),  # big-endian, like slin16
    "slin16": MediaFormat("slin16", None, 16000, 2, decode_slin16),
}


@dataclass(slots=True)
class ReceiverStats:
    datagrams: int = 0  # everything that reached the socket
    received: int = 0  # valid packets from the pinned source, handed to the reorder buffer
    delivered: int = 0  # frames passed to on_audio, lost-packet silence included
    lost: int = 0
    reordered: int = 0
    duplicates: int = 0
    late: int = 0
    out_of_range: int = 0
    resyncs: int = 0
    ssrc_changes: int = 0
    dropped_foreign_source: int = 0
    dropped_malformed: int = 0
    dropped_payload_type: int = 0
    dropped_oversized: int = 0
    dropped_empty: int = 0  # valid RTP with no audio (keep-alives)
    dropped_after_close: int = 0
    callback_errors: int = 0
    socket_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class RtpReceiver(asyncio.DatagramProtocol):
    """Receives one call's RTP: on its own UDP port (`open` binds one from a PortPool), or from the
    shared socket of an RtpHub, which hands it its source's packets (`attach`)."""

    def __init__(
        self,
        format: str,
        on_audio: AudioCallback,
        *,
        expected_source: tuple[str, int] | None = None,
        reorder_window: int = DEFAULT_WINDOW,
        max_datagram: int = MAX_DATAGRAM,
        on_g711: G711Callback | None = None,
    ) -> None:
        """on_g711: for ulaw/alaw, 20 ms payloads (and 20 ms losses, as None) go there undecoded
        instead of to on_audio; other sizes still come decoded to on_audio, in order."""
        try:
            self.format = FORMATS[format]
        except KeyError:
            raise ValueError(f"unknown media format {format!r}; one of {sorted(FORMATS)}") from None
        self.on_audio = on_audio
        self.on_g711 = on_g711 if self.format.name in ("ulaw", "alaw") else None
        self.max_datagram = max_datagram
        self._last_packet_at: float | None = None
        self.host: str | None = None  # the address to give externalMedia (the pool's advertise_host)
        self.port: int | None = None
        self._stats = ReceiverStats()
        self._reorder: ReorderBuffer[bytes] = ReorderBuffer(reorder_window)
        self._expected: tuple[str, int] | None = None
        self._source: tuple[str, int] | None = None
        self._ssrc: int | None = None
        self._payload_type = self.format.payload_type
        self._frame_samples = self.format.sample_rate * DEFAULT_FRAME_MS // 1000
        self._max_payload = self.format.sample_rate * MAX_FRAME_MS // 1000 * self.format.sample_width
        self._min_pin_payload = self.format.sample_rate * MIN_DYNAMIC_PIN_MS // 1000 * self.format.sample_width
        self._transport: asyncio.DatagramTransport | None = None
        self._pool: PortPool | None = None
        self._closed = False
        self._closed_event = asyncio.Event()
        self._log = log
        self._hub: RtpHub | None = None
        self._lane = -1  # this receiver's place in the hub's arrays
        # The fast path's expectations, set once a packet has gone the whole way in sequence: the
        # next one from the pinned sender, same SSRC, payload type and length, plain header.
        self._fast_len = -1
        self._fast_pt = -1
        self._fast_ssrc = b""
        self._fast_g711: G711Callback | None = None  # on_g711, when the fast path's packets are 20 ms G.711
        if expected_source is not None:
            self.expect_source(*expected_source)

    @classmethod
    async def open(
        cls,
        pool: PortPool,
        format: str,
        on_audio: AudioCallback,
        *,
        expected_source: tuple[str, int] | None = None,
        reorder_window: int = DEFAULT_WINDOW,
        max_datagram: int = MAX_DATAGRAM,
        on_g711: G711Callback | None = None,
    ) -> RtpReceiver:
        """Bind a receiver to the next free port of `pool`; closing it gives the port back."""
        receiver = cls(
            format,
            on_audio,
            expected_source=expected_source,
            reorder_window=reorder_window,
            max_datagram=max_datagram,
            on_g711=on_g711,
        )
        _, _, port = await pool.bind(lambda: receiver)
        receiver._pool = pool
        receiver.host = pool.advertise_host
        receiver.port = port
        receiver._log = log.bind(rtp_port=port)
        receiver._log.debug("rtp_receiver_open", host=pool.host, format=format)
        return receiver

    @classmethod
    def attach(
        cls,
        hub: RtpHub,
        format: str,
        on_audio: AudioCallback,
        source: tuple[str, int],
        *,
        reorder_window: int = DEFAULT_WINDOW,
        max_datagram: int = MAX_DATAGRAM,
        on_g711: G711Callback | None = None,
    ) -> RtpReceiver:
        """A receiver for the packets `source` sends to the hub's socket (Asterisk's
        UNICASTRTP_LOCAL_ADDRESS/PORT); closing it detaches it. Raises ValueError if another
        receiver has that source."""
        receiver = cls(
            format,
            on_audio,
            expected_source=source,
            reorder_window=reorder_window,
            max_datagram=max_datagram,
            on_g711=on_g711,
        )
        receiver.host, receiver.port = hub.advertise_host, hub.port
        receiver._log = log.bind(rtp_port=hub.port, rtp_source=f"{source[0]}:{source[1]}")
        receiver._hub = hub
        receiver._lane = hub.attach(receiver, source)
        return receiver

    def bind_batch(self, session: BatchSession | None) -> None:
        """On a hub: from now on this call's in-sequence 20 ms G.711 may go straight to `session`
        in the hub's block, skipping on_g711 (None: stop). Only when on_g711 would do just
        session.feed_g711 with them. Without a hub, nothing to do."""
        if self._hub is not None and not self._closed:
            self._hub.bind_session(self._lane, session)

    # -- what the layer above reads ---------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.format.sample_rate

    @property
    def external_host(self) -> str:
        """host:port for externalMedia's external_host parameter."""
        if self.port is None:
            raise RuntimeError("the receiver is not bound")
        return f"{self.host}:{self.port}"

    @property
    def source(self) -> tuple[str, int] | None:
        """The sender we accept packets from, once pinned."""
        return self._source

    @property
    def payload_type(self) -> int | None:
        return self._payload_type

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def lane(self) -> int:
        """This receiver's place in its hub's arrays (-1: on a port of its own)."""
        return self._lane

    @property
    def last_packet_at(self) -> float | None:
        """time.monotonic() of the last accepted packet."""
        self.absorb()
        return self._last_packet_at

    @property
    def stats(self) -> ReceiverStats:
        """A snapshot of the counters."""
        self.absorb()
        s = self._stats
        r = self._reorder.stats
        snap = ReceiverStats(**s.as_dict())
        snap.lost, snap.reordered, snap.duplicates = r.lost, r.reordered, r.duplicates
        snap.late, snap.out_of_range, snap.resyncs = r.late, r.out_of_range, r.resyncs
        return snap

    def expect_source(self, host: str, port: int) -> None:
        """Accept packets only from host:port (Asterisk's UNICASTRTP_LOCAL_ADDRESS/PORT).

        May come after packets did: the externalMedia response can trail the first RTP. If the
        receiver had pinned someone else first, it re-pins and starts the stream over.
        """
        if self._hub is not None and (host, int(port)) != self._expected:
            raise ValueError("a receiver on the shared socket has the source it was attached with")
        self.absorb()
        self._expected = (host, int(port))
        if self._source is not None and not self._matches_expected(self._source):
            self._log.warning("rtp_source_repinned", was=f"{self._source[0]}:{self._source[1]}")
            self._source = None
            self._ssrc = None
            self._fast_len = -1
            self._reorder.reset()
            self._changed()

    def flush(self) -> None:
        """Deliver frames held back waiting for a missing packet (the stream stopped)."""
        self.absorb()
        frames = self._reorder.flush()
        if frames:
            self._deliver(frames)
            self._changed()

    def close(self) -> None:
        """Stop receiving; the port returns to the pool once the socket is closed. Idempotent."""
        if self._closed:
            return
        self.absorb()
        self._closed = True
        self._log.debug("rtp_receiver_closed", **self._stats.as_dict())
        if self._hub is not None:
            self._hub.detach(self._lane)
            self._closed_event.set()
        elif self._transport is not None:
            self._transport.close()
        else:
            self._closed_event.set()

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    async def aclose(self) -> None:
        """close() and wait until the port is free again."""
        self.close()
        await self.wait_closed()

    # -- asyncio.DatagramProtocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not inherit asyncio.DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        # The socket is closed only now (a loop iteration after transport.close()): the port goes
        # back to the pool here, so the next call never meets EADDRINUSE on it.
        self._closed = True
        if self._pool is not None and self.port is not None:
            self._pool.release(self.port)
            self._pool = None
        self._closed_event.set()

    def error_received(self, exc: Exception) -> None:
        self._stats.socket_errors += 1

    def datagram_received(self, data: bytes, addr: Any) -> None:
        s = self._stats
        s.datagrams += 1
        # The fast path, nearly every packet of a call: what the checks below would accept and
        # the reorder buffer hand straight on, told by a few byte compares (1.3 us a packet
        # against 7.8 through parse_packet and push).
        if (
            len(data) == self._fast_len
            and data[0] == PLAIN_RTP_V2
            and data[1] == self._fast_pt
            and data[8:12] == self._fast_ssrc
            and addr[1] == self._source[1]  # type: ignore[index]  # _fast_len is set once pinned
            and addr[0] == self._source[0]  # type: ignore[index]
            and not self._closed
            and self._reorder.take_next((data[2] << 8) | data[3])
        ):
            s.received += 1
            self._last_packet_at = time.monotonic()
            to_batch = self._fast_g711
            if to_batch is None:
                self._deliver_one(data[HEADER_LEN:])
                return
            s.delivered += 1  # a 20 ms G.711 payload, straight on undecoded
            try:
                to_batch(data[HEADER_LEN:])
            except Exception:
                self._callback_failed()
            return
        if self._closed:
            s.dropped_after_close += 1
            return
        source = (addr[0], addr[1])  # IPv6 adds flowinfo and scope_id: compare host and port only
        # Cheap checks first: a flood from a stranger costs a tuple compare per packet.
        if self._source is not None and source != self._source:
            s.dropped_foreign_source += 1
            return
        if self._expected is not None and self._source is None and not self._matches_expected(source):
            s.dropped_foreign_source += 1
            return
        if len(data) > self.max_datagram:
            s.dropped_oversized += 1
            return
        try:
            packet = parse_packet(data)
        except RtpError:
            s.dropped_malformed += 1
            return
        payload = packet.payload
        if not payload:
            s.dropped_empty += 1
            return
        if len(payload) > self._max_payload:
            s.dropped_oversized += 1
            return
        if len(payload) % self.format.sample_width:
            s.dropped_malformed += 1
            return
        if packet.payload_type != self._payload_type and not self._adopt_dynamic_payload_type(
            packet.payload_type, len(payload)
        ):
            s.dropped_payload_type += 1
            return
        if self._source is None:
            self._source = source
            self._log.debug("rtp_source_pinned", source=f"{source[0]}:{source[1]}", ssrc=packet.ssrc)
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                # A new stream from the same sender (Asterisk re-creates its RTP instance on some
                # bridge changes): its numbering starts afresh.
                s.ssrc_changes += 1
                self._deliver(self._reorder.reset())
            self._ssrc = packet.ssrc
        s.received += 1
        self._last_packet_at = time.monotonic()
        frames = self._reorder.push(packet.sequence, payload)
        self._deliver(frames)
        if frames and data[0] == PLAIN_RTP_V2 and not packet.marker:
            self._fast_len = len(data)
            self._fast_pt = packet.payload_type
            self._fast_ssrc = data[8:12]
            self._fast_g711 = self.on_g711 if len(payload) == G711_FRAME_BYTES else None
        else:
            self._fast_len = -1

    # -- the hub's side ----------------------------------------------------------------------------
    def absorb(self) -> None:
        """Take back what the hub's array path accounted for this call since last time (the hub
        calls it before handing the receiver a packet one by one; every reader here, first)."""
        hub = self._hub
        if hub is None:
            return
        took = hub.take_counts(self._lane)
        if took is None:
            return
        n = took.packets
        if took.first_seq >= 0:
            # The array path took the stream's first packets: pinned and started as datagram_received would.
            assert self._expected is not None
            self._source = self._expected
            self._fast_ssrc = took.ssrc.to_bytes(4, "big")
            self._ssrc = took.ssrc
            assert self._payload_type is not None  # G.711's static type: only such streams start by array
            self._fast_len = HEADER_LEN + G711_FRAME_BYTES
            self._fast_pt = self._payload_type
            self._fast_g711 = self.on_g711
            self._reorder.start(took.first_seq)
            self._log.debug("rtp_source_pinned", source=f"{self._source[0]}:{self._source[1]}", ssrc=self._ssrc)
        s = self._stats
        s.datagrams += n
        s.received += n
        s.delivered += n
        self._reorder.took(n)
        at = took.last_at
        self._last_packet_at = at if self._last_packet_at is None else max(at, self._last_packet_at)

    def _changed(self) -> None:
        """The fast path's expectations moved outside the hub's sight: it copies them again."""
        if self._hub is not None and not self._closed:
            self._hub.refresh(self._lane)

    def fast_state(self, concrete_source: bool = False) -> tuple[int, int, int, int] | None:
        """What the hub may take by array for this call: (datagram length, payload type, SSRC, next
        sequence number), when its next packets are 20 ms G.711 straight on to on_g711. Before
        any packet, with a concrete expected source (not a wildcard host), SSRC and sequence number
        are -1: the first plain 20 ms packet from it starts the stream."""
        if (
            concrete_source
            and self._source is None
            and self._ssrc is None
            and self._reorder.next_seq is None
            and self.on_g711 is not None
            and self._payload_type is not None
            and not self._closed
        ):
            return HEADER_LEN + G711_FRAME_BYTES, self._payload_type, -1, -1
        if (
            self._closed
            or self._fast_g711 is None
            or self._fast_len != HEADER_LEN + G711_FRAME_BYTES
            or not self._reorder.in_sequence
        ):
            return None
        next_seq = self._reorder.next_seq
        assert next_seq is not None
        return self._fast_len, self._fast_pt, int.from_bytes(self._fast_ssrc, "big"), next_seq

    # -- internals -------------------------------------------------------------------------------
    def _matches_expected(self, source: tuple[str, int]) -> bool:
        assert self._expected is not None
        host, port = self._expected
        return source[1] == port and (host in WILDCARD_HOSTS or source[0] == host)

    def _adopt_dynamic_payload_type(self, payload_type: int, payload_len: int) -> bool:
        if (
            self.format.payload_type is None
            and self._payload_type is None
            and payload_type in DYNAMIC_PAYLOAD_TYPES
            and payload_len >= self._min_pin_payload
        ):
            self._payload_type = payload_type
            self._log.debug("rtp_payload_type_adopted", payload_type=payload_type, format=self.format.name)
            return True
        return False

    def _deliver(self, frames: list[tuple[int, bytes | None]]) -> None:
        for _, payload in frames:
            self._deliver_one(payload)

    def _deliver_one(self, payload: bytes | None) -> None:
        """One frame in sequence (None: lost) to on_g711 or, decoded, to on_audio."""
        self._stats.delivered += 1
        try:
            if payload is None:
                if self.on_g711 is not None and self._frame_samples == G711_FRAME_BYTES:
                    self.on_g711(None)
                else:
                    self.on_audio(np.zeros(self._frame_samples, dtype=np.int16), self.format.sample_rate)
            elif self.on_g711 is not None and len(payload) == G711_FRAME_BYTES:
                self._frame_samples = G711_FRAME_BYTES  # one byte a sample
                self.on_g711(payload)
            else:
                samples = self.format.decode(payload)
                self._frame_samples = len(samples)
                self.on_audio(samples, self.format.sample_rate)
        except Exception:
            self._callback_failed()

    def _callback_failed(self) -> None:
        self._stats.callback_errors += 1
        n = self._stats.callback_errors
        if n & (n - 1) == 0:  # log the 1st, 2nd, 4th, 8th...: visible, never a flood
            self._log.exception("rtp_on_audio_failed", count=n)

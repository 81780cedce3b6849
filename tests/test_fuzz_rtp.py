"""Hostile RTP: the parser and RtpReceiver.datagram_received under arbitrary and near-valid datagrams.

The receiver is driven directly (no sockets: what a datagram contains and where it claims to come
from is the point, and this way hypothesis can try thousands). tests/test_receiver.py covers the
same paths over real UDP.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_amd.detect.g711 import decode_ulaw
from ari_amd.media import RtpError, RtpReceiver, build_packet, parse_packet
from ari_amd.media.receiver import MAX_DATAGRAM, ReceiverStats

ASTERISK = ("127.0.0.1", 17000)
STRANGER = ("127.0.0.1", 17002)
ELSEWHERE = ("10.9.8.7", 17000)  # Asterisk's port number, another host
SOURCES = [ASTERISK, STRANGER, ELSEWHERE, ("::1", 17000, 0, 0)]
FRAME = 160
DROP_FIELDS = [f for f in ReceiverStats.__dataclass_fields__ if f.startswith("dropped_")]


@st.composite
def near_valid_packets(draw: st.DrawFn) -> bytes:
    """A well-formed packet, then maybe mangled: the inputs a bit-flip or a confused peer makes."""
    data = bytearray(
        build_packet(
            draw(st.binary(max_size=400)),
            sequence=draw(st.integers(0, 65535)),
            timestamp=draw(st.integers(0, 2**32 - 1)),
            ssrc=draw(st.integers(0, 2**32 - 1)),
            payload_type=draw(st.integers(0, 127)),
            marker=draw(st.booleans()),
            csrc=tuple(draw(st.lists(st.integers(0, 2**32 - 1), max_size=15))),
            extension_profile=draw(st.none() | st.integers(0, 65535)),
            extension=draw(st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4])),
            padding=draw(st.integers(0, 255)),
        )
    )
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["flip", "truncate", "append", "set"]))
        if how == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif how == "append":
            data += draw(st.binary(min_size=1, max_size=40))
        elif data:
            data[draw(st.integers(0, min(len(data) - 1, 15)))] = draw(st.integers(0, 255))
    return bytes(data)


datagrams = st.one_of(st.binary(max_size=1600), near_valid_packets())
# Packets the receiver takes (mu-law, pt 0, whole samples), so the accepted path is fuzzed too.
ulaw_packets = st.builds(
    lambda seq, payload, ssrc: build_packet(payload, sequence=seq, timestamp=seq * 160, ssrc=ssrc),
    st.integers(0, 65535),
    st.binary(min_size=1, max_size=1000),
    st.sampled_from([0xA5, 0xA6]),
)


@settings(max_examples=1000)
@given(datagrams)
def test_parse_raises_nothing_but_rtp_error_and_what_it_returns_is_consistent(data: bytes) -> None:
    try:
        p = parse_packet(data)
    except RtpError:
        return
    header = 12 + 4 * len(p.csrc) + (4 + len(p.extension) if p.extension_profile is not None else 0)
    assert header + len(p.payload) + p.padding == len(data)
    assert data[header : header + len(p.payload)] == p.payload
    assert 0 <= p.payload_type <= 127 and not 72 <= p.payload_type <= 76  # RTCP types refused
    # What parses is rebuilt to a packet that parses the same (padding bytes aside).
    again = parse_packet(
        build_packet(
            p.payload,
            sequence=p.sequence,
            timestamp=p.timestamp,
            ssrc=p.ssrc,
            payload_type=p.payload_type,
            marker=p.marker,
            csrc=p.csrc,
            extension_profile=p.extension_profile,
            extension=p.extension,
            padding=p.padding,
        )
    )
    assert again == p


@settings(max_examples=500)
@given(
    payload=st.binary(max_size=1400),
    seq=st.integers(0, 65535),
    ts=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1),
    pt=st.integers(0, 71) | st.integers(77, 127),
)
def test_build_then_parse_round_trips(payload: bytes, seq: int, ts: int, ssrc: int, pt: int) -> None:
    p = parse_packet(build_packet(payload, sequence=seq, timestamp=ts, ssrc=ssrc, payload_type=pt))
    assert (p.payload, p.sequence, p.timestamp, p.ssrc, p.payload_type) == (payload, seq, ts, ssrc, pt)


class Sink:
    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def __call__(self, samples: np.ndarray, rate: int) -> None:
        assert rate == 8000
        self.frames.append(samples)

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, dtype=np.int16)


def ulaw(seq: int, payload: bytes, ssrc: int = 0xA5, pt: int = 0) -> bytes:
    return build_packet(payload, sequence=seq, timestamp=seq * FRAME, ssrc=ssrc, payload_type=pt)


@settings(max_examples=300)
@given(
    traffic=st.lists(st.tuples(datagrams | ulaw_packets, st.sampled_from(SOURCES)), max_size=60),
    expected=st.booleans(),
    close_at=st.none() | st.integers(0, 60),
)
def test_any_datagrams_from_anywhere_never_raise_and_every_one_is_counted(
    traffic: list[tuple[bytes, tuple]], expected: bool, close_at: int | None
) -> None:
    sink = Sink()
    rx = RtpReceiver("ulaw", sink, expected_source=ASTERISK if expected else None)
    for i, (data, addr) in enumerate(traffic):
        if i == close_at:
            rx.close()
        rx.datagram_received(data, addr)
    rx.flush()
    s = rx.stats
    assert s.datagrams == len(traffic)
    assert s.received + sum(getattr(s, f) for f in DROP_FIELDS) == s.datagrams  # each one: taken or one drop
    assert s.delivered == len(sink.frames)
    assert all(f.dtype == np.int16 and 0 < len(f) <= 960 for f in sink.frames)  # <= 120 ms each
    if expected:
        assert rx.source in (None, ASTERISK)


@settings(max_examples=200)
@given(size=st.integers(MAX_DATAGRAM + 1, 9000))
def test_oversized_datagrams_are_dropped_before_parsing(size: int) -> None:
    rx = RtpReceiver("ulaw", Sink())
    rx.datagram_received(ulaw(1, b"\xff" * (size - 12)), ASTERISK)
    assert rx.stats.dropped_oversized == 1 and rx.source is None


@st.composite
def legit_and_spoofed(draw: st.DrawFn) -> tuple[list[bytes], list[tuple[int, bytes]]]:
    n = draw(st.integers(2, 40))
    start = draw(st.integers(0, 65535))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    legit = [ulaw((start + i) % 65536, rng.integers(0, 256, FRAME, dtype=np.uint8).tobytes()) for i in range(n)]
    # Spoofs: garbage, or well-aimed RTP (same SSRC, the next sequence numbers, a loud payload),
    # each inserted after legit packet k (k >= 1: the first legit packet has pinned the source).
    aimed = st.builds(
        lambda off, pt, ssrc: ulaw((start + off) % 65536, b"\x00" * FRAME, ssrc=ssrc, pt=pt),
        st.integers(-5, n + 5),
        st.sampled_from([0, 0, 8, 96]),
        st.sampled_from([0xA5, 0xA5, 0xBEEF]),
    )
    spoofs = draw(st.lists(st.tuples(st.integers(1, n), aimed | datagrams), max_size=30))
    return legit, spoofs


@settings(max_examples=300)
@given(stream=legit_and_spoofed(), spoof_from=st.sampled_from([STRANGER, ELSEWHERE]), pinned_first=st.booleans())
def test_spoofed_packets_from_a_foreign_source_change_nothing_delivered(
    stream: tuple[list[bytes], list[tuple[int, bytes]]], spoof_from: tuple[str, int], pinned_first: bool
) -> None:
    legit, spoofs = stream
    clean = Sink()
    rx_clean = RtpReceiver("ulaw", clean)
    for data in legit:
        rx_clean.datagram_received(data, ASTERISK)
    rx_clean.flush()

    attacked = Sink()
    # pinned_first: the address came from externalMedia's channel variables before any packet,
    # so spoofs may even come first; otherwise the first legit packet pins the source.
    rx = RtpReceiver("ulaw", attacked, expected_source=ASTERISK if pinned_first else None)
    by_slot: dict[int, list[bytes]] = {}
    for after, data in spoofs:
        by_slot.setdefault(0 if pinned_first and after == 1 else after, []).append(data)
    for data in by_slot.get(0, []):
        rx.datagram_received(data, spoof_from)
    for k, data in enumerate(legit, start=1):
        rx.datagram_received(data, ASTERISK)
        for spoof in by_slot.get(k, []):
            rx.datagram_received(spoof, spoof_from)
    rx.flush()

    np.testing.assert_array_equal(attacked.audio, clean.audio)
    np.testing.assert_array_equal(
        attacked.audio, np.concatenate([decode_ulaw(parse_packet(p).payload) for p in legit])
    )
    assert rx.stats.dropped_foreign_source == len(spoofs)
    assert rx.source == ASTERISK


def test_a_spoof_aimed_at_the_pinning_moment_loses_to_the_expected_source() -> None:
    # Without the announced address the first valid sender wins (strictrtp's rule); with it, a
    # stranger that races Asterisk's first packet is refused.
    rx = RtpReceiver("ulaw", Sink(), expected_source=ASTERISK)
    rx.datagram_received(ulaw(7, b"\x00" * FRAME), STRANGER)
    rx.datagram_received(ulaw(8, b"\xff" * FRAME), ASTERISK)
    assert rx.source == ASTERISK and rx.stats.dropped_foreign_source == 1
    assert rx.stats.received == 1

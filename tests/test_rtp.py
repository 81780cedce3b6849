"""RTP packet parsing and the reorder buffer: no sockets here."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_amd.media.reorder import MAX_DROPOUT, ReorderBuffer
from ari_amd.media.rtp import (
    RtpError,
    build_packet,
    parse_packet,
    seq_add,
    seq_diff,
)

# -- packets -----------------------------------------------------------------------------------


def test_asterisk_style_ulaw_packet_round_trips() -> None:
    payload = bytes(range(160))
    data = build_packet(payload, sequence=4242, timestamp=160 * 7, ssrc=0xDEADBEEF, payload_type=0)
    assert len(data) == 172
    p = parse_packet(data)
    assert (p.payload_type, p.sequence, p.timestamp, p.ssrc, p.marker) == (0, 4242, 1120, 0xDEADBEEF, False)
    assert p.payload == payload
    assert p.csrc == () and p.extension_profile is None and p.padding == 0


def test_every_header_field_round_trips() -> None:
    data = build_packet(
        b"\x01\x02\x03",
        sequence=65535,
        timestamp=2**32 - 1,
        ssrc=1,
        payload_type=118,
        marker=True,
        csrc=(7, 8, 9),
        extension_profile=0xBEDE,
        extension=b"\xaa" * 8,
        padding=5,
    )
    p = parse_packet(data)
    assert p.payload == b"\x01\x02\x03"
    assert (p.payload_type, p.sequence, p.timestamp, p.marker) == (118, 65535, 2**32 - 1, True)
    assert p.csrc == (7, 8, 9)
    assert (p.extension_profile, p.extension) == (0xBEDE, b"\xaa" * 8)
    assert p.padding == 5


@given(
    payload=st.binary(max_size=400),
    sequence=st.integers(0, 65535),
    timestamp=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1),
    payload_type=st.integers(0, 127).filter(lambda pt: not 72 <= pt <= 76),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
    extension=st.one_of(st.none(), st.binary(max_size=40).map(lambda b: b[: len(b) // 4 * 4])),
    padding=st.integers(0, 255),
)
def test_build_then_parse_is_identity(
    payload: bytes,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload_type: int,
    marker: bool,
    csrc: tuple[int, ...],
    extension: bytes | None,
    padding: int,
) -> None:
    data = build_packet(
        payload,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload_type=payload_type,
        marker=marker,
        csrc=csrc,
        extension_profile=None if extension is None else 0x1000,
        extension=extension or b"",
        padding=padding,
    )
    p = parse_packet(data)
    assert (p.payload, p.sequence, p.timestamp, p.ssrc, p.payload_type, p.marker, p.csrc) == (
        payload,
        sequence,
        timestamp,
        ssrc,
        payload_type,
        marker,
        csrc,
    )
    assert p.extension == (extension or b"")
    assert p.padding == padding


@settings(max_examples=2000)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_rtp_error(data: bytes) -> None:
    try:
        p = parse_packet(data)
    except RtpError:
        return
    assert len(p.payload) <= len(data) - 12


@settings(max_examples=1000)
@given(header=st.binary(min_size=1, max_size=1), rest=st.binary(max_size=100))
def test_version_two_garbage_raises_only_rtp_error(header: bytes, rest: bytes) -> None:
    # Force version 2 so the parser gets past the first check and into the length arithmetic.
    data = bytes([0x80 | (header[0] & 0x3F)]) + rest
    with contextlib.suppress(RtpError):
        parse_packet(data)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "shorter"),
        (b"\x80\x00" + bytes(9), "shorter"),
        (b"\x40\x00" + bytes(10), "version"),  # version 1
        (b"\x00\x00" + bytes(10), "version"),  # version 0: STUN and the like
        (b"\x8f\x00" + bytes(10 + 4 * 14), "CSRC"),  # 15 CSRCs announced, 14 present
        (b"\x90\x00" + bytes(10) + b"\x00\x01", "extension header"),
        (b"\x90\x00" + bytes(10) + b"\x00\x00\x00\x02" + bytes(4), "extension of 2 words"),
        (b"\xa0\x00" + bytes(10) + b"\x00", "padding of 0"),
        (b"\xa0\x00" + bytes(10) + b"\x01\x02\x05", "padding of 5"),
        (b"\x80\xc8" + bytes(10), "RTCP"),  # a sender report (type 200) on the RTP port
    ],
)
def test_malformed_packets_are_named(data: bytes, why: str) -> None:
    with pytest.raises(RtpError, match=why):
        parse_packet(data)


def test_padding_only_packet_has_an_empty_payload() -> None:
    p = parse_packet(b"\xa0\x00" + bytes(10) + b"\x00\x00\x03")
    assert p.payload == b"" and p.padding == 3


def test_build_rejects_what_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        build_packet(b"", sequence=0, timestamp=0, ssrc=0, payload_type=128)
    with pytest.raises(ValueError):
        build_packet(b"", sequence=0, timestamp=0, ssrc=0, extension_profile=1, extension=b"abc")
    with pytest.raises(ValueError):
        build_packet(b"", sequence=0, timestamp=0, ssrc=0, csrc=tuple(range(16)))


def test_sequence_and_timestamp_wrap_when_built() -> None:
    p = parse_packet(build_packet(b"x", sequence=65536 + 3, timestamp=2**32 + 5, ssrc=0))
    assert (p.sequence, p.timestamp) == (3, 5)


def test_header_is_network_byte_order() -> None:
    data = build_packet(b"", sequence=0x0102, timestamp=0x03040506, ssrc=0x0708090A, payload_type=8)
    assert data == b"\x80\x08" + struct.pack("!HII", 0x0102, 0x03040506, 0x0708090A)


# -- sequence arithmetic -----------------------------------------------------------------------


def test_seq_diff_across_the_wrap() -> None:
    assert seq_diff(2, 65534) == 4
    assert seq_diff(65534, 2) == -4
    assert seq_diff(0, 65535) == 1
    assert seq_diff(100, 100) == 0
    assert seq_diff(32767, 0) == 32767
    assert seq_diff(32768, 0) == -32768


def test_seq_add_wraps_both_ways() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_add(0, -1) == 65535
    assert seq_add(65530, 10) == 4


@given(st.integers(0, 65535), st.integers(-32768, 32767))
def test_seq_diff_inverts_seq_add(a: int, n: int) -> None:
    assert seq_diff(seq_add(a, n), a) == n


# -- reorder buffer ----------------------------------------------------------------------------


def _feed(buf: ReorderBuffer[str], seqs: list[int]) -> list[tuple[int, str | None]]:
    out: list[tuple[int, str | None]] = []
    for s in seqs:
        out += buf.push(s, f"p{s}")
    return out


def test_in_order_stream_passes_through_without_delay() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(window=4)
    for s in range(10):
        assert buf.push(s, f"p{s}") == [(s, f"p{s}")]
    assert buf.stats.lost == buf.stats.reordered == 0


def test_swapped_packets_come_out_in_order() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(window=4)
    out = _feed(buf, [0, 2, 1, 3])
    assert out == [(0, "p0"), (1, "p1"), (2, "p2"), (3, "p3")]
    assert buf.stats.reordered == 1
    assert buf.stats.lost == 0


def test_a_loss_is_declared_after_the_window_and_kept_in_place() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(window=3)
    assert _feed(buf, [10, 12, 13]) == [(10, "p10")]  # waiting for 11
    out = buf.push(14, "p14")  # 14 is three ahead of 11: give 11 up
    assert out == [(11, None), (12, "p12"), (13, "p13"), (14, "p14")]
    assert buf.stats.lost == 1


def test_a_packet_after_its_loss_was_declared_is_late_and_dropped() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(window=2)
    _feed(buf, [0, 2, 3])
    assert buf.push(1, "p1") == []
    assert buf.stats.late == 1 and buf.stats.lost == 1


def test_duplicates_are_dropped_whether_buffered_or_delivered() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(window=4)
    out = _feed(buf, [0, 1, 3, 3, 1, 2])
    assert [s for s, _ in out] == [0, 1, 2, 3]
    assert buf.stats.duplicates == 2
    assert buf.stats.late == 0


def test_reordering_across_the_sequence_wrap() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(window=4)
    out = _feed(buf, [65533, 65535, 65534, 1, 0, 2])
    assert [s for s, _ in out] == [65533, 65534, 65535, 0, 1, 2]
    assert all(item is not None for _, item in out)
    assert buf.stats.reordered == 2


def test_loss_across_the_wrap_is_filled() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(window=1)
    out = _feed(buf, [65534, 1])
    assert out == [(65534, "p65534"), (65535, None), (0, None), (1, "p1")]
    assert buf.stats.lost == 2


def test_flush_delivers_what_waits_behind_a_gap() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(window=8)
    assert _feed(buf, [0, 2, 3]) == [(0, "p0")]
    assert buf.flush() == [(1, None), (2, "p2"), (3, "p3")]
    assert buf.pending == 0
    assert buf.push(4, "p4") == [(4, "p4")]


def test_a_lone_wild_jump_is_dropped_but_a_confirmed_one_restarts_the_stream() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(window=2)
    _feed(buf, [100, 101])
    far = seq_add(101, MAX_DROPOUT + 50)
    assert buf.push(far, "stray") == []
    assert buf.push(102, "p102") == [(102, "p102")]  # the stream goes on; the stray is forgotten
    assert buf.stats.out_of_range == 1
    # A sender that restarted its numbering: two packets in sequence far away confirm it.
    out = _feed(buf, [30000, 30001, 30002])
    assert [s for s, _ in out] == [30000, 30001, 30002]
    assert buf.stats.resyncs == 1
    assert buf.stats.lost == 0  # no 10-minute silence across the restart


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ReorderBuffer(window=0)


@settings(max_examples=300)
@given(
    st.lists(st.integers(0, 60), min_size=1, max_size=80),
    st.integers(0, 65535),
    st.integers(1, 6),
)
def test_output_is_strictly_consecutive_whatever_arrives(offsets: list[int], start: int, window: int) -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(window=window)
    out: list[tuple[int, int | None]] = []
    for o in offsets:
        out += buf.push(seq_add(start, o), o)
    out += buf.flush()
    seqs = [s for s, _ in out]
    assert all(seq_diff(b, a) == 1 for a, b in zip(seqs, seqs[1:]))
    # Every delivered item sits at its own sequence number.
    assert all(item is None or seq_add(start, item) == s for s, item in out)
    # Nothing delivered twice, and every arrival is accounted for exactly once.
    delivered = sum(1 for _, item in out if item is not None)
    st_ = buf.stats
    assert delivered + st_.duplicates + st_.late + st_.out_of_range == len(offsets)

"""RTP packets (RFC 3550 section 5.1): parse and validate what arrives, build what test senders send.

Everything that comes off a socket is untrusted: `parse_packet` either returns a packet whose every
length was checked against the datagram, or raises `RtpError`. It raises nothing else.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

RTP_VERSION = 2
HEADER_LEN = 12
CSRC_LEN = 4
EXTENSION_HEADER_LEN = 4  # profile (16 bits) + length in 32-bit words (16 bits)
SEQ_MOD = 1 << 16
TIMESTAMP_MOD = 1 << 32
MAX_PAYLOAD_TYPE = 127
# RFC 3551 section 6: dynamic payload types, the range Asterisk picks slin16's number from.
DYNAMIC_PAYLOAD_TYPES = range(96, 128)
# RTCP packet types 200-204 land on RTP payload types 72-76 once the marker bit is read off
# (RFC 5761 section 4): a stray RTCP packet on our port must not pass for audio.
RTCP_CONFLICT_PAYLOAD_TYPES = range(72, 77)

_HEADER = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")


class RtpError(ValueError):
    """A datagram that is not a well-formed RTP packet."""


class RtpPacket(NamedTuple):
    # A NamedTuple, not a frozen dataclass: built 50 times a second per call, and a frozen
    # dataclass's __init__ costs about a microsecond more.
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    padding: int = 0  # padding bytes the sender added (already stripped from payload)


def parse_packet(data: bytes) -> RtpPacket:
    """Validate and parse one datagram; raises RtpError for anything malformed."""
    if len(data) < HEADER_LEN:
        raise RtpError(f"{len(data)} bytes is shorter than an RTP header")
    b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {b0 >> 6}, expected {RTP_VERSION}")
    has_padding = bool(b0 & 0x20)
    has_extension = bool(b0 & 0x10)
    csrc_count = b0 & 0x0F
    marker = bool(b1 & 0x80)
    payload_type = b1 & 0x7F
    if payload_type in RTCP_CONFLICT_PAYLOAD_TYPES:
        raise RtpError(f"payload type {payload_type} is an RTCP packet type")

    offset = HEADER_LEN + csrc_count * CSRC_LEN
    if len(data) < offset:
        raise RtpError(f"{csrc_count} CSRCs announced but the packet has {len(data)} bytes")
    csrc = struct.unpack_from(f"!{csrc_count}I", data, HEADER_LEN) if csrc_count else ()

    extension_profile: int | None = None
    extension = b""
    if has_extension:
        if len(data) < offset + EXTENSION_HEADER_LEN:
            raise RtpError("extension bit set but no extension header")
        extension_profile, words = _EXTENSION.unpack_from(data, offset)
        offset += EXTENSION_HEADER_LEN
        end = offset + words * 4
        if len(data) < end:
            raise RtpError(f"extension of {words} words runs past the packet end")
        extension = bytes(data[offset:end])
        offset = end

    end = len(data)
    padding = 0
    if has_padding:
        # The last octet counts the padding, itself included (RFC 3550 5.1): zero is invalid.
        padding = data[-1]
        if padding == 0 or end - padding < offset:
            raise RtpError(f"padding of {padding} bytes does not fit the packet")
        end -= padding
    return RtpPacket(
        payload_type=payload_type,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=marker,
        csrc=tuple(csrc),
        extension_profile=extension_profile,
        extension=extension,
        padding=padding,
    )


def build_packet(
    payload: bytes,
    *,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload_type: int = 0,
    marker: bool = False,
    csrc: tuple[int, ...] = (),
    extension_profile: int | None = None,
    extension: bytes = b"",
    padding: int = 0,
) -> bytes:
    """Serialise one RTP packet (for test senders and benchmarks)."""
    if not 0 <= payload_type <= MAX_PAYLOAD_TYPE:
        raise ValueError(f"payload type {payload_type} is outside 0-{MAX_PAYLOAD_TYPE}")
    if len(csrc) > 15:
        raise ValueError("at most 15 CSRCs fit the header")
    if len(extension) % 4:
        raise ValueError("an extension is a whole number of 32-bit words")
    if not 0 <= padding <= 255:
        raise ValueError("padding is 0-255 bytes")
    b0 = (RTP_VERSION << 6) | (0x20 if padding else 0) | len(csrc)
    if extension_profile is not None:
        b0 |= 0x10
    b1 = (0x80 if marker else 0) | payload_type
    parts = [_HEADER.pack(b0, b1, sequence % SEQ_MOD, timestamp % TIMESTAMP_MOD, ssrc & 0xFFFFFFFF)]
    if csrc:
        parts.append(struct.pack(f"!{len(csrc)}I", *csrc))
    if extension_profile is not None:
        parts.append(_EXTENSION.pack(extension_profile, len(extension) // 4))
        parts.append(extension)
    parts.append(payload)
    if padding:
        parts.append(bytes(padding - 1) + bytes([padding]))
    return b"".join(parts)


def seq_diff(a: int, b: int) -> int:
    """a - b for 16-bit sequence numbers that wrap: the result is in [-32768, 32767].

    seq_diff(2, 65534) == 4 (a is four packets after b across the wrap); seq_diff(65534, 2) == -4.
    """
    d = (a - b) % SEQ_MOD
    return d - SEQ_MOD if d >= SEQ_MOD // 2 else d


def seq_add(seq: int, n: int) -> int:
    """The sequence number n packets after seq (n may be negative)."""
    return (seq + n) % SEQ_MOD

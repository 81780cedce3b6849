"""RtpReceiver over real UDP sockets on loopback: pinning, reordering, loss, hostile input, ports."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from ari_amd.detect.g711 import decode_ulaw, encode_ulaw
from ari_amd.media import PortPool, PortPoolExhausted, RtpReceiver, build_packet

HOST = "127.0.0.1"
ULAW_FRAME = 160  # 20 ms at 8 kHz
SLIN16_FRAME = 320  # 20 ms at 16 kHz


class Collector:
    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.rates: set[int] = set()

    def __call__(self, samples: np.ndarray, sample_rate: int) -> None:
        self.frames.append(samples)
        self.rates.add(sample_rate)

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, dtype=np.int16)


@pytest.fixture
def free_range() -> tuple[int, int]:
    # A block of ports the OS just had free: bind an ephemeral port and take its neighbours.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        base = s.getsockname()[1]
    first = base if base + 8 <= 65535 else base - 8
    return first, first + 7


@pytest.fixture
async def pool(free_range: tuple[int, int]) -> AsyncIterator[PortPool]:
    yield PortPool(*free_range, host=HOST)


def tone_frames(n_frames: int, hz: float = 400.0, rate: int = 8000, frame: int = ULAW_FRAME) -> list[np.ndarray]:
    t = np.arange(n_frames * frame) / rate
    x = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
    return [x[i * frame : (i + 1) * frame] for i in range(n_frames)]


def ulaw_packet(seq: int, payload: bytes, ssrc: int = 0x1234, pt: int = 0) -> bytes:
    return build_packet(payload, sequence=seq, timestamp=seq * ULAW_FRAME, ssrc=ssrc, payload_type=pt)


async def wait_for(cond: object, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


def send(sock: socket.socket, receiver: RtpReceiver, data: bytes) -> None:
    assert receiver.port is not None
    sock.sendto(data, (HOST, receiver.port))


async def test_ulaw_stream_is_decoded_in_order(pool: PortPool, sender: socket.socket) -> None:
    got = Collector()
    rx = await RtpReceiver.open(pool, "ulaw", got)
    frames = tone_frames(25)
    encoded = [encode_ulaw(f).tobytes() for f in frames]
    for i, payload in enumerate(encoded):
        send(sender, rx, ulaw_packet(1000 + i, payload))
    await wait_for(lambda: len(got.frames) == 25)
    assert got.rates == {8000}
    expected = np.concatenate([decode_ulaw(p) for p in encoded])
    np.testing.assert_array_equal(got.audio, expected)
    assert all(f.dtype == np.int16 for f in got.frames)
    st = rx.stats
    assert (st.received, st.delivered, st.lost, st.dropped_foreign_source) == (25, 25, 0, 0)
    assert rx.source == sender.getsockname()
    assert rx.external_host == f"{HOST}:{rx.port}"
    await rx.aclose()


async def test_packets_from_a_second_sender_are_dropped_and_counted(
    pool: PortPool, sender: socket.socket, spoofer: socket.socket
) -> None:
    got = Collector()
    rx = await RtpReceiver.open(pool, "ulaw", got)
    quiet = b"\xff" * ULAW_FRAME
    loud = b"\x00" * ULAW_FRAME
    send(sender, rx, ulaw_packet(1, quiet))
    await wait_for(lambda: rx.stats.received == 1)
    for seq in range(2, 12):
        send(spoofer, rx, ulaw_packet(seq, loud))  # same SSRC, next numbers: still not ours
        send(sender, rx, ulaw_packet(seq, quiet))
    await wait_for(lambda: rx.stats.datagrams == 21)
    st = rx.stats
    assert st.dropped_foreign_source == 10
    assert st.received == 11
    assert not np.any(got.audio)  # not one loud sample got through
    await rx.aclose()


async def test_expected_source_wins_over_the_first_sender(
    pool: PortPool, sender: socket.socket, spoofer: socket.socket
) -> None:
    got = Collector()
    rx = await RtpReceiver.open(pool, "ulaw", got, expected_source=sender.getsockname())
    send(spoofer, rx, ulaw_packet(1, b"\x00" * ULAW_FRAME))  # arrives first, is not Asterisk
    await wait_for(lambda: rx.stats.datagrams == 1)
    send(sender, rx, ulaw_packet(5, b"\xff" * ULAW_FRAME))
    await wait_for(lambda: rx.stats.received == 1)
    assert rx.stats.dropped_foreign_source == 1
    assert rx.source == sender.getsockname()
    await rx.aclose()


async def test_expected_source_learned_late_repins(
    pool: PortPool, sender: socket.socket, spoofer: socket.socket
) -> None:
    # The externalMedia response (with Asterisk's address) can come after the first packets.
    got = Collector()
    rx = await RtpReceiver.open(pool, "ulaw", got)
    send(spoofer, rx, ulaw_packet(1, b"\x00" * ULAW_FRAME))
    await wait_for(lambda: rx.stats.received == 1)
    assert rx.source == spoofer.getsockname()
    rx.expect_source(*sender.getsockname())
    send(spoofer, rx, ulaw_packet(2, b"\x00" * ULAW_FRAME))
    send(sender, rx, ulaw_packet(9, b"\xff" * ULAW_FRAME))
    await wait_for(lambda: rx.stats.datagrams == 3)
    assert rx.source == sender.getsockname()
    assert rx.stats.dropped_foreign_source == 1
    await rx.aclose()


async def test_wildcard_expected_address_pins_the_port_only(pool: PortPool, sender: socket.socket) -> None:
    rx = await RtpReceiver.open(pool, "ulaw", Collector(), expected_source=("0.0.0.0", sender.getsockname()[1]))
    send(sender, rx, ulaw_packet(1, b"\xff" * ULAW_FRAME))
    await wait_for(lambda: rx.stats.received == 1)
    await rx.aclose()


async def test_reordered_and_lost_packets_come_out_in_order_with_silence(
    pool: PortPool, sender: socket.socket
) -> None:
    got = Collector()
    rx = await RtpReceiver.open(pool, "ulaw", got, reorder_window=3)
    frames = tone_frames(12)
    encoded = [encode_ulaw(f).tobytes() for f in frames]
    # Seq 65533.. across the wrap; frame 2 and 3 swapped, frame 5 lost, frame 8 arrives too late.
    base = 65533
    order = [0, 1, 3, 2, 4, 6, 7, 9, 10, 11, 8]
    for i in order:
        send(sender, rx, ulaw_packet((base + i) % 65536, encoded[i]))
    await wait_for(lambda: rx.stats.datagrams == len(order))
    rx.flush()
    st = rx.stats
    assert st.lost == 2  # frame 5, and frame 8 whose wait ended when 11 arrived
    assert st.reordered == 1
    assert st.late == 1
    assert len(got.frames) == 12
    for i, f in enumerate(got.frames):
        if i in (5, 8):
            assert len(f) == ULAW_FRAME and not np.any(f), f"frame {i} should be silence"
        else:
            np.testing.assert_array_equal(f, decode_ulaw(encoded[i]))
    await rx.aclose()


async def test_on_g711_takes_20ms_payloads_undecoded_and_the_rest_in_order(
    pool: PortPool, sender: socket.socket, spoofer: socket.socket
) -> None:
    # One ordered stream across both callbacks: 20 ms payloads (and 20 ms losses, as None) to
    # on_g711, a 10 ms packet decoded to on_audio; spoofs, duplicates, a marker bit and an SSRC
    # change in the middle of the fast path change nothing of it.
    order: list[tuple[str, object]] = []
    rx = await RtpReceiver.open(
        pool, "ulaw", lambda samples, rate: order.append(("audio", len(samples))),
        on_g711=lambda payload: order.append(("g711", payload)),
    )
    encoded = [encode_ulaw(f).tobytes() for f in tone_frames(10)]
    for i in range(4):
        send(sender, rx, ulaw_packet(100 + i, encoded[i]))
    send(spoofer, rx, ulaw_packet(104, b"\x00" * ULAW_FRAME))  # the next number, from a stranger
    send(sender, rx, ulaw_packet(103, encoded[3]))  # a duplicate
    marked = bytearray(ulaw_packet(104, encoded[4]))
    marked[1] |= 0x80
    send(sender, rx, bytes(marked))
    send(sender, rx, ulaw_packet(105, encoded[5][:80]))  # 10 ms
    send(sender, rx, ulaw_packet(110, encoded[6]))  # 106-109 lost: flushed as silence
    send(sender, rx, ulaw_packet(7, encoded[7], ssrc=0x9999))  # a new stream from the same sender
    send(sender, rx, ulaw_packet(8, encoded[8], ssrc=0x9999))
    await wait_for(lambda: rx.stats.datagrams == 11)
    rx.flush()
    expected = [("g711", encoded[i]) for i in range(5)] + [("audio", 80)]
    expected += [("audio", 80)] * 4  # losses after a 10 ms packet are 10 ms of silence, decoded
    expected += [("g711", encoded[6]), ("g711", encoded[7]), ("g711", encoded[8])]
    assert order == expected
    st = rx.stats
    assert (st.dropped_foreign_source, st.duplicates, st.lost, st.ssrc_changes) == (1, 1, 4, 1)
    await rx.aclose()


async def test_on_g711_gets_a_lost_20ms_frame_as_none(pool: PortPool, sender: socket.socket) -> None:
    got: list[bytes | None] = []
    rx = await RtpReceiver.open(pool, "alaw", Collector(), on_g711=got.append)
    for seq in (1, 2, 4):
        send(sender, rx, ulaw_packet(seq, bytes([seq]) * ULAW_FRAME, pt=8))
    await wait_for(lambda: rx.stats.datagrams == 3)
    rx.flush()
    assert got == [b"\x01" * ULAW_FRAME, b"\x02" * ULAW_FRAME, None, b"\x04" * ULAW_FRAME]
    await rx.aclose()


async def test_wrong_payload_type_malformed_and_oversized_are_dropped(
    pool: PortPool, sender: socket.socket
) -> None:
    got = Collector()
    rx = await RtpReceiver.open(pool, "ulaw", got)
    send(sender, rx, ulaw_packet(1, b"\xff" * ULAW_FRAME))
    send(sender, rx, ulaw_packet(2, b"\xff" * ULAW_FRAME, pt=8))  # A-law on a mu-law stream
    send(sender, rx, ulaw_packet(3, b"\xff" * ULAW_FRAME, pt=101))  # telephone-event
    send(sender, rx, b"\x80\x00\x00")  # truncated header
    send(sender, rx, b"GET / HTTP/1.1\r\n\r\n")  # not RTP at all
    send(sender, rx, ulaw_packet(4, b"\xff" * 1400))  # 175 ms of audio in one packet
    send(sender, rx, b"\x80\x00" + bytes(10) + bytes(1600))  # bigger than an MTU
    send(sender, rx, ulaw_packet(5, b""))  # a keep-alive
    send(sender, rx, ulaw_packet(6, b"\xff" * ULAW_FRAME))
    await wait_for(lambda: rx.stats.datagrams == 9)
    st = rx.stats
    assert st.dropped_payload_type == 2
    assert st.dropped_malformed == 2
    assert st.dropped_oversized == 2
    assert st.dropped_empty == 1
    assert st.received == 2
    # Frames 2-5 never arrived as audio: they are losses, filled once 6 shows up past the window.
    rx.flush()
    assert len(got.audio) == 6 * ULAW_FRAME
    await rx.aclose()


async def test_slin16_takes_the_first_dynamic_payload_type_and_reads_big_endian(
    pool: PortPool, sender: socket.socket
) -> None:
    got = Collector()
    rx = await RtpReceiver.open(pool, "slin16", got)
    frames = tone_frames(5, rate=16000, frame=SLIN16_FRAME)

    def pkt(seq: int, samples: np.ndarray, pt: int) -> bytes:
        return build_packet(samples.astype(">i2").tobytes(), sequence=seq, timestamp=seq * 320, ssrc=9, payload_type=pt)

    send(sender, rx, build_packet(b"\x01\x0a\x00\xa0", sequence=0, timestamp=0, ssrc=9, payload_type=101))
    send(sender, rx, pkt(1, frames[0], 0))  # a static type: never slin16
    for i, f in enumerate(frames[1:], start=1):
        send(sender, rx, pkt(1 + i, f, 118))
    send(sender, rx, pkt(6, frames[0], 119))  # a second dynamic type is not adopted
    send(sender, rx, build_packet(b"\x00\x01\x02", sequence=7, timestamp=0, ssrc=9, payload_type=118))
    await wait_for(lambda: rx.stats.datagrams == 8)
    assert rx.payload_type == 118
    assert got.rates == {16000}
    np.testing.assert_array_equal(got.audio, np.concatenate(frames[1:]))
    assert rx.stats.dropped_payload_type == 3
    assert rx.stats.dropped_malformed == 1  # an odd number of bytes is not 16-bit audio
    await rx.aclose()


async def test_a_new_ssrc_restarts_the_numbering(pool: PortPool, sender: socket.socket) -> None:
    got = Collector()
    rx = await RtpReceiver.open(pool, "ulaw", got)
    for seq in (10, 11, 12):
        send(sender, rx, ulaw_packet(seq, b"\xff" * ULAW_FRAME, ssrc=1))
    for seq in (50000, 50001):
        send(sender, rx, ulaw_packet(seq, b"\xff" * ULAW_FRAME, ssrc=2))
    await wait_for(lambda: len(got.frames) == 5)
    assert rx.stats.ssrc_changes == 1
    assert rx.stats.lost == 0
    await rx.aclose()


async def test_a_failing_callback_is_counted_and_does_not_stop_the_stream(
    pool: PortPool, sender: socket.socket
) -> None:
    calls = []

    def flaky(samples: np.ndarray, rate: int) -> None:
        calls.append(len(samples))
        if len(calls) % 2:
            raise RuntimeError("detector bug")

    rx = await RtpReceiver.open(pool, "ulaw", flaky)
    for seq in range(6):
        send(sender, rx, ulaw_packet(seq, b"\xff" * ULAW_FRAME))
    await wait_for(lambda: len(calls) == 6)
    assert rx.stats.callback_errors == 3
    await rx.aclose()


async def test_last_packet_at_moves_only_for_accepted_packets(
    pool: PortPool, sender: socket.socket, spoofer: socket.socket
) -> None:
    rx = await RtpReceiver.open(pool, "ulaw", Collector())
    assert rx.last_packet_at is None
    before = time.monotonic()
    send(sender, rx, ulaw_packet(1, b"\xff" * ULAW_FRAME))
    await wait_for(lambda: rx.stats.received == 1)
    stamp = rx.last_packet_at
    assert stamp is not None and stamp >= before
    await asyncio.sleep(0.01)
    send(spoofer, rx, ulaw_packet(2, b"\xff" * ULAW_FRAME))
    send(sender, rx, b"junk")
    await wait_for(lambda: rx.stats.datagrams == 3)
    assert rx.last_packet_at == stamp
    await rx.aclose()


async def test_hostile_datagrams_never_break_the_receiver(pool: PortPool, sender: socket.socket) -> None:
    got = Collector()
    rx = await RtpReceiver.open(pool, "ulaw", got)
    rng = np.random.default_rng(7)
    n = 0
    for _ in range(400):
        size = int(rng.integers(0, 400))
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        if rng.random() < 0.5 and data:
            data = bytes([0x80 | (data[0] & 0x3F)]) + data[1:]  # version 2: deeper into the parser
        send(sender, rx, data)
        n += 1
        if n % 50 == 0:
            await wait_for(lambda n=n: rx.stats.datagrams == n)  # stay within the socket's buffer
    send(sender, rx, ulaw_packet(1, b"\xff" * ULAW_FRAME))
    n += 1
    await wait_for(lambda: rx.stats.datagrams == n)
    st = rx.stats
    dropped = st.dropped_malformed + st.dropped_payload_type + st.dropped_oversized + st.dropped_empty
    assert st.received + dropped + st.dropped_foreign_source == n
    await rx.aclose()


async def test_close_releases_the_port_for_the_next_call(pool: PortPool) -> None:
    rx = await RtpReceiver.open(pool, "ulaw", Collector())
    port = rx.port
    assert port in pool.in_use
    await rx.aclose()
    await rx.wait_closed()
    assert port not in pool.in_use
    rx.close()  # idempotent
    # The port can be bound again by anyone.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, port))


async def test_ports_are_handed_out_round_robin(pool: PortPool) -> None:
    a = await RtpReceiver.open(pool, "ulaw", Collector())
    await a.aclose()
    b = await RtpReceiver.open(pool, "ulaw", Collector())
    assert b.port != a.port  # a just-freed port is handed out last
    await b.aclose()


async def test_pool_exhaustion_is_a_clear_error(free_range: tuple[int, int]) -> None:
    first = free_range[0]
    pool = PortPool(first, first + 2, host=HOST)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind((HOST, first + 1))  # another process holds one port of the range
    try:
        a = await RtpReceiver.open(pool, "ulaw", Collector())
        b = await RtpReceiver.open(pool, "ulaw", Collector())
        assert {a.port, b.port} == {first, first + 2}
        with pytest.raises(PortPoolExhausted, match=rf"{first}-{first + 2}.*2 held by our calls, 1 by other"):
            await RtpReceiver.open(pool, "ulaw", Collector())
        await a.aclose()
        c = await RtpReceiver.open(pool, "ulaw", Collector())
        assert c.port == a.port
        await b.aclose()
        await c.aclose()
    finally:
        squatter.close()


def test_a_port_held_elsewhere_is_skipped_under_uvloop_too(free_range: tuple[int, int]) -> None:
    uvloop = pytest.importorskip("uvloop")  # its bind error carries no errno: the pool binds itself
    first = free_range[0]

    async def run() -> None:
        pool = PortPool(first, first + 1, host=HOST)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
            squatter.bind((HOST, first))
            rx = await RtpReceiver.open(pool, "ulaw", Collector())
            assert rx.port == first + 1
            await rx.aclose()

    uvloop.run(run())


async def test_a_wildcard_bind_advertises_the_address_given(free_range: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="advertise_host"):
        PortPool(*free_range, host="0.0.0.0")
    pool = PortPool(*free_range, host="0.0.0.0", advertise_host=HOST)
    rx = await RtpReceiver.open(pool, "ulaw", Collector())
    assert rx.external_host == f"{HOST}:{rx.port}"
    await rx.aclose()


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="g729"):
        RtpReceiver("g729", Collector())

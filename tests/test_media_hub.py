"""RtpHub: every call's RTP on one real UDP socket gives each call what a port of its own would.

The reference is a stand-alone RtpReceiver fed the same datagrams one by one: the hub's array
path and its hand-over to the receiver for everything else (losses, reordering, duplicates, a new
SSRC, odd sizes, a marker bit) must deliver each call the same frames, in the same order, with
the same counters. Sources are real sockets on loopback, so the source ports the hub tells calls
apart by are the kernel's.
"""

from __future__ import annotations

import random
import socket
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ari_amd.detect import AmdParams, Mode
from ari_amd.detect.detector import Detector, classify
from ari_amd.detect.g711 import decode_ulaw, encode_ulaw
from ari_amd.media import PortPoolExhausted, RtpReceiver, build_packet
from ari_amd.media.batch import BatchSession, FrameBatch
from ari_amd.media.hub import STASH_S, RtpHub
from ari_amd.media.mmsg import DatagramBatch
from ari_amd.synth import DEV_CATEGORIES, make_clip
from tests.test_fuzz_rtp import datagrams as fuzz_datagrams

HOST = "127.0.0.1"
FRAME = 160


class RecordingBatch(FrameBatch):
    """A FrameBatch that keeps each slot's decoded frames, in the order they were decided."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[int, list[np.ndarray]] = {}

    def _decide(self, blocks: list[tuple[np.ndarray, list[int] | np.ndarray]]) -> None:
        for frames, owners in blocks:
            for row, slot in zip(frames, np.asarray(owners).tolist()):
                self.rows.setdefault(slot, []).append(row.copy())
        super()._decide(blocks)


def frames_of(batch: RecordingBatch, slot: int) -> np.ndarray:
    return np.array(batch.rows.get(slot, [])).reshape(-1, FRAME)


@pytest.fixture
def sources() -> Iterator[list[socket.socket]]:
    socks = []
    for _ in range(6):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        socks.append(s)
    yield socks
    for s in socks:
        s.close()


def hub_for(batch: FrameBatch | None, recvmmsg: bool = True) -> RtpHub:
    hub = RtpHub(HOST, 0, batch=batch)
    if not recvmmsg:
        hub._buf = DatagramBatch(hub._buf.capacity, hub._buf.size, use_recvmmsg=False)
    hub.open()
    return hub


def drain_all(hub: RtpHub, batch: FrameBatch | None = None) -> None:
    """Drain until the socket is empty (loopback delivers at once; allow a moment)."""
    time.sleep(0.002)
    while hub.drain():
        time.sleep(0.002)
    if batch is not None:
        batch.process()


def bound_call(hub: RtpHub, batch: FrameBatch, source: socket.socket,
               detector: Detector | None = None) -> tuple[RtpReceiver, BatchSession]:  # fmt: skip
    """A call on the hub as the service sets one up: its receiver feeds its batch session, which
    takes the hub's blocks."""
    session = batch.add(detector, law="ulaw")
    rx = RtpReceiver.attach(hub, "ulaw", session, source.getsockname(), on_g711=session.feed_g711)
    rx.bind_batch(session)
    return rx, session


def one_call(source: socket.socket, packets: int) -> tuple[RecordingBatch, RtpHub, RtpReceiver, BatchSession]:
    """A hub with one bound call, its first `packets` packets (sequence 0 on) received and decided."""
    batch = RecordingBatch()
    hub = hub_for(batch)
    rx, session = bound_call(hub, batch, source)
    send_run(source, hub, range(packets))
    drain_all(hub, batch)
    return batch, hub, rx, session


def send_run(source: socket.socket, hub: RtpHub, seqs: range, call: int = 0) -> None:
    for i in seqs:
        source.sendto(ulaw(i, payload_for(call, i)), (HOST, hub.port))


def ulaw(seq: int, payload: bytes, ssrc: int = 7, pt: int = 0, marker: bool = False) -> bytes:
    return build_packet(payload, sequence=seq & 0xFFFF, timestamp=seq * FRAME, ssrc=ssrc, payload_type=pt,
                        marker=marker)  # fmt: skip


def payload_for(call: int, i: int, size: int = FRAME) -> bytes:
    return bytes(((np.arange(size) * (call + 3) + i * 11) % 251 + 1).astype(np.uint8))


def perturbed_stream(rng: random.Random, call: int, n: int) -> list[bytes]:
    """A call's datagrams with the faults of a real network and a restarting sender."""
    seq0 = rng.randrange(65536)  # some wrap
    out: list[bytes] = []
    ssrc = 100 + call
    for i in range(n):
        seq = seq0 + i
        r = rng.random()
        if r < 0.05:
            continue  # lost
        pkt = ulaw(seq, payload_for(call, i), ssrc)
        if r < 0.09 and out:
            out.insert(len(out) - 1, pkt)  # reordered by one
            continue
        out.append(pkt)
        if r > 0.97:
            out.append(pkt)  # duplicated
        elif 0.95 < r <= 0.96:
            out.append(ulaw(seq, payload_for(call, i, 80)))  # an odd size: decoded, and the fast path stops
        elif 0.94 < r <= 0.95:
            ssrc += 1  # a new stream from the same sender
            seq0 = rng.randrange(65536) - i - 1
        elif 0.93 < r <= 0.94:
            out.append(ulaw(seq + 1, payload_for(call, i), ssrc, marker=True))
    return out


@pytest.mark.parametrize("recvmmsg", [True, False], ids=["recvmmsg", "recvfrom"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_call_gets_what_a_receiver_of_its_own_gets(sources: list[socket.socket], seed: int,
                                                        recvmmsg: bool) -> None:  # fmt: skip
    rng = random.Random(seed)
    streams = [perturbed_stream(rng, k, 300) for k in range(len(sources))]
    # The reference: one receiver per call, fed directly, into its own batch.
    ref_batch = RecordingBatch()
    refs = []
    for sock in sources:
        session = ref_batch.add(law="ulaw")
        rx = RtpReceiver("ulaw", session, on_g711=session.feed_g711, expected_source=sock.getsockname())
        refs.append((rx, session))
    batch = RecordingBatch()
    hub = hub_for(batch, recvmmsg)
    calls = [bound_call(hub, batch, sock) for sock in sources]
    cursor = [0] * len(streams)
    while any(c < len(s) for c, s in zip(cursor, streams)):
        # Interleaved calls, bursts of any length between drains (a late tick reads many at once).
        for k, sock in enumerate(sources):
            burst = rng.choice((0, 1, 1, 2, 5))
            for data in streams[k][cursor[k] : cursor[k] + burst]:
                sock.sendto(data, (HOST, hub.port))
                refs[k][0].datagram_received(data, sock.getsockname())
            cursor[k] += burst
        if rng.random() < 0.5:
            drain_all(hub, batch)
            ref_batch.process()
    drain_all(hub, batch)
    for (rx, session), (ref, ref_session) in zip(calls, refs):
        rx.flush()
        ref.flush()
        batch.process()
        ref_batch.process()
        assert rx.stats.as_dict() == ref.stats.as_dict()
        got, want = frames_of(batch, session.slot), frames_of(ref_batch, ref_session.slot)  # type: ignore[arg-type]
        assert got.shape == want.shape and np.array_equal(got, want)
    assert hub.stats.fast and hub.stats.serial  # both paths were taken
    assert hub.stats.unknown_source == 0
    hub.close()


def test_verdicts_through_the_hub_match_offline_classify(sources: list[socket.socket]) -> None:
    clips = [decode_ulaw(encode_ulaw(make_clip(cat, 5 + i).samples)) for i, cat in enumerate(DEV_CATEGORIES)]
    clips = clips[: len(sources)]
    modes = [AmdParams(), AmdParams(mode=Mode.DETECT_MESSAGE_END)]
    batch = FrameBatch()
    hub = hub_for(batch)
    dets = []
    for k, sock in enumerate(sources[: len(clips)]):
        det = Detector(modes[k % 2])
        dets.append((det, bound_call(hub, batch, sock, det)[1]))
    payloads = [encode_ulaw(c).tobytes() for c in clips]
    for i in range(max(len(p) for p in payloads) // FRAME):
        for k, p in enumerate(payloads):
            if (i + 1) * FRAME <= len(p):
                sources[k].sendto(ulaw(i, p[i * FRAME : (i + 1) * FRAME], ssrc=k), (HOST, hub.port))
        if i % 3 == 2:
            drain_all(hub, batch)
    drain_all(hub, batch)
    for k, (det, session) in enumerate(dets):
        session.finish()
        n = len(payloads[k]) // FRAME * FRAME
        assert det.verdicts == classify(clips[k][:n], modes[k % 2])
    hub.close()


def test_a_spoofed_source_changes_nothing_and_is_counted(sources: list[socket.socket]) -> None:
    dropped: list[tuple[str, int]] = []
    batch = RecordingBatch()
    hub = RtpHub(HOST, 0, batch=batch, on_dropped=lambda reason, n: dropped.append((reason, n)))
    hub.open()
    call, spoofer = sources[0], sources[1]
    rx, session = bound_call(hub, batch, call)
    for i in range(20):
        call.sendto(ulaw(i, payload_for(0, i)), (HOST, hub.port))
        # The same SSRC and the sequence number due next: only the source tells them apart.
        spoofer.sendto(ulaw(i + 1, bytes(FRAME)), (HOST, hub.port))
    drain_all(hub, batch)
    assert rx.stats.received == 20 and rx.stats.lost == 0 and rx.stats.duplicates == 0
    want = decode_ulaw(np.frombuffer(b"".join(payload_for(0, i) for i in range(20)), np.uint8))
    assert np.array_equal(frames_of(batch, session.slot).ravel(), want.astype(np.float32) / 32768)  # type: ignore[arg-type]
    assert hub.stats.unknown_source == 20 and sum(n for r, n in dropped if r == "unknown_source") == 20
    hub.close()


def test_packets_before_the_call_attaches_are_kept_a_moment(sources: list[socket.socket]) -> None:
    batch = RecordingBatch()
    hub = hub_for(batch)
    early, late = sources[0], sources[1]
    send_run(early, hub, range(3))
    late.sendto(ulaw(0, payload_for(1, 0)), (HOST, hub.port))
    drain_all(hub, batch)
    session = batch.add(law="ulaw")
    rx = RtpReceiver.attach(hub, "ulaw", session, early.getsockname(), on_g711=session.feed_g711)
    assert rx.stats.received == 3  # the stash, replayed in order
    hub._stash[late.getsockname()][0] = (time.monotonic() - STASH_S - 1, b"")  # as if long ago
    drain_all(hub, batch)
    assert late.getsockname() not in hub._stash  # expired, not kept for ever
    batch.process()
    assert len(frames_of(batch, session.slot)) == 3  # type: ignore[arg-type]
    hub.close()


def test_a_call_that_left_the_batch_feeds_no_one_who_takes_its_slot(sources: list[socket.socket]) -> None:
    batch, hub, rx, old = one_call(sources[0], 5)
    slot = old.slot
    old.close()  # detection over; the tap (and its receiver) goes a moment later
    batch.process()  # the slot is free after this tick
    new = batch.add(law="ulaw")
    assert new.slot == slot
    send_run(sources[0], hub, range(5, 10))
    drain_all(hub, batch)
    assert rx.stats.received == 10
    assert len(frames_of(batch, slot)) == 5  # the old call's five, none after it left  # type: ignore[arg-type]
    hub.close()


def test_g711_from_the_hub_stays_behind_frames_queued_another_way(sources: list[socket.socket]) -> None:
    batch, hub, rx, session = one_call(sources[0], 3)
    held = np.full(FRAME, 1000, dtype=np.int16)
    session.feed(held)  # e.g. what the tap heard before detection started, queued as int16
    send_run(sources[0], hub, range(3, 6))
    drain_all(hub, batch)
    got = frames_of(batch, session.slot)  # type: ignore[arg-type]
    assert len(got) == 7
    assert np.allclose(got[3], 1000 / 32768)  # the int16 frame before the packets that came after it
    want = decode_ulaw(np.frombuffer(payload_for(0, 3), np.uint8)).astype(np.float32) / 32768
    assert np.array_equal(got[4], want)
    hub.close()


@pytest.mark.parametrize("recvmmsg", [True, False], ids=["recvmmsg", "recvfrom"])
def test_datagrams_longer_than_any_rtp_packet_are_dropped(sources: list[socket.socket], recvmmsg: bool) -> None:
    dropped: list[tuple[str, int]] = []
    hub = RtpHub(HOST, 0, on_dropped=lambda reason, n: dropped.append((reason, n)), max_datagram=400)
    if not recvmmsg:
        hub._buf = DatagramBatch(hub._buf.capacity, hub._buf.size, use_recvmmsg=False)
    hub.open()
    got: list[np.ndarray] = []
    rx = RtpReceiver.attach(hub, "ulaw", lambda x, rate: got.append(x), sources[0].getsockname())
    sources[0].sendto(ulaw(0, bytes(1000)), (HOST, hub.port))
    sources[0].sendto(ulaw(1, payload_for(0, 1)), (HOST, hub.port))
    drain_all(hub)
    assert hub.stats.truncated == 1 and ("oversized", 1) in dropped
    assert rx.stats.received == 1 and len(got) == 1
    hub.close()


def test_two_hosts_sending_from_the_same_port_are_two_calls() -> None:
    a, b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    port = a.getsockname()[1]
    try:
        b.bind(("127.0.0.2", port))
    except OSError:
        pytest.skip("127.0.0.2 is not usable here")
    hub = hub_for(None)
    got_a: list[np.ndarray] = []
    got_b: list[np.ndarray] = []
    ra = RtpReceiver.attach(hub, "ulaw", lambda x, r: got_a.append(x), ("127.0.0.1", port))
    rb = RtpReceiver.attach(hub, "ulaw", lambda x, r: got_b.append(x), ("127.0.0.2", port))
    for i in range(4):
        a.sendto(ulaw(i, payload_for(0, i)), (HOST, hub.port))
        b.sendto(ulaw(i, payload_for(1, i)), (HOST, hub.port))
    drain_all(hub)
    assert (ra.stats.received, rb.stats.received) == (4, 4)
    assert np.array_equal(got_b[2], decode_ulaw(np.frombuffer(payload_for(1, 2), np.uint8)))
    ra.close()
    b.sendto(ulaw(4, payload_for(1, 4)), (HOST, hub.port))
    a.sendto(ulaw(4, payload_for(0, 4)), (HOST, hub.port))
    drain_all(hub)
    assert (ra.stats.received, rb.stats.received) == (4, 5) and hub.stats.unknown_source == 1
    hub.close()
    a.close()
    b.close()


def test_a_closed_receiver_gives_its_lane_back(sources: list[socket.socket]) -> None:
    hub = hub_for(None)
    first = RtpReceiver.attach(hub, "ulaw", lambda x, r: None, sources[0].getsockname())
    assert len(hub) == 1
    first.close()
    assert len(hub) == 0 and first.closed
    sources[0].sendto(ulaw(0, payload_for(0, 0)), (HOST, hub.port))
    drain_all(hub)
    assert hub.stats.unknown_source == 1 and first.stats.received == 0
    again = RtpReceiver.attach(hub, "ulaw", lambda x, r: None, sources[0].getsockname())
    assert again.lane == first.lane and again.stats.received == 1  # the stashed packet
    hub.close()


def test_bad_sources_and_hosts_are_refused_by_name(sources: list[socket.socket]) -> None:
    hub = hub_for(None)
    rx = RtpReceiver.attach(hub, "ulaw", lambda x, r: None, sources[0].getsockname())
    with pytest.raises(ValueError, match="the source it was attached with"):
        rx.expect_source(HOST, 1)
    rx.expect_source(*sources[0].getsockname())  # the same one: nothing to change
    with pytest.raises(ValueError, match="already attached"):
        RtpReceiver.attach(hub, "ulaw", lambda x, r: None, sources[0].getsockname())
    with pytest.raises(ValueError, match="already attached"):
        RtpReceiver.attach(hub, "ulaw", lambda x, r: None, ("0.0.0.0", sources[0].getsockname()[1]))
    with pytest.raises(ValueError, match="not an IPv4 address"):
        RtpReceiver.attach(hub, "ulaw", lambda x, r: None, ("pbx.example", 4000))
    with pytest.raises(ValueError, match="out of range"):
        RtpReceiver.attach(hub, "ulaw", lambda x, r: None, (HOST, 70000))
    hub.close()
    with pytest.raises(ValueError, match="IPv4 only"):
        RtpHub("::1", 0)
    with pytest.raises(ValueError, match="advertise_host"):
        RtpHub("0.0.0.0", 0)


def test_open_range_takes_the_first_free_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind((HOST, 0))
        port = busy.getsockname()[1]
        if port >= 65535:
            pytest.skip("no room above the ephemeral port")
        try:
            hub = RtpHub.open_range(HOST, port, port + 1)
        except PortPoolExhausted:
            pytest.skip("the neighbouring port is taken too")
        assert hub.port == port + 1 and hub.external_host == f"{HOST}:{port + 1}"
        hub.close()
        with pytest.raises(PortPoolExhausted, match=f"{port}-{port}"):
            RtpHub.open_range(HOST, port, port)


def test_slin16_calls_go_through_their_receivers(sources: list[socket.socket]) -> None:
    hub = hub_for(FrameBatch())
    got: list[np.ndarray] = []
    rx = RtpReceiver.attach(hub, "slin16", lambda x, r: got.append(x), sources[0].getsockname())
    for i in range(5):
        sources[0].sendto(build_packet(bytes(640), sequence=i, timestamp=i * 320, ssrc=1, payload_type=118),
                          (HOST, hub.port))  # fmt: skip
    drain_all(hub)
    assert rx.stats.received == 5 and len(got) == 5 and all(len(x) == 320 for x in got)
    assert hub.stats.fast == 0  # only 20 ms G.711 goes by array
    hub.close()


@st.composite
def hostile_traffic(draw: st.DrawFn) -> list[tuple[int, bytes, bool]]:
    """A call's stream with garbage and near-valid RTP mixed in, each datagram from the call (0)
    or a stranger (1), and whether the tick drains after it."""
    n = draw(st.integers(1, 40))
    start = draw(st.integers(0, 65535))
    legit = [ulaw(start + i, payload_for(0, i)) for i in range(n)]
    junk = st.tuples(st.sampled_from([0, 1]), fuzz_datagrams, st.booleans())
    out = [(0, data, draw(st.booleans())) for data in legit]
    for _ in range(draw(st.integers(0, 30))):
        out.insert(draw(st.integers(0, len(out))), draw(junk))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(traffic=hostile_traffic())
def test_hostile_datagrams_through_the_hub_match_a_receiver_of_its_own(
    sources: list[socket.socket], traffic: list[tuple[int, bytes, bool]]
) -> None:
    call, stranger = sources[0], sources[1]
    ref_batch, batch = RecordingBatch(), RecordingBatch()
    ref_session = ref_batch.add(law="ulaw")
    ref = RtpReceiver("ulaw", ref_session, on_g711=ref_session.feed_g711, expected_source=call.getsockname())
    hub = hub_for(batch)
    rx, session = bound_call(hub, batch, call)
    strangers = 0
    for who, data, drain in traffic:
        (call if who == 0 else stranger).sendto(data, (HOST, hub.port))
        if who == 0:
            ref.datagram_received(data, call.getsockname())
        else:
            strangers += 1
        if drain:
            drain_all(hub, batch)
            ref_batch.process()
    drain_all(hub, batch)
    rx.flush()
    ref.flush()
    batch.process()
    ref_batch.process()
    s = hub.stats
    assert s.datagrams == len(traffic) == s.fast + s.serial + s.unknown_source + s.truncated
    assert s.unknown_source == strangers
    assert rx.stats.as_dict() == ref.stats.as_dict()
    assert np.array_equal(frames_of(batch, session.slot), frames_of(ref_batch, ref_session.slot))  # type: ignore[arg-type]
    hub.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's drop count (SO_RXQ_OVFL) is Linux's")
@pytest.mark.parametrize("recvmmsg", [True, False], ids=["recvmmsg", "recvfrom"])
def test_datagrams_the_kernel_dropped_for_a_full_buffer_are_counted(sources: list[socket.socket],
                                                                    recvmmsg: bool) -> None:  # fmt: skip
    dropped: list[tuple[str, int]] = []
    hub = RtpHub(HOST, 0, on_dropped=lambda reason, n: dropped.append((reason, n)), receive_buffer=4096)
    if not recvmmsg:
        hub._buf = DatagramBatch(hub._buf.capacity, hub._buf.size, use_recvmmsg=False)
    hub.open()  # a buffer of a few packets, as an unprivileged process on a default kernel gets, but smaller
    rx = RtpReceiver.attach(hub, "ulaw", lambda x, r: None, sources[0].getsockname())
    send_run(sources[0], hub, range(200))  # no tick drains while they arrive
    drain_all(hub)
    send_run(sources[0], hub, range(200, 201))  # the kernel tells the count with the next datagram
    drain_all(hub)
    assert hub.stats.overflow > 0 and rx.stats.received == 201 - hub.stats.overflow
    assert ("socket_overflow", hub.stats.overflow) in dropped
    hub.close()

#!/usr/bin/env python3
"""Media load: N calls' RTP at real-time pace over loopback into one RtpReceiver + detector process.

    python bench/media_load.py [--streams 100,250,500,1000] [--engine batch|feed] [--loop uvloop|asyncio]
                               [--socket shared|per-call] [--seconds 12] [--clips 36] [--corpus [DIR]]
                               [--tick-ms 10] [--ramp S] [--no-pin] [--gc-freeze] [--no-breakdown]

For each N, a fresh receiving process (pinned to one core) sets up N RtpReceivers, each feeding
its own detector, and a sender process (pinned to the other core; spawned first, so that it
shares no memory pages with the receiver) streams one clip per call as 20 ms mu-law packets,
each call at its own phase of the 20 ms cycle, sequence numbers starting anywhere (some wrap).
With --socket shared (the service's default), every call sends from its own source port to one
RtpHub socket, drained each tick; with per-call, each call has its own port from a PortPool.
Half the calls run Enable, half DetectMessageEnd. All calls are
answered in the same 20 ms (the worst case: every detector busy at once) unless --ramp spreads
them. Clips come from ari_amd.synth, or the corpus with --corpus. Reported per N:

  identical   calls whose verdicts (kind, millisecond, cause, rule) equal offline `classify` on the
              same mu-law audio
  lag         per frame, from the packet's scheduled send time to the detector having decided it
              (sender lateness, kernel, event loop, batching wait and the work itself), p50/p99/max;
              frames after a call's final verdict are no longer decided and not counted
  core        the receiving process's CPU time over the streaming window / its wall time
  CPU/call-s  that CPU per second of call streamed, ms
  RSS/call    the receiving process's resident memory growth from before the calls to their end
  lost, gaps  packets sent but never received (kernel drops); gaps the reorder buffer filled
  dropped     datagrams the receivers refused (none expected here)
  an, step    batch engine: CPU per decided frame in analyze and in the decision step, timed in
              the live process (more than alone: 1000 calls' state and sockets share the caches)

First, each stage's CPU alone in this process (no sockets): what a packet costs in RtpReceiver,
and a decided frame in batching, analyze and the decision step, against Detector.feed per packet.

engine feed: every packet goes to its call's Detector.feed (numpy per packet);
engine batch: ari_amd.media.batch.FrameBatch, one analyze over every call's frames per tick;
engine ingest: RtpReceivers only, no detector (identical is then 0: nothing was decided).
Bounded: clips are cut to --seconds; each N takes about that long plus setup. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import multiprocessing as mp
import os
import pickle
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from ari_amd.detect import AmdParams, Mode, Verdict, classify
from ari_amd.detect.detector import Detector
from ari_amd.detect.features import analyze
from ari_amd.detect.g711 import decode_ulaw, encode_ulaw
from ari_amd.detect.vector import VectorDecider
from ari_amd.media import PortPool, RtpReceiver
from ari_amd.media.batch import TICK_MS, FrameBatch, occurrence_rank
from ari_amd.media.heap import freeze_startup_objects, keep_heap
from ari_amd.media.hub import RtpHub

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "dev"
DEFAULT_STREAMS = "100,250,500,1000"
DEFAULT_SECONDS = 12.0
DEFAULT_CLIPS = 36  # distinct clips, reused round-robin: offline references are computed once each
FIRST_PORT = 45000  # clear of the service's 40000-40999 and bench/rtp_ingest's 42000-
FRAME = 160  # 20 ms of 8 kHz mu-law: one packet
PACKET_S = 0.020
PHASES = 20  # calls spread over 1 ms steps of the 20 ms cycle, as independent calls are
START_DELAY_S = 0.5  # from the go to the first packet: the sender builds its streams first
DRAIN_S = 0.3  # after the last packet, for what is still in the sockets
BREAKDOWN_STREAMS = 1000  # the decision step is vectorised over calls: measured where that matters
PIN_ENV = "MEDIA_LOAD_PIN"  # "0": let the scheduler place receiver and sender (a machine others share)
SENDER_CORE_ENV = "MEDIA_LOAD_SENDER_CORE"
LAG_BINS_MS = 2000  # lag histogram resolution 0.1 ms up to 200 ms; beyond is clipped into the last bin
MODES = (AmdParams(), AmdParams(mode=Mode.DETECT_MESSAGE_END))
_RTP = struct.Struct("!BBHII")


@dataclass
class Plan:
    clips: list[bytes]  # mu-law payload of each distinct clip
    reference: dict[tuple[int, int], list[Verdict]]  # (clip, mode) -> offline verdicts
    names: list[str]


@dataclass
class Stream:
    index: int
    clip: int
    mode: int
    base: float  # scheduled time of frame 0 (time.monotonic, shared by both processes on Linux)
    detector: Detector | None = None
    session: Any = None
    receiver: RtpReceiver | None = None


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# -- the plan: clips and their offline verdicts (parent process) ------------------------------------
def make_plan(n_clips: int, seconds: float, corpus: Path | None) -> Plan:
    limit = int(seconds * 8000) // FRAME * FRAME
    raw: list[tuple[str, np.ndarray]] = []
    if corpus is not None:
        from ari_amd.audio import load

        for path in sorted(corpus.glob("*.wav"))[:n_clips]:
            raw.append((path.name, load(path)))
    else:
        from ari_amd.synth import DEV_CATEGORIES, make_clip

        for i in range(n_clips):
            cat = DEV_CATEGORIES[i % len(DEV_CATEGORIES)]
            raw.append((f"{cat}-{i}", make_clip(cat, 1000 + i).samples))
    clips, names, reference = [], [], {}
    for c, (name, samples) in enumerate(raw):
        ulaw = encode_ulaw(samples[:limit])
        ulaw = ulaw[: len(ulaw) // FRAME * FRAME]
        clips.append(ulaw.tobytes())
        names.append(name)
        audio = decode_ulaw(ulaw)  # exactly what the receiver decodes
        for m, params in enumerate(MODES):
            reference[(c, m)] = classify(audio, params)
    return Plan(clips, reference, names)


# -- the sender (its own process, its own core) --------------------------------------------------------
def send_streams(
    plan_clips: list[bytes],
    clip_of: list[int],
    phase_of: list[int],
    start_of: list[int],
    shared: bool,
    ctrl: Any,
    out: Any,
) -> None:
    """Started (spawned, so that the receiver's writes never copy pages shared with it) before the
    receiver sets up: with `shared`, it binds a source socket per call and reports their ports;
    then it takes the destinations and t0 from `ctrl`."""
    gc.disable()
    if os.environ.get(PIN_ENV, "1") == "1":
        # Not our inherited affinity's last core: the receiver pinned itself (and so us) to its own.
        os.sched_setaffinity(0, {int(os.environ[SENDER_CORE_ENV])})
    if shared:  # each call from its own source, as Asterisk's externalMedia channels send
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in clip_of]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        out.put([sock.getsockname()[1] for sock in socks])
    else:  # one socket sends every call's packets, each to its call's port
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        socks = [sock] * len(clip_of)
    addrs, t0 = ctrl.get()
    buckets: list[list[int]] = [[] for _ in range(PHASES)]
    for k, ph in enumerate(phase_of):
        buckets[ph].append(k)
    nframes = [len(plan_clips[c]) // FRAME for c in clip_of]
    seq0 = [(k * 7919) % 65536 for k in range(len(addrs))]  # some calls wrap their sequence numbers
    ssrc = [0x10000 + k for k in range(len(addrs))]
    views = [memoryview(plan_clips[c]) for c in clip_of]
    sent = late = 0
    worst = 0.0
    total = max(s + n for s, n in zip(start_of, nframes))
    for tick in range(total):
        for b in range(PHASES):
            due = t0 + tick * PACKET_S + b * PACKET_S / PHASES
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                worst = max(worst, -wait)
                late += -wait > 0.002
            for k in buckets[b]:
                i = tick - start_of[k]
                if 0 <= i < nframes[k]:
                    header = _RTP.pack(0x80, 0, (seq0[k] + i) & 0xFFFF, (i * FRAME) & 0xFFFFFFFF, ssrc[k])
                    socks[k].sendto(header + views[k][i * FRAME : (i + 1) * FRAME], addrs[k])
                    sent += 1
    out.put({"sent": sent, "late_buckets": late, "worst_late_ms": worst * 1000})


# -- the receiving process: one trial -----------------------------------------------------------------
async def trial(
    plan: Plan, n: int, engine: str, tick_ms: int, freeze_gc: bool, ramp_s: float, shared: bool
) -> dict[str, Any]:
    freeze_startup_objects()  # as FrameBatch.run does in the service, before its calls come
    rss0 = rss_kb()
    n_clips = len(plan.clips)
    clip_of = [k % n_clips for k in range(n)]
    mode_of = [(k // n_clips) % 2 for k in range(n)]
    phase_of = [(k * 7) % PHASES for k in range(n)]
    start_of = [int(ramp_s / PACKET_S * k / n) for k in range(n)]  # answered one after another over the ramp
    ctx = mp.get_context("spawn")
    ctrl, out = ctx.Queue(), ctx.Queue()
    # A daemon: if this trial fails while setting up, the sender (waiting for its go) goes with it.
    sender = ctx.Process(target=send_streams, args=(plan.clips, clip_of, phase_of, start_of, shared, ctrl, out),
                         daemon=True)  # fmt: skip
    sender.start()
    streams = [Stream(k, clip_of[k], mode_of[k], 0.0) for k in range(n)]  # base set once t0 is known
    lengths = [len(plan.clips[c]) // FRAME for c in clip_of]
    live = np.zeros(max(s + m for s, m in zip(start_of, lengths)) + 1, dtype=np.int64)
    for s, m in zip(start_of, lengths):
        live[s] += 1
        live[s + m] -= 1
    peak_concurrent = int(np.cumsum(live).max())
    hist = np.zeros(LAG_BINS_MS + 1, dtype=np.int64)
    pending_sched: list[float] = []
    batch = _TimedBatch(tick_ms) if engine == "batch" else None
    hub = RtpHub("127.0.0.1", 0, batch=batch) if shared else None

    # Frames each stream has delivered so far: the lag of its next one counts from its send time.
    frames_of = np.zeros(n, dtype=np.int64)
    base_of = np.zeros(n)
    stream_of_slot = np.zeros(0, dtype=np.intp)

    def batched(st: Stream) -> bool:
        """Count the frame; True if it is to be decided (its send time noted for the lag)."""
        i = frames_of[st.index]
        frames_of[st.index] = i + 1
        if st.session.decided:  # Detector.done, without the property's cost
            return False
        pending_sched.append(st.base + i * PACKET_S)
        return True

    def on_block(slots: np.ndarray) -> None:
        """A block the hub queued: its frames' send times, by array."""
        k = stream_of_slot[slots]
        index = frames_of[k] + occurrence_rank(k)
        frames_of[:] += np.bincount(k, minlength=n)
        pending_sched.extend((base_of[k] + index * PACKET_S).tolist())

    if batch is not None:
        batch.on_block = on_block

    def make_callback(st: Stream) -> Callable[[np.ndarray, int], None]:
        det = st.detector
        assert det is not None
        mono = time.monotonic
        if batch is not None:
            session = st.session

            def on_audio_batch(samples: np.ndarray, rate: int) -> None:
                if batched(st):
                    session.feed(samples)

            return on_audio_batch

        if engine == "ingest":

            def on_audio_ingest(samples: np.ndarray, rate: int) -> None:
                frames_of[st.index] += 1

            return on_audio_ingest

        def on_audio_feed(samples: np.ndarray, rate: int) -> None:
            i = frames_of[st.index]
            frames_of[st.index] = i + 1
            if not det.done:
                det.feed(samples)
                lag = int((mono() - st.base - i * PACKET_S) * 10_000)
                hist[min(max(lag, 0), LAG_BINS_MS)] += 1

        return on_audio_feed

    def make_g711_callback(st: Stream) -> Callable[[bytes | None], None] | None:
        """The service's path for a batched G.711 call: payloads undecoded into the batch."""
        if batch is None:
            return None
        session = st.session

        def on_g711(payload: bytes | None) -> None:
            if batched(st):
                session.feed_g711(payload)

        return on_g711

    pool = PortPool(FIRST_PORT, FIRST_PORT + max(2 * n, 2000) - 1)
    sources: list[int] | None = None
    if hub is not None:
        hub.open()
        sources = out.get(timeout=60)
    for k, st in enumerate(streams):
        st.detector = Detector(MODES[st.mode])
        if batch is not None:
            st.session = batch.add(st.detector, law="ulaw")
        if hub is not None and sources is not None:
            st.receiver = RtpReceiver.attach(hub, "ulaw", make_callback(st), ("127.0.0.1", sources[k]),
                                             on_g711=make_g711_callback(st))
            st.receiver.bind_batch(st.session)
        else:
            st.receiver = await RtpReceiver.open(pool, "ulaw", make_callback(st), on_g711=make_g711_callback(st))
    if batch is not None:
        stream_of_slot = np.zeros(max(st.session.slot for st in streams) + 1, dtype=np.intp)
        for k, st in enumerate(streams):
            stream_of_slot[st.session.slot] = k
    if freeze_gc:
        gc.collect()
        gc.freeze()  # the calls' long-lived state out of the collector's way: no multi-ms gen-2 passes
    if hub is not None:
        addrs = [("127.0.0.1", hub.port)] * n
    else:
        addrs = [("127.0.0.1", st.receiver.port) for st in streams if st.receiver is not None and st.receiver.port]
    t0 = time.monotonic() + START_DELAY_S
    for k, st in enumerate(streams):
        st.base = base_of[k] = t0 + start_of[k] * PACKET_S + phase_of[k] * PACKET_S / PHASES
    ctrl.put((addrs, t0))

    stop = asyncio.Event()

    async def ticker() -> None:
        period = tick_ms / 1000
        due = time.monotonic()
        while not stop.is_set():
            due += period  # on a fixed grid: a slow tick is not followed by a full period's wait
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            flush_batch()

    def flush_batch() -> None:
        if hub is not None:
            hub.drain()
        if batch is None:
            return
        if not batch.queued:
            pending_sched.clear()  # frames of calls that ended since: nothing to decide
            return
        batch.process()
        now = time.monotonic()
        lags = ((now - np.asarray(pending_sched)) * 10_000).astype(np.int64)
        pending_sched.clear()
        np.add.at(hist, np.clip(lags, 0, LAG_BINS_MS), 1)

    if batch is not None:
        keep_heap()  # as FrameBatch.run does in the service
    tick_task = asyncio.create_task(ticker()) if batch is not None or hub is not None else None
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    cpu0, wall0 = time.process_time(), time.monotonic()
    rss_peak = rss_kb()
    while sender.is_alive():
        await asyncio.sleep(0.25)
        rss_peak = max(rss_peak, rss_kb())
    await asyncio.sleep(DRAIN_S)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    rss_peak = max(rss_peak, rss_kb())
    stop.set()
    if tick_task is not None:
        await tick_task
    sent_info = out.get(timeout=10)
    sender.join()

    identical = 0
    mismatches: list[str] = []
    received = lost = dropped = 0
    for k, st in enumerate(streams):
        assert st.receiver is not None and st.detector is not None
        st.receiver.flush()
        if st.session is not None:
            st.session.finish()
        elif not st.detector.done:
            st.detector.finish()
        stats = st.receiver.stats
        received += stats.received
        lost += stats.lost
        dropped += stats.datagrams - stats.received
        if engine == "ingest":
            pass
        elif st.detector.verdicts == plan.reference[(st.clip, st.mode)]:
            identical += 1
        elif len(mismatches) < 5:
            live = [(v.answered_by.value, v.duration_ms) for v in st.detector.verdicts]
            ref = [(v.answered_by.value, v.duration_ms) for v in plan.reference[(st.clip, st.mode)]]
            mismatches.append(f"call {k} {plan.names[st.clip]} mode {st.mode}: live {live} offline {ref}")
        await st.receiver.aclose()
    if hub is not None:
        hub.close()
    counted = int(hist.sum())
    cum = np.cumsum(hist)

    def pct(q: float) -> float:
        return float(np.searchsorted(cum, q * counted)) / 10 if counted else float("nan")

    return {
        "streams": n,
        "peak_concurrent": peak_concurrent,
        "engine": engine,
        "identical": identical,
        "sent": sent_info["sent"],
        "received": received,
        "kernel_lost": sent_info["sent"] - received - dropped,
        "gaps_filled": lost,
        "dropped": dropped,
        "lag_frames": counted,
        "lag_p50_ms": pct(0.50),
        "lag_p99_ms": pct(0.99),
        "lag_max_ms": pct(1.0),
        "cpu_s": cpu,
        "wall_s": wall,
        "core_share": cpu / wall,
        "cpu_ms_per_call_s": cpu * 1000 / (sent_info["sent"] * PACKET_S),  # per second of call streamed
        "rss_kb_per_call": (rss_peak - rss0) / n,
        "rss_peak_mb": rss_peak / 1024,
        "sender_worst_late_ms": sent_info["worst_late_ms"],
        "mismatches": mismatches,
        "live_analyze_us": batch.analyze_s / batch.rows * 1e6 if batch is not None and batch.rows else float("nan"),
        "live_step_us": batch.step_s / batch.rows * 1e6 if batch is not None and batch.rows else float("nan"),
    }


class _TimedBatch(FrameBatch):
    """The service's FrameBatch, its two stages timed in the live process (CPU time); `on_block`
    sees the calls of each block the hub queues (for their frames' lag)."""

    def __init__(self, tick_ms: int) -> None:
        super().__init__(tick_ms)
        self.analyze_s = self.step_s = 0.0
        self.rows = 0
        self.on_block: Callable[[np.ndarray], None] | None = None

    def queue_g711_block(self, law: str, payloads: np.ndarray, slots: np.ndarray) -> None:
        if self.on_block is not None:
            self.on_block(slots)
        super().queue_g711_block(law, payloads, slots)

    def _decide(self, blocks: list[tuple[np.ndarray, list[Any]]]) -> None:
        t0 = time.process_time()
        feats = [analyze(frames) for frames, _ in blocks]
        t1 = time.process_time()
        owners = np.concatenate([np.asarray(o, dtype=np.intp) for _, o in blocks])
        self._step(feats, owners)
        self.analyze_s += t1 - t0
        self.step_s += time.process_time() - t1
        self.rows += len(owners)


# -- where the time goes: each stage alone, in this process, no sockets ----------------------------
class _FramingOnly(FrameBatch):
    """A FrameBatch that queues, stacks and scales but decides nothing: the batching overhead alone."""

    def _decide(self, blocks: list[tuple[np.ndarray, list[Any]]]) -> None:
        pass


def hub_cost(packets: list[list[bytes]], rounds: int) -> float:
    """CPU us per packet of RtpHub.drain (recvmmsg, routing, the array checks, the block queued):
    each call sends its packets from a socket of its own, a 20 ms round of every call's at a time,
    into one hub, drained after each round. The sending is not counted."""
    batch = _FramingOnly()
    hub = RtpHub("127.0.0.1", 0, batch=batch)
    hub.open()
    socks = []
    for _ in packets:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        socks.append(sock)
    for sock in socks:
        session = batch.add(law="ulaw")
        RtpReceiver.attach(hub, "ulaw", session, sock.getsockname(), on_g711=session.feed_g711).bind_batch(session)
    cpu = 0.0
    drained = 0
    for i in range(min(rounds, min(len(p) for p in packets))):
        for sock, stream in zip(socks, packets):
            sock.sendto(stream[i], ("127.0.0.1", hub.port))
        time.sleep(0.005)  # loopback has delivered them all
        t = time.process_time()
        drained += hub.drain()
        cpu += time.process_time() - t
        batch.process()
    hub.close()
    for sock in socks:
        sock.close()
    return cpu / max(drained, 1) * 1e6


def breakdown(plan: Plan, n: int = BREAKDOWN_STREAMS) -> dict[str, float]:
    """CPU microseconds per packet (or frame) of each stage, for n streams of the plan's clips."""
    from ari_amd.media import build_packet

    clip_of = [k % len(plan.clips) for k in range(n)]
    packets = [
        [build_packet(plan.clips[c][i * FRAME : (i + 1) * FRAME], sequence=i, timestamp=i * FRAME, ssrc=k)
         for i in range(len(plan.clips[c]) // FRAME)]
        for k, c in enumerate(clip_of)
    ]  # fmt: skip
    addrs = [("127.0.0.1", 20000 + k) for k in range(n)]
    total = sum(len(p) for p in packets)
    out: dict[str, float] = {}

    # Every stage runs packet i of every call before packet i + 1, as live traffic interleaves
    # them: each step meets another call's state, out of cache (call by call it costs a third less).
    receivers = [RtpReceiver("ulaw", lambda s, r: None, on_g711=lambda p: None) for _ in range(n)]
    longest = max(len(p) for p in packets)
    t = time.process_time()
    for i in range(longest):
        for rx, stream, addr in zip(receivers, packets, addrs):
            if i < len(stream):
                rx.datagram_received(stream[i], addr)
    out["receiver"] = (time.process_time() - t) / total * 1e6

    out["hub"] = hub_cost(packets[:n], rounds=25)

    frames = [decode_ulaw(np.frombuffer(plan.clips[c], dtype=np.uint8)).reshape(-1, FRAME) for c in clip_of]
    payloads = [[plan.clips[c][i * FRAME : (i + 1) * FRAME] for i in range(len(plan.clips[c]) // FRAME)]
                for c in clip_of]  # fmt: skip
    framing = _FramingOnly()
    sessions = [framing.add(law="ulaw") for _ in range(n)]
    t = time.process_time()
    for i in range(longest):
        for session, p in zip(sessions, payloads):
            if i < len(p):
                session.feed_g711(p[i])
        if i % 2:  # a 10 ms tick holds about half a packet interval's frames
            framing.process()
    framing.process()
    out["framing"] = (time.process_time() - t) / total * 1e6

    scaled = np.concatenate(frames).astype(np.float32) / 32768.0
    t = time.process_time()
    for start in range(0, len(scaled), 256):
        analyze(scaled[start : start + 256])
    out["analyze"] = (time.process_time() - t) / total * 1e6

    rows_of = []
    for f in frames:
        feats = analyze(f.astype(np.float32) / 32768.0)
        cols = (feats.band_db, feats.periodicity, feats.peak_hz, feats.peak_frac, feats.peak2_hz, feats.peak2_frac,
                feats.fsk_frac, feats.cpt_frac)  # fmt: skip
        rows_of.append(list(zip(*(a.tolist() for a in cols))))
    detectors = [Detector(MODES[(k // len(plan.clips)) % 2]) for k in range(n)]
    decided = 0
    t = time.process_time()
    for i in range(longest):
        for det, rows in zip(detectors, rows_of):
            if i < len(rows) and not det.done:
                det.step_features(*rows[i])
                decided += 1
    out["decision_scalar"] = (time.process_time() - t) / decided * 1e6
    out["active_share"] = decided / total

    # The same frames through the vector decision step (what FrameBatch runs): a pass per frame
    # index over every call still undecided.
    vector = VectorDecider()
    slots = [vector.add(Detector(MODES[(k // len(plan.clips)) % 2])) for k in range(n)]
    cols_of = [np.array(rows).T.copy() for rows in rows_of]  # [8, frames] per call
    decided = 0
    t = time.process_time()
    for i in range(longest):
        alive = [k for k in range(n) if i < cols_of[k].shape[1] and not vector.finished[slots[k]]]
        if not alive:
            break
        vector.step(np.array([slots[k] for k in alive]), list(np.stack([cols_of[k][:, i] for k in alive], axis=1)))
        decided += len(alive)
    out["decision"] = (time.process_time() - t) / decided * 1e6

    fed = 0
    feeders = [Detector(MODES[(k // len(plan.clips)) % 2]) for k in range(20)]
    t = time.process_time()
    for i in range(longest):
        for det, f in zip(feeders, frames[:20]):
            if i < len(f) and not det.done:
                det.feed(f[i])
                fed += 1
    out["feed_per_packet"] = (time.process_time() - t) / fed * 1e6
    return out


def run_trial(args: argparse.Namespace) -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    cores = sorted(os.sched_getaffinity(0))
    if os.environ.get(PIN_ENV, "1") == "1":
        os.environ[SENDER_CORE_ENV] = str(cores[-1])  # for the sender, which inherits our affinity
        os.sched_setaffinity(0, {cores[0]})
    with open(args.trial_plan, "rb") as f:
        plan: Plan = pickle.load(f)
    coro = trial(plan, args.trial, args.engine, args.tick_ms, args.gc_freeze, args.ramp, args.socket == "shared")
    if args.loop == "uvloop":
        import uvloop  # type: ignore[import-not-found]

        result = uvloop.run(coro)
    else:
        result = asyncio.run(coro)
    print(json.dumps(result))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", default=DEFAULT_STREAMS, help="comma-separated call counts")
    ap.add_argument("--engine", choices=("batch", "feed", "ingest"), default="batch",
                    help="ingest: RtpReceivers only, no detection (what sockets, the loop and RTP cost)")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="clips are cut to this length")
    ap.add_argument("--clips", type=int, default=DEFAULT_CLIPS, help="distinct clips, reused round-robin")
    ap.add_argument("--corpus", type=Path, nargs="?", const=DEFAULT_CORPUS, default=None)
    ap.add_argument("--tick-ms", type=int, default=TICK_MS)
    ap.add_argument("--socket", choices=("shared", "per-call"), default="shared",
                    help="shared: every call to one RtpHub socket (the service's default); per-call: a port each")
    ap.add_argument("--ramp", type=float, default=0.0,
                    help="answer the calls one after another over this many seconds (0: all in the same 20 ms)")
    ap.add_argument("--gc-freeze", action="store_true",
                    help="gc.freeze() once the calls are set up (the service does not: its calls come and go)")
    ap.add_argument("--no-breakdown", action="store_true", help="skip the per-stage CPU figures")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin receiver and sender to a core each (when other work holds one of them)")
    ap.add_argument("--trial", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--trial-plan", help=argparse.SUPPRESS)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.trial is not None:
        return run_trial(args)
    if (os.cpu_count() or 1) < 2:
        print("needs two cores: the sender and the receiver", file=sys.stderr)
        return 2
    if args.corpus is not None and not any(args.corpus.glob("*.wav")):
        print(f"no .wav files in {args.corpus}", file=sys.stderr)
        return 2

    if args.no_pin:
        os.environ[PIN_ENV] = "0"  # inherited by the trial processes
    cmd = " ".join(["python bench/media_load.py", *sys.argv[1:]])
    print(f"$ {cmd}")
    plan = make_plan(args.clips, args.seconds, args.corpus)
    audio_s = sum(len(c) for c in plan.clips) / 8000 / len(plan.clips)
    source = args.corpus or "ari_amd.synth"
    print(
        f"{len(plan.clips)} clips from {source} (mean {audio_s:.1f} s, cut at {args.seconds:g} s), "
        f"Enable and DetectMessageEnd, engine {args.engine}, {args.loop}, "
        + (f"answered over {args.ramp:g} s" if args.ramp else "all answered at once")
        + (f", tick {args.tick_ms} ms" if args.engine == "batch" else "")
    )
    header = (
        f"{'N':>5s} {'peak':>5s} {'identical':>11s} {'lag p50':>8s} {'p99':>7s} {'max':>7s} {'core':>5s} "
        f"{'CPU ms/call-s':>13s} {'RSS KB/call':>11s} {'sent':>8s} {'lost':>6s} {'gaps':>6s} {'dropped':>7s} "
        f"{'load':>5s} {'an us':>6s} {'step us':>7s}"
    )
    if not args.no_breakdown:
        b = breakdown(plan)
        ingest = b["hub"] if args.socket == "shared" else b["receiver"]
        per_packet = ingest + b["active_share"] * (b["framing"] + b["analyze"] + b["decision"])
        print(
            f"CPU per packet, each stage alone ({BREAKDOWN_STREAMS} streams in this process): RtpReceiver "
            f"{b['receiver']:.1f} us (no socket), or with every call on one RtpHub socket {b['hub']:.1f} us "
            f"(the system calls and routing included); then per frame decided: batch framing {b['framing']:.1f}, "
            f"analyze {b['analyze']:.1f}, decision step {b['decision']:.1f} us (call by call: "
            f"{b['decision_scalar']:.1f}; Detector.feed per packet instead: "
            f"{b['feed_per_packet']:.0f} us). {b['active_share']:.0%} of frames are decided (the rest follow the "
            f"call's final verdict): {per_packet:.1f} us per packet ({args.socket} socket), "
            f"{1e6 / 50 / per_packet:.0f} calls per core."
        )
    print(header)
    results = []
    with tempfile.NamedTemporaryFile(suffix=".pickle") as f:
        pickle.dump(plan, f)
        f.flush()
        for n in (int(s) for s in args.streams.split(",")):
            child = [sys.executable, __file__, "--trial", str(n), "--trial-plan", f.name, "--engine", args.engine,
                     "--loop", args.loop, "--tick-ms", str(args.tick_ms), "--ramp", str(args.ramp),
                     "--socket", args.socket]
            if args.gc_freeze:
                child.append("--gc-freeze")
            load = os.getloadavg()[0]  # other work on the machine, for reading the row
            proc = subprocess.run(child, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{n:5d} failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            same = f"{r['identical']:>5d}/{n:<5d}" if args.engine != "ingest" else f"{'-':>11s}"
            print(
                f"{n:5d} {r['peak_concurrent']:5d} {same} {r['lag_p50_ms']:8.1f} {r['lag_p99_ms']:7.1f} "
                f"{r['lag_max_ms']:7.1f} {r['core_share']:5.2f} {r['cpu_ms_per_call_s']:13.2f} "
                f"{r['rss_kb_per_call']:11.1f} {r['sent']:8d} {r['kernel_lost']:6d} {r['gaps_filled']:6d} "
                f"{r['dropped']:7d} {load:5.2f} {r['live_analyze_us']:6.1f} {r['live_step_us']:7.1f}"
            )
            for m in r["mismatches"]:
                print(f"      {m}")
    print("lag in ms (from the packet's scheduled send time to its frame decided); core: receiving core's busy share;")
    print("peak: calls streaming at the same time; lost: sent, never received; gaps: filled with silence;")
    print("load: the machine's 1-minute load average as the row started (2 cores; 1.3-1.5 of it is this benchmark);")
    print("an us, step us: CPU per decided frame in analyze and in the decision step, inside the live process")
    return 0


if __name__ == "__main__":
    sys.exit(main())

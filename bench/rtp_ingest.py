#!/usr/bin/env python3
"""RTP ingest cost: what RtpReceiver (parse, pin, reorder, decode) takes per packet on one core.

    python bench/rtp_ingest.py [CALLS] [SECONDS_OF_AUDIO_PER_CALL]

Two figures:
  in process  packets handed straight to datagram_received (no sockets): our code alone;
  loopback    a sender process on another core sends one 172-byte mu-law packet per call every
              20 ms (real time) to CALLS receivers on 127.0.0.1, received by this process's event
              loop (uvloop when installed): sockets and the loop included. Packets the kernel
              dropped count as lost; "CPU share" is the receiving core's busy fraction.
A call is 50 packets/s, so packets/s of CPU / 50 is the number of calls one core keeps up with
(before any detection).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import socket
import sys
import time
from typing import Any

import numpy as np
import structlog

from ari_amd.media import PortPool, RtpReceiver, build_packet

FIRST_PORT = 42000
FRAME = 160  # 20 ms of mu-law
PACKETS_PER_S = 50
SENDER_CORE_ENV = "RTP_INGEST_SENDER_CORE"


def packets(n: int, ssrc: int) -> list[bytes]:
    payload = bytes(np.random.default_rng(ssrc).integers(0, 256, FRAME, dtype=np.uint8))
    return [build_packet(payload, sequence=i, timestamp=i * FRAME, ssrc=ssrc) for i in range(n)]


def in_process(calls: int, per_call: int) -> tuple[int, float]:
    sink = [0]

    def on_audio(samples: np.ndarray, rate: int) -> None:
        sink[0] += len(samples)

    receivers = [RtpReceiver("ulaw", on_audio) for _ in range(calls)]
    streams = [packets(per_call, 1000 + c) for c in range(calls)]
    addrs = [("127.0.0.1", 20000 + c) for c in range(calls)]
    start = time.process_time()
    for i in range(per_call):
        for rx, stream, addr in zip(receivers, streams, addrs):
            rx.datagram_received(stream[i], addr)
    cpu = time.process_time() - start
    return calls * per_call, cpu


def _send_paced(ports: list[int], per_call: int, ready: Any) -> None:
    os.sched_setaffinity(0, {int(os.environ[SENDER_CORE_ENV])})
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    streams = [packets(per_call, 1000 + c) for c in range(len(ports))]
    ready.wait()
    start = time.perf_counter()
    for i in range(per_call):
        for port, stream in zip(ports, streams):
            s.sendto(stream[i], ("127.0.0.1", port))
        # One packet per call per 20 ms, like Asterisk: sleep to the next tick.
        delay = start + (i + 1) / PACKETS_PER_S - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


async def loopback(calls: int, per_call: int) -> tuple[int, int, float, float]:
    pool = PortPool(FIRST_PORT, FIRST_PORT + calls - 1)
    receivers = [await RtpReceiver.open(pool, "ulaw", lambda s, r: None) for _ in range(calls)]
    ready = mp.Event()
    sender = mp.Process(target=_send_paced, args=([rx.port for rx in receivers], per_call, ready))
    sender.start()
    await asyncio.sleep(0.5)  # let the sender build its packets
    wall, cpu = time.perf_counter(), time.process_time()
    ready.set()
    while sender.is_alive():
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # drain what is still queued in the sockets
    wall, cpu = time.perf_counter() - wall - 0.2, time.process_time() - cpu
    received = sum(rx.stats.received for rx in receivers)
    for rx in receivers:
        await rx.aclose()
    return calls * per_call, received, wall, cpu


def main() -> int:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10
    per_call = int(seconds * PACKETS_PER_S)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    cores = os.sched_getaffinity(0)
    os.environ[SENDER_CORE_ENV] = str(max(cores))  # the sender inherits our pinned affinity, not this
    os.sched_setaffinity(0, {min(cores)})
    try:
        import uvloop  # type: ignore[import-not-found]

        loop_name = "uvloop"
        run = uvloop.run
    except ImportError:
        loop_name = "asyncio"
        run = asyncio.run

    print(f"$ python bench/rtp_ingest.py {calls} {seconds:g}")
    header = f"{'run':24s} {'packets':>9s} {'received':>9s} {'CPU s':>7s} {'CPU share':>9s}"
    print(header + f" {'packets/s CPU':>14s} {'us/packet':>10s} {'calls/core':>10s}")
    n, cpu = in_process(calls, per_call)
    print(
        f"{'in process':24s} {n:9d} {n:9d} {cpu:7.2f} {'':>9s} {n / cpu:14.0f} {cpu / n * 1e6:10.1f} "
        f"{n / cpu / PACKETS_PER_S:10.0f}"
    )
    if (os.cpu_count() or 1) < 2:
        print("loopback: needs two cores (sender and receiver)")
        return 0
    sent, received, wall, cpu = run(loopback(calls, per_call))
    rate = received / cpu if cpu else 0.0
    print(
        f"{'loopback, ' + loop_name:24s} {sent:9d} {received:9d} {cpu:7.2f} {cpu / wall:9.2f} {rate:14.0f} "
        f"{(cpu / received * 1e6 if received else 0):10.1f} {rate / PACKETS_PER_S:10.0f}"
    )
    print(f"loopback wall {wall:.2f} s, lost in the kernel {sent - received} ({(sent - received) / sent:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Bulk RTP receive: what one socket for every call, read with recvmmsg, would cost per packet.

    python bench/bulk_recv.py [--streams 1000] [--seconds 6] [--tick-ms 20]

The plan for issue 5's 1000-stream floor (docs/ROBUSTNESS.md): today each call has its own
socket, and every packet costs ~10 us in the live process (uvloop, RtpReceiver, the batch
queue). Here a sender process (core 1) sends N calls' 20 ms mu-law packets, each call from its own
source port as Asterisk's externalMedia channels do, to ONE socket of this process (core 0),
which every tick drains with recvmmsg (up to 1024 datagrams a system call, through ctypes: Python's
socket has no recvmmsg) and checks as arrays: RTP version and payload type, length, the source's
next sequence number; the in-sequence payloads are the block a FrameBatch would take. Printed:
CPU per packet in all, and in the recvmmsg calls (the kernel's share, which no user-space design
removes). Not used by the service yet: a prototype's measure, to decide on the design.
Loopback only; Linux only (recvmmsg).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import multiprocessing as mp
import os
import socket
import sys
import time

import numpy as np

from ari_amd.media import build_packet
from ari_amd.media.batch import occurrence_rank

VLEN = 1024  # datagrams per recvmmsg call
SLOT = 256  # bytes of buffer per datagram (an RTP packet of 20 ms G.711 is 172)
PACKET = 172
MSG_DONTWAIT = 0x40
# struct mmsghdr and struct iovec on 64-bit Linux, as numpy records: the kernel reads the
# pointers from them and writes each datagram's length into msg_len.
MMSGHDR = np.dtype({
    "names": ["name", "namelen", "iov", "iovlen", "control", "controllen", "flags", "len"],
    "formats": [np.uint64, np.uint32, np.uint64, np.uint64, np.uint64, np.uint64, np.int32, np.uint32],
    "offsets": [0, 8, 16, 24, 32, 40, 48, 56],
    "itemsize": 64,
})  # fmt: skip
IOVEC = np.dtype({"names": ["base", "len"], "formats": [np.uint64, np.uint64], "offsets": [0, 8], "itemsize": 16})


def send(port: int, n: int, seconds: float, t0: float) -> None:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    frames = int(seconds / 0.02)
    payload = bytes(160)
    time.sleep(max(0.0, t0 - time.monotonic()))
    for i in range(frames):
        due = t0 + i * 0.02
        late = due - time.monotonic()
        if late > 0:
            time.sleep(late)
        for k, s in enumerate(socks):
            s.sendto(build_packet(payload, sequence=i & 0xFFFF, timestamp=i * 160, ssrc=k), ("127.0.0.1", port))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--tick-ms", type=float, default=20.0, help="how often the socket is drained")
    args = ap.parse_args()
    if not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2:
        print("needs Linux (recvmmsg) and two cores", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    recvmmsg = libc.recvmmsg
    recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    buf = np.zeros((VLEN, SLOT), np.uint8)
    names = np.zeros((VLEN, 16), np.uint8)  # struct sockaddr_in: the source's port at bytes 2-3
    iov = np.zeros(VLEN, IOVEC)
    iov["base"] = buf.ctypes.data + np.arange(VLEN) * SLOT
    iov["len"] = SLOT
    msgs = np.zeros(VLEN, MMSGHDR)
    msgs["name"] = names.ctypes.data + np.arange(VLEN) * 16
    msgs["namelen"] = 16
    msgs["iov"] = iov.ctypes.data + np.arange(VLEN) * IOVEC.itemsize
    msgs["iovlen"] = 1
    next_seq = np.zeros(65536, np.int64)  # by source port: the sequence number due next

    t0 = time.monotonic() + 1.0 + args.streams * 0.0002
    sender = mp.get_context("fork").Process(target=send, args=(rx.getsockname()[1], args.streams, args.seconds, t0))
    sender.start()
    time.sleep(max(0.0, t0 - time.monotonic()))
    received = in_sequence = calls = 0
    cpu0 = time.process_time()
    in_kernel = 0.0
    end = t0 + args.seconds + 0.2
    while time.monotonic() < end:
        time.sleep(args.tick_ms / 1000)
        while True:
            k0 = time.process_time()
            n = recvmmsg(rx.fileno(), msgs.ctypes.data, VLEN, MSG_DONTWAIT, None)
            in_kernel += time.process_time() - k0
            if n <= 0:
                break
            calls += 1
            received += n
            b = buf[:n]
            port = (names[:n, 2].astype(np.int64) << 8) | names[:n, 3]
            seq = (b[:, 2].astype(np.int64) << 8) | b[:, 3]
            # A call may have several packets in one read: the k-th of them is due at next + k.
            due = (next_seq[port] + occurrence_rank(port)) & 0xFFFF
            ok = (msgs["len"][:n] == PACKET) & (b[:, 0] == 0x80) & ((b[:, 1] & 0x7F) == 0) & (seq == due)
            # The last of each call's run (this sender's numbers never wrap: under 65536 a call).
            np.maximum.at(next_seq, port[ok], seq[ok] + 1)
            block = b[ok, 12:PACKET]  # what the batch would decode in one lookup
            in_sequence += len(block)
    cpu = time.process_time() - cpu0
    sender.join()
    sent = args.streams * int(args.seconds / 0.02)
    print(f"$ python bench/bulk_recv.py --streams {args.streams} --seconds {args.seconds:g} --tick-ms {args.tick_ms:g}")
    print(
        f"{args.streams} streams, {sent} packets sent, {received} received ({received - in_sequence} off the fast "
        f"path: reordered or lost), {received / max(calls, 1):.0f} per recvmmsg call: "
        f"{cpu / max(received, 1) * 1e6:.2f} us CPU per packet, {in_kernel / max(received, 1) * 1e6:.2f} of it "
        f"in recvmmsg; {cpu / args.seconds:.2f} of a core"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

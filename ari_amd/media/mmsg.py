"""Many UDP datagrams in one system call, into numpy arrays: recvmmsg(2) through ctypes.

Python's socket has no recvmmsg. One call to it fills up to `capacity` rows of a preallocated
buffer and tells each datagram's length and IPv4 source, so a socket carrying every call's RTP
costs one system call per few hundred packets, and the packets' headers can be checked as arrays
(ari_amd.media.hub). Where recvmmsg is missing (not Linux), the same arrays are filled by a
recvfrom_into loop: slower, same results.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import sys

import numpy as np

MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20  # in a message's flags: the datagram was longer than its row
SOCKADDR_IN = 16  # bytes of struct sockaddr_in: family, port (big-endian) at 2-3, address at 4-7
# With SO_RXQ_OVFL set, each datagram comes with the kernel's count of datagrams the socket has
# dropped so far (a full receive buffer), as a control message: a cmsghdr (length 8 bytes, level
# and type 4 each) and the count (uint32). Linux's number; Python does not name it.
SO_RXQ_OVFL = 40
CONTROL = 24  # CMSG_SPACE(4)
# struct mmsghdr and struct iovec on 64-bit Linux, as numpy records: the kernel reads the
# pointers from them and writes each datagram's length into `len`, its flags into `flags`.
MMSGHDR = np.dtype({
    "names": ["name", "namelen", "iov", "iovlen", "control", "controllen", "flags", "len"],
    "formats": [np.uint64, np.uint32, np.uint64, np.uint64, np.uint64, np.uint64, np.int32, np.uint32],
    "offsets": [0, 8, 16, 24, 32, 40, 48, 56],
    "itemsize": 64,
})  # fmt: skip
IOVEC = np.dtype({"names": ["base", "len"], "formats": [np.uint64, np.uint64], "offsets": [0, 8], "itemsize": 16})


def _load_recvmmsg() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    fn = getattr(ctypes.CDLL(name, use_errno=True), "recvmmsg", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


_RECVMMSG = _load_recvmmsg()


class DatagramBatch:
    """Buffers for up to `capacity` datagrams of up to `size` bytes, refilled by `recv`.

    After `n = recv(sock)`, rows 0..n-1 of `data` hold the datagrams, `lengths` their sizes (for
    a truncated one, the part kept), `truncated` whether it was longer than `size`, and
    `src_ip`/`src_port` its IPv4 source (the address as
    a host-order integer). The socket must be non-blocking. `dropped`: the kernel's count of
    datagrams the socket dropped, as of the last one read, once `count_drops` is on.
    """

    def __init__(self, capacity: int = 1024, size: int = 1500, use_recvmmsg: bool = True) -> None:
        self.capacity = capacity
        self.size = size
        self.data = np.zeros((capacity, size), np.uint8)
        self._names = np.zeros((capacity, SOCKADDR_IN), np.uint8)
        self._iov = np.zeros(capacity, IOVEC)
        self._iov["base"] = self.data.ctypes.data + np.arange(capacity, dtype=np.uint64) * size
        self._iov["len"] = size
        self._msgs = np.zeros(capacity, MMSGHDR)
        self._msgs["name"] = self._names.ctypes.data + np.arange(capacity, dtype=np.uint64) * SOCKADDR_IN
        self._msgs["iov"] = self._iov.ctypes.data + np.arange(capacity, dtype=np.uint64) * IOVEC.itemsize
        self._msgs["iovlen"] = 1
        self._control = np.zeros((capacity, CONTROL), np.uint8)
        self._msgs["control"] = self._control.ctypes.data + np.arange(capacity, dtype=np.uint64) * CONTROL
        self.dropped = 0
        self._fallback_lengths = np.zeros(capacity, np.int64)
        self._fallback_flags = np.zeros(capacity, np.int32)
        self.uses_recvmmsg = use_recvmmsg and _RECVMMSG is not None
        self.n = 0

    @staticmethod
    def count_drops(sock: socket.socket) -> bool:
        """Ask the kernel to tell each datagram read the socket's drop count (Linux); False elsewhere."""
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        except OSError:
            return False
        return True

    def recv(self, sock: socket.socket) -> int:
        """Read what the socket holds now, up to `capacity` datagrams; never blocks. Raises OSError
        for a socket error other than 'nothing to read'."""
        if self.uses_recvmmsg:
            assert _RECVMMSG is not None
            # The kernel overwrites both with the lengths it used.
            self._msgs["namelen"] = SOCKADDR_IN
            self._msgs["controllen"] = CONTROL
            n: int = _RECVMMSG(sock.fileno(), self._msgs.ctypes.data, self.capacity, MSG_DONTWAIT, None)
            if n < 0:
                err = ctypes.get_errno()
                if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    n = 0
                else:
                    raise OSError(err, f"recvmmsg: {errno.errorcode.get(err, err)}")
            if n > 0 and self._msgs["controllen"][n - 1] >= CONTROL - 4:
                self._take_dropped(self._control[n - 1].tobytes())
        else:
            n = self._recv_loop(sock)
        self.n = n
        return n

    def _take_dropped(self, cmsg: bytes) -> None:
        """The count from one SO_RXQ_OVFL control message (cumulative: the latest is the total)."""
        level, kind = int.from_bytes(cmsg[8:12], sys.byteorder), int.from_bytes(cmsg[12:16], sys.byteorder)
        if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL:
            self.dropped = max(self.dropped, int.from_bytes(cmsg[16:20], sys.byteorder))

    def _recv_loop(self, sock: socket.socket) -> int:
        n = 0
        while n < self.capacity:
            try:
                size, ancdata, flags, addr = sock.recvmsg_into([memoryview(self.data[n])], CONTROL)
            except (BlockingIOError, InterruptedError):
                break
            self._fallback_lengths[n] = size
            self._fallback_flags[n] = MSG_TRUNC if flags & socket.MSG_TRUNC else 0
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(data) >= 4:
                    self.dropped = max(self.dropped, int.from_bytes(data[:4], sys.byteorder))
            name = self._names[n]
            name[2:4] = np.frombuffer(int(addr[1]).to_bytes(2, "big"), np.uint8)
            name[4:8] = np.frombuffer(socket.inet_aton(addr[0]), np.uint8)
            n += 1
        return n

    @property
    def lengths(self) -> np.ndarray:
        if self.uses_recvmmsg:
            return self._msgs["len"][: self.n].astype(np.int64)
        return self._fallback_lengths[: self.n]

    @property
    def truncated(self) -> np.ndarray:
        flags = self._msgs["flags"][: self.n] if self.uses_recvmmsg else self._fallback_flags[: self.n]
        return np.asarray((flags & MSG_TRUNC) != 0)

    @property
    def src_port(self) -> np.ndarray:
        names = self._names[: self.n]
        return (names[:, 2].astype(np.int64) << 8) | names[:, 3]

    @property
    def src_ip(self) -> np.ndarray:
        return self._names[: self.n, 4:8].copy().view(">u4").ravel().astype(np.int64)


def ip_to_int(host: str) -> int:
    """A dotted IPv4 address as the integer DatagramBatch.src_ip gives."""
    return int.from_bytes(socket.inet_aton(host), "big")


def int_to_ip(value: int) -> str:
    return socket.inet_ntoa(int(value).to_bytes(4, "big"))

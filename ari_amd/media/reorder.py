"""Put RTP payloads back in sequence order, and say where packets were lost.

The detector's clock is the audio it has seen, so a lost packet must become silence of the
packet's length, not nothing: otherwise every threshold after a loss fires late. The buffer
waits for a missing packet only until `window` later packets have arrived (there is no timer
here; `flush` drains what is left when the stream stops), so on a clean stream it adds no delay
and on a reordered one at most `window` packets.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from ari_amd.media.rtp import seq_add, seq_diff

DEFAULT_WINDOW = 4  # packets: 80 ms of 20 ms frames; loopback from Asterisk rarely reorders at all
# RFC 3550 appendix A.1's limits, in packets. A packet further behind than MAX_MISORDER, or
# further ahead than MAX_DROPOUT, is taken as a sender that restarted its numbering once the next
# packet follows it in sequence; alone it is dropped. MAX_DROPOUT is 10 s at 20 ms: a longer gap
# is not filled with silence.
MAX_MISORDER = 100
MAX_DROPOUT = 500
DUPLICATE_HISTORY = 64  # packets remembered after delivery, to tell a duplicate from a late one

T = TypeVar("T")


@dataclass(slots=True)
class ReorderStats:
    lost: int = 0  # gaps filled (packets never seen in time)
    reordered: int = 0  # arrived after a later packet, still in time
    duplicates: int = 0  # already buffered or delivered
    late: int = 0  # arrived after its place had been given up as lost
    out_of_range: int = 0  # a jump beyond MAX_MISORDER / MAX_DROPOUT not confirmed by its successor
    resyncs: int = 0  # jumps confirmed as a restart of the sender's numbering


class ReorderBuffer(Generic[T]):
    """Feed (seq, item) in arrival order; get (seq, item) in sequence order, item None for a loss."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError("the window is at least one packet")
        self.window = window
        self.stats = ReorderStats()
        self._next: int | None = None  # the sequence number to deliver next
        self._highest = 0  # the highest sequence number buffered so far
        self._pending: dict[int, T] = {}
        # Looked through only for a packet behind the next one (rare): a scan of 64 beats keeping
        # a set beside it on every packet.
        self._recent: deque[int] = deque(maxlen=DUPLICATE_HISTORY)
        self._probe: tuple[int, T] | None = None  # a packet after a big jump, awaiting its successor

    @property
    def pending(self) -> int:
        return len(self._pending)

    def push(self, seq: int, item: T) -> list[tuple[int, T | None]]:
        if self._next is None:
            self._next = self._highest = seq
        d = seq_diff(seq, self._next)
        if d < -MAX_MISORDER or d > MAX_DROPOUT:
            return self._jump(seq, item, behind=d < 0)
        self._probe = None
        if d < 0:
            if seq in self._recent:
                self.stats.duplicates += 1
            else:
                self.stats.late += 1
            return []
        if seq in self._pending:
            self.stats.duplicates += 1
            return []
        if seq_diff(seq, self._highest) < 0:
            self.stats.reordered += 1
        else:
            self._highest = seq
        self._pending[seq] = item
        return self._drain(force=False)

    def take_next(self, seq: int) -> bool:
        """The fast path: if `seq` is exactly the packet due, with nothing buffered, account for it
        as delivered and return True (the caller hands its item on at once); otherwise False,
        and the caller must push() it. Saves the per-packet dict and list of push()."""
        if seq != self._next or self._pending or self._probe is not None:
            return False
        self._highest = seq
        self._next = (seq + 1) & 0xFFFF
        self._recent.append(seq)
        return True

    @property
    def next_seq(self) -> int | None:
        """The sequence number due next, once a stream has started."""
        return self._next

    @property
    def in_sequence(self) -> bool:
        """Nothing held back and no jump pending: the next packet due is taken as it comes."""
        return self._next is not None and not self._pending and self._probe is None

    def start(self, seq: int) -> None:
        """Begin the stream at `seq` (the first packet, taken elsewhere: `took` accounts for it)."""
        assert self._next is None and not self._pending
        self._next = self._highest = seq

    def took(self, count: int) -> None:
        """Account for `count` packets, from the one due on, taken in sequence elsewhere (a shared
        socket's array fast path): as `count` calls of take_next would."""
        if count <= 0:
            return
        assert self.in_sequence and self._next is not None
        nxt = self._next
        self._recent.extend((nxt + i) & 0xFFFF for i in range(max(0, count - DUPLICATE_HISTORY), count))
        self._highest = (nxt + count - 1) & 0xFFFF
        self._next = (nxt + count) & 0xFFFF

    def flush(self) -> list[tuple[int, T | None]]:
        """Deliver everything buffered, gaps as losses (the stream stopped or is being reset)."""
        return self._drain(force=True)

    def reset(self) -> list[tuple[int, T | None]]:
        """Flush, then forget the position: the next packet starts a new stream (a new SSRC)."""
        out = self.flush()
        self._next = None
        self._probe = None
        self._recent.clear()
        return out

    def _jump(self, seq: int, item: T, behind: bool) -> list[tuple[int, T | None]]:
        if self._probe is not None and seq == seq_add(self._probe[0], 1):
            probe_seq, probe_item = self._probe
            out = self.reset()
            self.stats.resyncs += 1
            self.stats.out_of_range -= 1  # the probe was counted when it arrived; it is delivered now
            out += self.push(probe_seq, probe_item)
            out += self.push(seq, item)
            return out
        if behind and seq in self._recent:
            self.stats.duplicates += 1
            return []
        self._probe = (seq, item)
        self.stats.out_of_range += 1
        return []

    def _drain(self, force: bool) -> list[tuple[int, T | None]]:
        out: list[tuple[int, T | None]] = []
        assert self._next is not None or not self._pending
        while self._pending:
            nxt = self._next
            assert nxt is not None
            if nxt in self._pending:
                out.append((nxt, self._pending.pop(nxt)))
                self._recent.append(nxt)
            elif force or seq_diff(self._highest, nxt) >= self.window:
                out.append((nxt, None))
                self.stats.lost += 1
            else:
                break
            self._next = seq_add(nxt, 1)
        return out

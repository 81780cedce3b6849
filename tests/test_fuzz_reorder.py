"""ReorderBuffer under random loss, duplicates, bounded reordering and the 16-bit wrap, against a model."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ari_amd.media import ReorderBuffer, seq_add, seq_diff
from ari_amd.media.reorder import DUPLICATE_HISTORY


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[int, int, list[int], set[int], int]:
    """(window, start, arrival order of sequence numbers, the ones lost, extra copies sent).

    Each packet is displaced by less than the window (jitter 0..window-1 on its send slot), so
    nothing that arrives is ever given up as lost: what the buffer must deliver is then exact.
    The first packet is neither lost nor overtaken: it is where the stream starts.
    """
    window = draw(st.integers(1, 8))
    # Starts near the wrap half the time: sequence numbers run through 65535 -> 0.
    start = draw(st.integers(65536 - 120, 65535) | st.integers(0, 65535))
    n = draw(st.integers(1, 250))
    lost_p = draw(st.sampled_from([0.0, 0.05, 0.3]))
    dup_p = draw(st.sampled_from([0.0, 0.1]))
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))  # hypothesis's own randoms cost ~30 ms/example here
    lost = {i for i in range(1, n) if rnd.random() < lost_p}
    keyed: list[tuple[float, int]] = []
    copies = 0
    for i in range(n):
        if i in lost:
            continue
        jitter = 0 if i == 0 else rnd.randrange(window)
        keyed.append((i + jitter + rnd.random() * 0.5, i))
        if i and rnd.random() < dup_p:
            copies += 1
            # A copy arrives within the duplicate history, so it is told from a late packet.
            keyed.append((i + jitter + rnd.randrange(1, DUPLICATE_HISTORY // 2), i))
    order = [seq_add(start, i) for _, i in sorted(keyed)]
    return window, start, order, {seq_add(start, i) for i in lost}, copies


@settings(max_examples=500)
@given(arrivals())
def test_delivers_every_packet_once_in_order_with_losses_as_silence(
    case: tuple[int, int, list[int], set[int], int],
) -> None:
    window, start, order, lost, copies = case
    buf: ReorderBuffer[int] = ReorderBuffer(window)
    out: list[tuple[int, int | None]] = []
    for seq in order:
        out += buf.push(seq, seq)
        assert buf.pending <= window + 1  # the buffer holds no more than the window waits for
    out += buf.flush()

    highest = max((seq_diff(s, start) for s in order), default=0)
    expected = [seq_add(start, i) for i in range(highest + 1)]
    assert [s for s, _ in out] == expected  # consecutive, across the wrap
    for seq, item in out:
        assert item == (None if seq in lost else seq)
    assert buf.stats.lost == sum(1 for s in expected if s in lost)
    assert buf.stats.duplicates == copies
    assert buf.stats.late == 0 and buf.stats.out_of_range == 0


@settings(max_examples=400)
@given(
    window=st.integers(1, 8),
    start=st.integers(0, 65535),
    offsets=st.lists(st.integers(-40, 40), max_size=120),
)
def test_whatever_arrives_the_output_is_consecutive_and_counted(window: int, start: int, offsets: list[int]) -> None:
    # No model here: any arrival pattern near the stream (late, early, repeated) keeps the output
    # strictly consecutive, and every push is accounted for once.
    buf: ReorderBuffer[int] = ReorderBuffer(window)
    out: list[tuple[int, int | None]] = []
    for pos, off in enumerate(offsets, start=1):
        out += buf.push(seq_add(start, pos + off), pos)
    out += buf.flush()
    for (a, _), (b, _) in zip(out, out[1:]):
        assert seq_diff(b, a) == 1
    s = buf.stats
    delivered = sum(1 for _, item in out if item is not None)
    assert delivered + s.duplicates + s.late + s.out_of_range == len(offsets)
    assert sum(1 for _, item in out if item is None) == s.lost

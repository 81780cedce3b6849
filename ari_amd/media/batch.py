"""Every call's detector, one vectorised feature step and one vectorised decision step per tick.

`Detector.feed` on one 20 ms packet spends ~260 us in numpy's fixed cost per call for 160 samples
of work: fine for a call, 13 s of CPU per second for 1000 calls. Here each call's receiver queues
its whole frames (G.711 payloads undecoded: decoding one costs more than a frame's share of the
whole tick's), and every tick (`TICK_MS`) one `analyze` runs over all calls' frames at once;
then the decision step runs over every call's row at once (`ari_amd.detect.vector`: numpy over
the calls' state, each call's own scalar step for its rare frames), a call's rows in arrival
order. Framing and scaling are those of `Detector.feed`, so the verdicts are the same to the
millisecond as feeding the call's audio to one detector (tests/test_media_batch.py).

A frame waits at most one tick plus the tick's work. What one core holds, and where the time
goes, is in docs/ROBUSTNESS.md (bench/media_load.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
import structlog

from ari_amd.detect.detector import Detector
from ari_amd.detect.features import FRAME, SAMPLE_RATE, Features, analyze
from ari_amd.detect.g711 import G711_TO_FLOAT, decode_g711_frame
from ari_amd.detect.resample import Decimator
from ari_amd.detect.vector import MIN_VECTOR_ROWS, VectorDecider
from ari_amd.detect.verdict import AmdEvent
from ari_amd.media.heap import freeze_startup_objects, keep_heap

TICK_MS = 10  # half a packet interval: calls' packets arrive spread over the 20 ms
# analyze's temporaries for 1000 rows (several MB of complex128) fall out of cache and cost
# twice as much per frame as blocks of a few hundred.
MAX_ROWS_PER_ANALYZE = 256
INT_SCALE = 32768.0  # int16 full scale, as Detector.feed scales
# A tick's queues are decided in this order. A call that has queued into a later one this tick
# puts its next frames there too (converted), so that its own frames keep their order.
G711, INT16, FLOAT = 0, 1, 2

EventCallback = Callable[["BatchSession", list[AmdEvent]], None]
TickCallback = Callable[[float, int, int], None]  # seconds of work, frames by the vector and the scalar step
Feeder = Callable[[], object]  # run at the start of each tick, before its frames are decided

log = structlog.get_logger(__name__)


class BatchSession:
    """One call in a FrameBatch: feed it audio (it is an RtpReceiver on_audio callback, and its
    feed_g711 the on_g711 one). While it is in the batch, its detector's state lives in the
    batch's columns: `detector` brings the object up to date before handing it out."""

    __slots__ = (
        "batch", "_det", "_slot", "on_events", "closed", "decided", "sample_rate", "law", "_decimator", "_pending",
        "_tick", "_level", "on_leave",
    )

    def __init__(
        self,
        batch: FrameBatch,
        detector: Detector,
        sample_rate: int,
        on_events: EventCallback | None,
        law: str | None = None,
    ) -> None:
        if sample_rate not in (SAMPLE_RATE, 2 * SAMPLE_RATE):
            raise ValueError(f"sample_rate must be 8000 or 16000 (got {sample_rate})")
        if law is not None and (law not in G711_TO_FLOAT or sample_rate != SAMPLE_RATE):
            raise ValueError(f"law must be one of {sorted(G711_TO_FLOAT)}, at 8000 Hz (got {law!r} at {sample_rate})")
        self.batch = batch
        self.law = law
        self._det = detector
        self._slot: int | None = batch._vector.add(detector)
        self.on_events = on_events
        self.closed = False
        self.decided = detector.done  # the final verdict is out (only this batch steps the detector)
        self.sample_rate = sample_rate
        self._decimator = Decimator() if sample_rate == 2 * SAMPLE_RATE else None
        self._pending = np.zeros(0, dtype=np.float32)
        self._tick = -1  # the last tick this call queued frames in...
        self._level = G711  # ...and the latest of its queues it used then
        self.on_leave: Callable[[], None] | None = None  # told when the call leaves the batch (RtpHub)

    def record(self, into: list[np.ndarray]) -> None:
        """Append each frame this call's detector is given to `into`, as int16 at 8 kHz (what it
        heard, after decoding and decimation), whichever way the frame was queued."""
        if self._slot is not None:
            self.batch._recorders[self._slot] = into

    @property
    def slot(self) -> int | None:
        """The call's column in the batch's decider while it is in the batch (queue_g711_block's owner)."""
        return self._slot

    @property
    def detector(self) -> Detector:
        if self._slot is not None:
            self.batch._vector.sync(self._slot)
        return self._det

    def __call__(self, samples: np.ndarray, sample_rate: int) -> None:
        if sample_rate != self.sample_rate:
            raise ValueError(f"audio at {sample_rate} Hz for a {self.sample_rate} Hz call")
        self.feed(samples)

    def feed_g711(self, payload: bytes | None) -> None:
        """Queue one 20 ms G.711 payload undecoded (None: a lost frame, silence); the tick decodes
        every call's in one lookup. An RtpReceiver's on_g711 callback."""
        if self.closed or self.decided:
            return
        if self.law is None:
            raise ValueError("feed_g711 on a session made without a G.711 law")
        if payload is not None and len(payload) != FRAME:
            raise ValueError(f"a G.711 frame is {FRAME} bytes (got {len(payload)})")
        batch = self.batch
        if len(self._pending) or (self._tick == batch._tick_id and self._level > G711):
            # Behind a partial frame, or after frames queued later in this tick: decoded, in order.
            self.feed(decode_g711_frame(self.law, payload, FRAME))
            return
        self._tick, self._level = batch._tick_id, G711  # (within a tick, its level was G711 already)
        # Queued inline (not through a FrameBatch method): this runs for every packet of every call.
        batch._g711_frames[self.law].append(payload)
        batch._g711_owners[self.law].append(self._slot)  # type: ignore[arg-type]  # set while in the batch
        batch._g711_queued += 1

    def feed(self, samples: np.ndarray) -> None:
        """Queue the whole frames of `samples` for the next tick; a partial frame waits for more."""
        if self.closed or self.decided:
            return
        x = np.asarray(samples)
        if x.ndim != 1:
            # Refused here, at the caller: a 2-D frame would break the whole tick's analyze.
            raise ValueError(f"mono audio is a 1-D array (got shape {x.shape})")
        batch = self.batch
        if (
            x.dtype == np.int16
            and len(x) == FRAME
            and self._decimator is None
            and not len(self._pending)
            and (self._tick != batch._tick_id or self._level <= INT16)
        ):
            # The usual case, one 20 ms packet: scaled with the whole tick's. It is read only at the
            # tick, so a view of a buffer the caller may reuse is copied (decoded RTP never is one).
            self._tick, self._level = batch._tick_id, INT16
            batch._queue_int(self, x if x.flags.owndata else x.copy())
            batch._raised.add(self._slot)  # type: ignore[arg-type]
            return
        x = x.astype(np.float32) / INT_SCALE if x.dtype.kind in "iu" else x.astype(np.float32, copy=False)
        if self._decimator is not None:
            x = self._decimator.process(x)
        buf = np.concatenate((self._pending, x)) if len(self._pending) else x
        n = len(buf) // FRAME
        if n:
            # Float frames are decided last in the tick: this call queues no more G.711 or int16
            # frames this tick, so its own frames keep their order.
            self._tick, self._level = batch._tick_id, FLOAT
            for i in range(n):
                batch._queue_float(self, buf[i * FRAME : (i + 1) * FRAME])
            batch._raised.add(self._slot)  # type: ignore[arg-type]
        self._pending = buf[n * FRAME :].copy()
        if len(self._pending):
            batch._partial.add(self._slot)  # type: ignore[arg-type]
        else:
            batch._partial.discard(self._slot)

    def finish(self, cause: str = "end_of_audio") -> list[AmdEvent]:
        """End of the call's audio: decide its queued frames now, then `Detector.finish`."""
        if self.closed:
            return []
        self.batch.process()  # this call's queued frames are decided before its end
        self._leave()
        events = self._det.finish(cause)
        if events:
            self.batch._notify(self, events)
        return events

    def close(self) -> None:
        """Leave the batch without a verdict (the call is gone); queued frames are skipped."""
        self._leave()

    def _leave(self) -> None:
        self.closed = True
        self.batch._sessions.discard(self)
        if self._slot is not None:
            # The detector object takes its state back; frames still queued for it are skipped.
            self.batch._vector.retire(self._slot)
            self.batch._partial.discard(self._slot)
            self.batch._recorders.pop(self._slot, None)
            self._slot = None
        if self.on_leave is not None:
            on_leave, self.on_leave = self.on_leave, None
            on_leave()


class FrameBatch:
    """The calls of one event loop, their frames decided together once per tick."""

    def __init__(
        self, tick_ms: int = TICK_MS, min_vector_rows: int = MIN_VECTOR_ROWS, on_tick: TickCallback | None = None
    ) -> None:
        """min_vector_rows: calls in a pass from which the vector decision step is used.
        on_tick: after each tick of run() that had work (the service's metrics)."""
        if tick_ms <= 0:
            raise ValueError("tick_ms must be positive")
        self.tick_ms = tick_ms
        self.on_tick = on_tick
        self.feeders: list[Feeder] = []  # run() calls each at the start of a tick (RtpHub.drain)
        self.frames_processed = 0
        self.ticks = 0
        self.callback_errors = 0
        self.step_errors = 0  # calls whose detector raised: closed, the others unaffected
        self._sessions: set[BatchSession] = set()
        self._vector = VectorDecider(min_rows=min_vector_rows)
        self._by_slot: dict[int, BatchSession] = {}
        self._depth = 0  # process() within process() (a callback finishing a call)
        self._tick_id = 0
        # Per tick, in the order they are decided: G.711 payloads by law (decoded all at once),
        # int16 packets as they came (scaled all at once, the way Detector.feed scales a chunk),
        # and frames already float (float input, slin16 after decimation, odd packet sizes).
        self._g711_frames: dict[str, list[bytes | None]] = {law: [] for law in G711_TO_FLOAT}
        # Each frame's owner is its call's slot in the VectorDecider.
        self._g711_owners: dict[str, list[int]] = {law: [] for law in G711_TO_FLOAT}
        # Whole blocks (queue_g711_block), each after the frames of its law queued before it:
        # (law, payloads as a list or a uint8 [n, FRAME] array, owners), in queueing order.
        self._g711_segments: list[tuple[str, list[bytes | None] | np.ndarray, list[int] | np.ndarray]] = []
        self._g711_queued = 0
        # Slots whose G.711 frames must come one by one through feed_g711 for now, to stay in
        # order: queued int16 or float frames this tick, or hold part of a frame.
        self._raised: set[int] = set()
        self._partial: set[int] = set()
        self._recorders: dict[int, list[np.ndarray]] = {}  # by slot: BatchSession.record
        self._int_frames: list[np.ndarray] = []
        self._int_owners: list[int] = []
        self._float_frames: list[np.ndarray] = []
        self._float_owners: list[int] = []

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def queued(self) -> int:
        return self._g711_queued + len(self._int_frames) + len(self._float_frames)

    def add(
        self,
        detector: Detector | None = None,
        sample_rate: int = SAMPLE_RATE,
        on_events: EventCallback | None = None,
        law: str | None = None,
    ) -> BatchSession:
        """A new call; its detector's rate is the media's (8000, or 16000 for slin16). With `law`
        ("ulaw", "alaw"), the call can also take undecoded G.711 frames (feed_g711)."""
        session = BatchSession(self, detector or Detector(sample_rate=sample_rate), sample_rate, on_events, law)
        self._sessions.add(session)
        assert session._slot is not None
        self._by_slot[session._slot] = session
        return session

    def queue_g711_block(self, law: str, payloads: np.ndarray, slots: np.ndarray) -> None:
        """Queue many calls' 20 ms G.711 frames at once: payloads uint8 [n, FRAME], slots [n] the
        sessions' `slot`s (a call's rows in its arrival order). Decided after the frames of its
        law queued before it and before those queued after. The caller vouches that each slot
        is in the batch and none is in `serial_slots`."""
        if payloads.ndim != 2 or payloads.shape[1] != FRAME or len(slots) != len(payloads):
            raise ValueError(f"a G.711 block is [n, {FRAME}] bytes with n slots (got {payloads.shape}, {len(slots)})")
        if not len(slots):
            return
        if self._g711_frames[law]:
            self._g711_segments.append((law, self._g711_frames[law], self._g711_owners[law]))
            self._g711_frames[law], self._g711_owners[law] = [], []
        self._g711_segments.append((law, payloads, slots))
        self._g711_queued += len(slots)

    def taking(self, slots: np.ndarray) -> np.ndarray:
        """Which of these sessions' slots still take frames (not decided, not closed)."""
        finished: np.ndarray = self._vector.finished[slots]
        return ~finished

    def serial_slots(self) -> set[int]:
        """Slots whose G.711 frames must go through feed_g711 one by one this tick (to stay in
        order behind int16 or float frames), not queue_g711_block."""
        return self._raised | self._partial if self._raised else self._partial

    def process(self) -> int:
        """Decide every queued frame: features in blocks, then each call's step, in order."""
        n = self.queued
        if not n:
            self._raised.clear()
            self._release()
            return 0
        segments = self._g711_segments
        segments += [(law, frames, self._g711_owners[law]) for law, frames in self._g711_frames.items() if frames]
        ints, int_owners = self._int_frames, self._int_owners
        floats, float_owners = self._float_frames, self._float_owners
        self._g711_frames = {law: [] for law in G711_TO_FLOAT}
        self._g711_owners = {law: [] for law in G711_TO_FLOAT}
        self._g711_segments = []
        self._g711_queued = 0
        self._raised.clear()
        self._int_frames, self._int_owners, self._float_frames, self._float_owners = [], [], [], []
        self._tick_id += 1
        self.ticks += 1
        blocks: list[tuple[np.ndarray, list[int] | np.ndarray]] = []
        for law, payloads, owners in segments:
            for start in range(0, len(payloads), MAX_ROWS_PER_ANALYZE):
                stop = start + MAX_ROWS_PER_ANALYZE
                blocks.append((_decode_g711(law, payloads[start:stop]), owners[start:stop]))
        for start in range(0, len(ints), MAX_ROWS_PER_ANALYZE):
            stop = start + MAX_ROWS_PER_ANALYZE
            blocks.append((np.stack(ints[start:stop]).astype(np.float32) / INT_SCALE, int_owners[start:stop]))
        for start in range(0, len(floats), MAX_ROWS_PER_ANALYZE):
            stop = start + MAX_ROWS_PER_ANALYZE
            blocks.append((np.stack(floats[start:stop]), float_owners[start:stop]))
        if self._recorders:
            self._record(blocks)
        self._depth += 1
        try:
            self._decide(blocks)
        finally:
            self._depth -= 1
        self._release()
        self.frames_processed += n
        return n

    def _record(self, blocks: list[tuple[np.ndarray, list[int] | np.ndarray]]) -> None:
        """The recording calls' frames of this tick. A call decided by an earlier frame of this
        same tick has its later ones recorded too (at most a tick's worth past its verdict)."""
        finished = self._vector.finished
        for frames, owners in blocks:
            slots = np.asarray(owners, dtype=np.intp)
            take = np.flatnonzero(np.isin(slots, list(self._recorders)) & ~finished[slots])
            if not len(take):
                continue
            pcm = np.round(frames[take] * INT_SCALE).clip(-32768, 32767).astype(np.int16)
            for slot, row in zip(slots[take].tolist(), pcm):
                self._recorders[slot].append(row)

    def _release(self) -> None:
        """Slots of calls that left are free once no queued frame can name them: after a tick
        (not inside one: a callback may finish a call while later passes still hold its rows)."""
        if not self._depth:
            for slot in self._vector.release():
                del self._by_slot[slot]

    def _decide(self, blocks: list[tuple[np.ndarray, list[int] | np.ndarray]]) -> None:
        """Features block by block (a few hundred rows stay in cache), then one decision step
        over the whole tick (its cost is mostly per pass, not per row)."""
        owners = np.concatenate([np.asarray(o, dtype=np.intp) for _, o in blocks])
        self._step([analyze(frames) for frames, _ in blocks], owners)

    def _step(self, feats: list[Features], owners: np.ndarray) -> None:
        """The decision step on every row (feats: the rows' features, in blocks; owners: their
        calls' slots): one vector pass over distinct calls, so a call with several frames in the
        tick has them in consecutive passes, in order."""
        cols = [np.concatenate([getattr(f, name) for f in feats]).astype(np.float64) for name in _STEP_FEATURES]
        slots = np.asarray(owners, dtype=np.intp)
        n = len(slots)
        if np.unique(slots).size == n:
            passes = [np.arange(n)]
        else:
            rank = occurrence_rank(slots)  # the k-th frame of each call goes in pass k
            passes = [np.flatnonzero(rank == k) for k in range(int(rank.max()) + 1)]
        vector = self._vector
        for rows in passes:
            # Calls closed, or decided by an earlier pass, take no more frames.
            rows = rows[~vector.finished[slots[rows]]]
            if not len(rows):
                continue
            whole = len(rows) == n
            pass_slots = slots if whole else slots[rows]
            events, errors = vector.step(pass_slots, cols if whole else [c[rows] for c in cols])
            for j, error in errors:
                # A detector fault ends that call's detection only; the tick goes on for the rest.
                self._by_slot[int(pass_slots[j])].close()
                self.step_errors += 1
                log.error("batch_step_failed", count=self.step_errors, exc_info=error)
            for j, ev in events:
                session = self._by_slot[int(pass_slots[j])]
                if session.closed:
                    continue
                session.decided = session._det.done  # a final verdict comes with an event
                self._notify(session, ev)

    async def run(self) -> None:
        """Tick until cancelled (one task per event loop)."""
        keep_heap()  # this process decides calls: keep its temporaries' pages between ticks
        freeze_startup_objects()  # and keep full collections, which stall a tick, short
        period = self.tick_ms / 1000
        vector = self._vector
        while True:
            await asyncio.sleep(period)
            t0 = time.perf_counter()
            v0, s0 = vector.vector_rows, vector.scalar_rows
            for feed in self.feeders:
                try:
                    feed()
                except Exception:
                    self.callback_errors += 1  # one source's fault: the others' frames are still decided
                    log.exception("batch_feeder_failed")
            if self.process() and self.on_tick is not None:
                try:
                    self.on_tick(time.perf_counter() - t0, vector.vector_rows - v0, vector.scalar_rows - s0)
                except Exception:
                    self.callback_errors += 1  # the metrics, not the calls: the ticker goes on
                    log.exception("batch_on_tick_failed")

    def _queue_int(self, session: BatchSession, frame: np.ndarray) -> None:
        assert session._slot is not None
        self._int_frames.append(frame)
        self._int_owners.append(session._slot)

    def _queue_float(self, session: BatchSession, frame: np.ndarray) -> None:
        assert session._slot is not None
        self._float_frames.append(frame)
        self._float_owners.append(session._slot)

    def _notify(self, session: BatchSession, events: list[AmdEvent]) -> None:
        if session.on_events is None:
            return
        try:
            session.on_events(session, events)
        except Exception:
            # One call's handler must not stop the tick for every other call.
            self.callback_errors += 1
            n = self.callback_errors
            if n & (n - 1) == 0:
                log.exception("batch_on_events_failed", count=n)


def occurrence_rank(keys: np.ndarray) -> np.ndarray:
    """For each element, how many equal keys come before it: 0 for a call's first row, 1 for
    its second... (a stable sort, then each element's place within its run of equal keys)."""
    n = len(keys)
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    first = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))
    return rank


_STEP_FEATURES = ("band_db", "periodicity", "peak_hz", "peak_frac", "peak2_hz", "peak2_frac", "fsk_frac", "cpt_frac")
_SILENT_PAYLOAD = bytes(FRAME)  # a placeholder for a lost frame; its row is zeroed after decoding


def _decode_g711(law: str, payloads: list[bytes | None] | np.ndarray) -> np.ndarray:
    """A tick's G.711 frames of one law -> float32 [n, FRAME], one table lookup for all."""
    if isinstance(payloads, np.ndarray):
        return G711_TO_FLOAT[law].take(payloads)
    lost = [i for i, p in enumerate(payloads) if p is None] if None in payloads else []
    raw = b"".join(_SILENT_PAYLOAD if p is None else p for p in payloads) if lost else b"".join(payloads)  # type: ignore[arg-type]
    frames = G711_TO_FLOAT[law].take(np.frombuffer(raw, np.uint8)).reshape(-1, FRAME)
    if lost:
        frames[lost] = 0.0
    return frames

"""The decision step for many calls at once: one pass of numpy over a tick's calls.

`Detector.step_features` is scalar Python, 7-12 us a frame: at 1000 calls, 50,000 frames a second,
more than a core on its own. Most frames change only counters and levels (the VAD's floor, a
tone run growing, the music windows sliding, an utterance going on, opening or closing). Here
those are array arithmetic over every call of the pass, one frame each, on the calls' state
held as columns (struct-of-arrays); Python touches only the utterance list of a call whose
utterance opened or closed. The frames where something rare happens go to the call's own
scalar step instead: a tone run long enough to judge ends, a beep waits for quiet, a fax tone
is confirmed, ringback, music, or a rule of the state machine falls due (about 2% of a call's
frames: such events are seconds apart). For those the call's Detector takes in its columns,
steps, and its state goes back into the columns before the next pass that needs them.

So there is one implementation of the rare paths, and two of the common one, side by side:
each tracker declares its state (`STATE`: the columns, and how each holds its attribute) and
has its array step beside its scalar one in its own module (vad, tones, music, machine), which
`ari_amd.detect.detector.step_arrays` composes as `step_features` composes the scalar steps.
The columns and the copies between a Detector and its column (`COLUMNS.store` / `load`) follow
from the declarations (ari_amd.detect.columns). Each array step computes in float64 in the
scalar code's order of operations, so the two agree to the bit; tests/test_detect_vector.py
checks every column of every call after every frame against a scalar detector fed the same
frames. Columns the vector pass only reads (a beep pending, the onsets kept, the parameters)
are refreshed from the objects at each store.

This module keeps the calls' slots, the passes, the rare rows' trips through their objects and
the utterance lists. A pass has a fixed cost (some 300 numpy operations, ~0.6-0.8 ms here) and
then ~1-2 us a row: it pays from about a hundred calls in a pass. Figures: docs/ROBUSTNESS.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ari_amd.detect.detector import COLUMNS, Detector, step_arrays
from ari_amd.detect.machine import Utterance
from ari_amd.detect.verdict import AmdEvent, EventKind

N_COLUMNS = COLUMNS.n
# Fewer calls than this in a pass, and each one's own scalar step is cheaper.
MIN_VECTOR_ROWS = 96

Features8 = Sequence[np.ndarray]  # band_db, periodicity, peak_hz, peak_frac, peak2_hz, peak2_frac, fsk_frac, cpt_frac
_store, _load = COLUMNS.store, COLUMNS.load


class VectorDecider:
    """The state of many calls' detectors as columns, and the decision step over them.

    add() a Detector to take its state in; step() a pass of distinct slots, one frame each;
    sync() before reading the Detector's own state again. retire() gives a call's Detector its
    state back and skips the slot's frames from then on; release() frees retired slots for new
    calls (once no queued frame can name them)."""

    def __init__(self, capacity: int = 64, min_rows: int = MIN_VECTOR_ROWS) -> None:
        self.min_rows = min_rows
        self._state = np.zeros((N_COLUMNS, capacity))
        self._free = list(range(capacity - 1, -1, -1))
        self._retired: list[int] = []
        self._detectors: list[Detector | None] = [None] * capacity
        # Which copy of a call's state is the newer: the columns after a vector pass (the object
        # must load them before its own step), the object after its own step (the columns must
        # take it in before the next pass). Each moves only when the other side needs it.
        self._stale = np.zeros(capacity, dtype=bool)
        self._unstored = np.zeros(capacity, dtype=bool)
        self._own_step = np.zeros(capacity, dtype=bool)  # a Detector subclass with its own step: scalar only
        self._traced = np.zeros(capacity, dtype=bool)  # its Detector records a trace
        self._recheck: set[int] = set()  # handed out by sync(): its trace may have been switched on
        self.finished = np.zeros(capacity, dtype=bool)  # decided or retired: take no more frames
        self.scalar_rows = 0  # frames decided by the scalar step, and by the vector pass
        self.vector_rows = 0

    def __len__(self) -> int:
        return len(self._detectors) - len(self._free) - len(self._retired)

    def add(self, detector: Detector) -> int:
        if not self._free:
            self._grow()
        slot = self._free.pop()
        self._detectors[slot] = detector
        self._state[:, slot] = _store(detector)
        self._stale[slot] = self._unstored[slot] = False
        self._own_step[slot] = type(detector).step_features is not Detector.step_features
        self._traced[slot] = detector.trace is not None
        self.finished[slot] = detector.done
        return slot

    def sync(self, slot: int) -> Detector:
        """The slot's Detector, its attributes brought up to date with the columns."""
        det = self._detectors[slot]
        assert det is not None
        if self._stale[slot]:
            _load(det, self._state[:, slot].tolist())
            self._stale[slot] = False
        self._recheck.add(slot)
        return det

    def retire(self, slot: int) -> Detector:
        det = self.sync(slot)
        self.finished[slot] = True
        self._retired.append(slot)
        return det

    def release(self) -> list[int]:
        """Free the retired slots; returns them."""
        released = self._retired
        for slot in released:
            self._detectors[slot] = None
            self._recheck.discard(slot)
        self._free += released
        self._retired = []
        return released

    def step_scalar(self, slot: int, row: Sequence[float]) -> list[AmdEvent]:
        """One frame of one call through its own Detector (the columns loaded first if newer)."""
        det = self.sync(slot)
        self._unstored[slot] = True
        try:
            return det.step_features(*row)
        finally:
            self.finished[slot] = det.done
            self.scalar_rows += 1

    def column(self, slot: int) -> list[float]:
        """The slot's state as the columns hold it (its object's own steps taken in first)."""
        self._store_objects(np.array([slot]))
        values: list[float] = self._state[:, slot].tolist()
        return values

    def _store_objects(self, slots: np.ndarray) -> None:
        """Objects stepped by themselves since the last pass: their state into the columns."""
        for slot in slots[self._unstored[slots]].tolist():
            det = self._detectors[slot]
            assert det is not None
            self._state[:, slot] = _store(det)
            self._unstored[slot] = False

    def step(self, slots: np.ndarray, feats: Features8) -> tuple[
        list[tuple[int, list[AmdEvent]]], list[tuple[int, Exception]]
    ]:
        """One frame for each of `slots` (distinct, none finished): feats are float64 arrays
        with a row per slot. Returns (row, events) where there were events, and (row, error)
        where a scalar step raised (that call's state is then undefined: retire it)."""
        n = len(slots)
        events: list[tuple[int, list[AmdEvent]]] = []
        errors: list[tuple[int, Exception]] = []
        if self._recheck:
            for slot in self._recheck:
                det = self._detectors[slot]
                self._traced[slot] = det is not None and det.trace is not None
            self._recheck.clear()
        if n < self.min_rows:
            rows = list(zip(*(f.tolist() for f in feats)))
            for i, slot in enumerate(slots.tolist()):
                try:
                    ev = self.step_scalar(slot, rows[i])
                except Exception as e:  # noqa: BLE001 - the caller ends that call's detection only
                    errors.append((i, e))
                    continue
                if ev:
                    events.append((i, ev))
            return events, errors
        self._store_objects(slots)
        old = self._state[:, slots]
        traced = self._traced[slots]
        res = step_arrays(old, feats, self._own_step[slots], bool(traced.any()))
        rare_rows = np.flatnonzero(res.rare).tolist()
        # Every row's columns move on; a rare row's object takes the old ones, below.
        self._state[:, slots] = res.state
        self._stale[slots] = True
        self.vector_rows += n - len(rare_rows)
        dets = self._detectors
        # Utterances opened or closed by the vector pass: the machine's list is Python's.
        for i in np.flatnonzero(res.closes).tolist():
            det = dets[int(slots[i])]
            assert det is not None
            last = det.machine.utterances[-1]
            last.end_ms = int(res.ended_ms[i])
            events.append((i, [AmdEvent(EventKind.SPEECH_END, last.end_ms)]))
        for i in np.flatnonzero(res.opens).tolist():
            det = dets[int(slots[i])]
            assert det is not None
            onset = int(res.onset_ms[i])
            det.machine.utterances.append(Utterance(onset, int(res.t_ms[i])))
            events.append((i, [AmdEvent(EventKind.SPEECH_START, onset)]))
        if res.trace is not None:
            tr = res.trace
            for i in np.flatnonzero(traced & ~res.rare).tolist():
                det = dets[int(slots[i])]
                assert det is not None and det.trace is not None
                det.trace.append(tr.row(i))
        if rare_rows:
            cols = [f[rare_rows].tolist() for f in feats]
            for j, i in enumerate(rare_rows):
                slot = int(slots[i])
                det = dets[slot]
                assert det is not None
                _load(det, old[:, i].tolist())  # the state before this frame
                self._stale[slot] = False  # the object is the newer copy now: stored before the next pass
                try:
                    ev = self.step_scalar(slot, [c[j] for c in cols])
                except Exception as e:  # noqa: BLE001
                    errors.append((i, e))
                    continue
                if ev:
                    events.append((i, ev))
        return events, errors

    def _grow(self) -> None:
        cap = len(self._detectors)
        self._state = np.concatenate((self._state, np.zeros((N_COLUMNS, cap))), axis=1)
        for name in ("_stale", "_unstored", "_own_step", "_traced", "finished"):
            setattr(self, name, np.concatenate((getattr(self, name), np.zeros(cap, dtype=bool))))
        self._detectors += [None] * cap
        self._free = list(range(2 * cap - 1, cap - 1, -1)) + self._free

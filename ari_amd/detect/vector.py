"""The decision step for many calls at once: one pass of numpy over a tick's calls.

`Detector.step_features` is scalar Python, 7-12 us a frame: at 1000 calls, 50,000 frames a second,
more than a core on its own. Most frames change only counters and levels (the VAD's floor, a
tone run growing, the music windows sliding, an utterance going on, opening or closing). Here
those are array arithmetic over every call of the pass, one frame each, on the calls' state
held as columns (struct-of-arrays); Python touches only the utterance list of a call whose
utterance opened or closed. The frames where something rare happens go to the call's own
scalar step instead: a tone run long enough to judge ends, a beep waits for quiet, a fax tone
is confirmed, ringback, music, or a rule of the state machine falls due (about 2% of frames
on the dev corpus). For those the call's Detector takes in its columns, steps, and its state
goes back into the columns before the next pass that needs them.

So there is one implementation of the rare paths, and two of the common one. Each column mirrors
the scalar attribute named beside it, computed in float64 in the scalar code's order of
operations, so the two agree to the bit; tests/test_detect_vector.py checks every column of
every call after every frame against a scalar detector fed the same frames. Columns the vector
pass only reads (a beep pending, the onsets kept) are refreshed from the objects at each store.

A pass has a fixed cost (some 300 numpy operations, ~0.6-0.8 ms here) and then ~1-2 us a row:
it pays from about a hundred calls in a pass. Figures: docs/ROBUSTNESS.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ari_amd.detect import music as M
from ari_amd.detect import tones as T
from ari_amd.detect import vad as V
from ari_amd.detect.detector import Detector, TraceRow
from ari_amd.detect.features import DEAD_DB, FRAME_MS
from ari_amd.detect.machine import (
    CALL_PROGRESS_MS,
    CONFIRM_MASK,
    GREETING_HOLD_EXTRA_MS,
    RESUME_CONFIRM_FRAMES,
    SPEECH_CONFIRM_FRAMES,
    SPEECH_CONFIRM_WINDOW,
    State,
    Utterance,
)
from ari_amd.detect.tones import ToneRun
from ari_amd.detect.verdict import AmdEvent, EventKind

# --- columns: one row of the state matrix per field, one column per call slot ---------------
# Detector
FRAMES = 0  # _frames_done
# VoiceActivity
FLOOR, VSPEECH, RISE, CEILING, SINCE = 1, 2, 3, 4, 5  # floor_db (nan: None), in_speech, _rise, ceiling_db, _since_voiced
# ToneTracker: the run in progress (_run; RUN 0 for None, its fields then 0)
RUN, RUN_START, RUN_END, RUN_HZ, RUN_PURITY, RUN_FRAMES = 6, 7, 8, 9, 10, 11
RUN_LO_HZ, RUN_HI_HZ, RUN_LEVEL, RUN_LO_DB, RUN_HI_DB = 12, 13, 14, 15, 16
PENDING, LOUD, TAIL = 17, 18, 19  # read only: a beep pending, _loud_frames, _tail_frames
PREV_LEVEL, FAX_MS, CPT_MS, V21_MS, V21_LO, V21_HI, FAX_FOUND = 20, 21, 22, 23, 24, 25, 26  # FAX_FOUND read only
# MusicTracker
PREV, PREV0, PREV1, PREV2, PREV3 = 27, 28, 29, 30, 31  # _prev (PREV 0 for None)
STEADY, STEADY_N, COUNT = 32, 33, 34  # _steady (bitmask), _steady_n, _count
NOTE_HZ, NOTE_FRAMES, NOTE_MISS = (35, 36, 37), (38, 39, 40), (41, 42, 43)  # _notes[k]: pitch, frames, misses
ANY_NOTE, HELD, HELD_N, HELD_COUNT, ONSETS, QUIET = 44, 45, 46, 47, 48, 49  # ONSETS read only: len(_onsets)
DRONE = (50, 51, 52, 53, 54, 55)  # _drone
DRONE_PREV, NOTES = 56, 57  # _drone_prev_hz, notes
# AmdStateMachine
STATE, UTTS, UTT_END, RECENT = 58, 59, 60, 61  # state, len(utterances) (read only), utterances[-1].end_ms, _recent
RUN_FROM, LAST_END, IN_SPEECH, STREAK = 62, 63, 64, 65  # _run_start (nan: None), _last_speech_end (0: None)
LAST_TONE, RISE_AT, ORIGIN, CLOSED, HOLDING, OTHER_AT = 66, 67, 68, 69, 70, 71
RUN_MISS, RUN_QUIET, PREV2_LEVEL = 72, 73, 74  # ToneTracker: _run.misses, _run.quiet_before, _prev2_level
HEARD_AT = 75  # Detector: _heard_at (nan: None)
DEAD_N = 76  # ToneTracker: _dead_frames
# AmdParams, set once
SPEECH_THRESHOLD, SPEECH_END, SILENCE_TIMEOUT, TIMEOUT, BEEP_WAIT = 77, 78, 79, 80, 81
N_COLUMNS = 82
N_PARAMS = 5  # the last rows: never stored from an object

STATES = (State.WAITING, State.SPEECH, State.GREETING, State.DONE)
_STATE_CODE = {s: i for i, s in enumerate(STATES)}
WAITING, SPEECH, GREETING = 0, 1, 2

# Fewer calls than this in a pass, and each one's own scalar step is cheaper.
MIN_VECTOR_ROWS = 96
_POPCOUNT = np.array([i.bit_count() for i in range(1 << SPEECH_CONFIRM_WINDOW)], dtype=np.int64)
_SLOT_INDEX = np.arange(M.NOTE_SLOTS)[:, None]

Features8 = Sequence[np.ndarray]  # band_db, periodicity, peak_hz, peak_frac, peak2_hz, peak2_frac, fsk_frac, cpt_frac


class _Trace(NamedTuple):
    """TraceRow's fields, a list each with a value per row (music is never heard in a vector row)."""

    t_ms: list[int]
    level_db: list[float]
    floor_db: list[float]
    ceiling_db: list[float]
    speech: list[bool]
    tone: list[bool]


class _Pass(NamedTuple):
    """What one vector pass made of its rows."""

    state: np.ndarray  # the new columns
    rare: np.ndarray  # rows for the scalar step (from the old columns)
    opens: np.ndarray  # rows (not rare) where an utterance opened, back-dated to onset_ms
    closes: np.ndarray  # rows (not rare) where the utterance closed
    onset_ms: np.ndarray
    t_ms: np.ndarray
    trace: _Trace | None  # if asked


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


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
        p = detector.params
        col = self._state[:, slot]
        col[:] = _store(detector)
        col[SPEECH_THRESHOLD], col[SPEECH_END] = p.speech_threshold_ms, p.speech_end_threshold_ms
        col[SILENCE_TIMEOUT], col[TIMEOUT] = p.silence_timeout_ms, p.timeout_ms
        col[BEEP_WAIT] = max(p.beep_timeout_ms, p.speech_end_threshold_ms)
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
        return self._state[:, slot].tolist()

    def _store_objects(self, slots: np.ndarray) -> None:
        """Objects stepped by themselves since the last pass: their state into the columns."""
        for slot in slots[self._unstored[slots]].tolist():
            det = self._detectors[slot]
            assert det is not None
            self._state[: N_COLUMNS - N_PARAMS, slot] = _store(det)[: N_COLUMNS - N_PARAMS]
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
        res = _vector_step(old, feats, self._own_step[slots], bool(traced.any()))
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
            last.end_ms = int(old[UTT_END, i])
            events.append((i, [AmdEvent(EventKind.SPEECH_END, last.end_ms)]))
        for i in np.flatnonzero(res.opens).tolist():
            det = dets[int(slots[i])]
            assert det is not None
            onset = int(res.onset_ms[i])
            det.machine.utterances.append(Utterance(onset, int(res.t_ms[i])))
            events.append((i, [AmdEvent(EventKind.SPEECH_START, onset)]))
        if res.trace is not None:
            for i in np.flatnonzero(traced & ~res.rare).tolist():
                det = dets[int(slots[i])]
                assert det is not None and det.trace is not None
                tr = res.trace
                det.trace.append(
                    TraceRow(tr.t_ms[i], tr.level_db[i], tr.floor_db[i], tr.ceiling_db[i], tr.speech[i], tr.tone[i], False)
                )
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


def _vector_step(s: np.ndarray, feats: Features8, forced: np.ndarray, want_trace: bool) -> _Pass:
    """The common frame over columns `s` [N_COLUMNS, n] (not modified). forced: rows the scalar
    step must take whatever happens."""
    band, per, p1, f1, p2, f2, fsk, cpt = feats
    new = s.copy()
    where, minimum, maximum, absolute = np.where, np.minimum, np.maximum, np.abs
    frames = s[FRAMES] + 1
    new[FRAMES] = frames
    t = frames * FRAME_MS

    # Detector: the floor the tone tracker and music judge against (the VAD's, as of the frame before).
    floor0 = s[FLOOR]
    floor_known = ~np.isnan(floor0)
    floor = where(floor_known, floor0, band)

    # --- ToneTracker.update ---------------------------------------------------------------
    dead = band <= DEAD_DB
    live = ~dead
    run = s[RUN] > 0
    above_t = band - floor
    loud = (above_t > T.TONE_ABOVE_FLOOR_DB) | ((f1 >= T.PURE_FRAC) & (above_t > T.PURE_ABOVE_FLOOR_DB))
    single = f1 >= T.TONAL_FRAC
    dual = f1 + f2 >= T.TWO_TONE_FRAC
    tonal = loud & (single | dual)
    # _track_fax (frozen once found; a dead frame returns before it)
    fax_live = live & ~(s[FAX_FOUND] > 0)
    fax_ms0 = s[FAX_MS]
    fax_ms = where(
        tonal & (absolute(p1 - T.FAX_ANS_HZ) <= T.FAX_ANS_TOL_HZ),
        fax_ms0 + FRAME_MS,
        where((fax_ms0 != 0) & ~tonal, maximum(0.0, fax_ms0 - FRAME_MS // 2), 0.0),
    )
    fsk_on = loud & (fsk >= T.V21_BAND_SHARE) & (p1 >= T.V21_LO_HZ) & (p1 <= T.V21_HI_HZ)
    v21_ms0 = s[V21_MS]
    v21_ms = where(fsk_on, v21_ms0 + FRAME_MS, 0.0)
    v21_lo = where(fsk_on, minimum(s[V21_LO], p1), where(v21_ms0 != 0, 1e9, s[V21_LO]))
    v21_hi = where(fsk_on, maximum(s[V21_HI], p1), where(v21_ms0 != 0, 0.0, s[V21_HI]))
    fax_found = fax_live & ((fax_ms >= T.FAX_ANS_MS) | ((v21_ms >= T.V21_MS) & (v21_hi - v21_lo >= T.V21_MIN_HOP_HZ)))
    new[FAX_MS] = where(fax_live, fax_ms, fax_ms0)
    new[V21_MS] = where(fax_live, v21_ms, v21_ms0)
    new[V21_LO] = where(fax_live, v21_lo, s[V21_LO])
    new[V21_HI] = where(fax_live, v21_hi, s[V21_HI])
    cpt_ms = where(live, where((above_t > T.TONE_ABOVE_FLOOR_DB) & (cpt >= T.CPT_BAND_SHARE), s[CPT_MS] + FRAME_MS, 0.0), s[CPT_MS])
    new[CPT_MS] = cpt_ms
    # The run: extended at the same pitch, else closed (judged by the scalar step if long
    # enough to be a tone) and a new one begun if this frame is tonal.
    same = run & (absolute(p1 - s[RUN_HZ]) <= T.MAX_STEP_HZ)
    held_on = same & ~tonal & loud & (f1 >= T.TONAL_CONTINUE_FRAC)
    tonal = tonal | held_on
    single = single | held_on
    extend = live & tonal & same
    miss0 = s[RUN_MISS]
    bridge = live & run & ~tonal & (miss0 < T.RUN_MISS_FRAMES) & (s[RUN_FRAMES] >= T.MIN_TONE_FRAMES)
    begin = live & tonal & ~same
    active = where(live, extend | begin | bridge, run)
    keep = dead | bridge  # the run as it was
    run_frames = where(extend, s[RUN_FRAMES] + 1, where(begin, 1.0, where(keep, s[RUN_FRAMES], 0.0)))
    new[RUN_MISS] = where(bridge, miss0 + 1, where(dead, miss0, 0.0))
    new[RUN_QUIET] = where(begin, s[PREV2_LEVEL] <= floor + T.BEEP_QUIET_DB, where(extend | keep, s[RUN_QUIET], 0.0))
    straddle = extend & (run_frames > 2) & (miss0 == 0)  # the first frames straddle the onset
    prev_level = s[PREV_LEVEL]
    lo_db = where(straddle, minimum(s[RUN_LO_DB], prev_level), s[RUN_LO_DB])
    hi_db = where(straddle, maximum(s[RUN_HI_DB], prev_level), s[RUN_HI_DB])
    purity = s[RUN_PURITY] + (f1 + where(dual & ~single, f2, 0.0))
    new[RUN] = active
    new[RUN_START] = where(extend | keep, s[RUN_START], where(begin, t - FRAME_MS, 0.0))
    new[RUN_END] = where(extend, t, where(keep, s[RUN_END], where(begin, t, 0.0)))
    new[DEAD_N] = where(dead, s[DEAD_N] + 1, 0.0)
    new[RUN_HZ] = where(extend | begin, p1, where(keep, s[RUN_HZ], 0.0))
    run_purity = where(extend, purity, where(begin, f1, where(keep, s[RUN_PURITY], 0.0)))
    new[RUN_PURITY] = run_purity
    new[RUN_FRAMES] = run_frames
    new[RUN_LO_HZ] = where(extend, minimum(s[RUN_LO_HZ], p1), where(begin, p1, where(keep, s[RUN_LO_HZ], 0.0)))
    new[RUN_HI_HZ] = where(extend, maximum(s[RUN_HI_HZ], p1), where(begin, p1, where(keep, s[RUN_HI_HZ], 0.0)))
    new[RUN_LO_DB] = where(extend, lo_db, where(begin, 200.0, where(keep, s[RUN_LO_DB], 0.0)))
    new[RUN_HI_DB] = where(extend, hi_db, where(begin, -200.0, where(keep, s[RUN_HI_DB], 0.0)))
    new[RUN_LEVEL] = where(straddle, hi_db, where(begin, -100.0, where(extend | keep, s[RUN_LEVEL], 0.0)))
    new[PREV_LEVEL] = where(live, band, prev_level)
    new[PREV2_LEVEL] = where(live, prev_level, s[PREV2_LEVEL])
    new[HEARD_AT] = where(np.isnan(s[HEARD_AT]) & live, t, s[HEARD_AT])
    is_tone = active & (run_frames >= T.MIN_TONE_FRAMES)
    candidate = live & active & (run_frames >= 2) & (run_purity >= T.CANDIDATE_PURITY * run_frames)
    tone = is_tone | candidate
    rare = (
        forced
        | (live & run & ~extend & ~bridge & (s[RUN_FRAMES] >= T.MIN_TONE_FRAMES))  # a tone ended: beep? SIT?
        | (dead & run & (s[DEAD_N] >= T.DEAD_BRIDGE_FRAMES))  # ...into digital silence
        | (s[PENDING] > 0) | (s[LOUD] > 0) | (s[TAIL] > 0)  # a beep waits for quiet
        | fax_found
        | (live & (cpt_ms >= CALL_PROGRESS_MS))  # ringback
    )

    # --- VoiceActivity.update (its tone input: a tone, ringback (rare), held notes) ----------
    vtone = tone | (s[NOTES] > 0)
    since0 = s[SINCE]
    near_speech = (per >= V.VOICED_CONTINUE) | (since0 <= V.CEILING_HOLD) | (f1 >= V.PEAKY)
    floor1 = where(
        ~floor_known,
        minimum(band, V.INITIAL_FLOOR_MAX_DB),
        where(vtone, floor0, where(band < floor0, floor0 - V.STEP_UNVOICED_DB,
                                   floor0 + where(near_speech, V.STEP_VOICED_DB, V.STEP_UNVOICED_DB))),
    )
    base = maximum(floor1, V.MIN_FLOOR_DB)
    above = band - base
    rise = where(above > V.RISE_DB, minimum(s[RISE] + 1, V.RISE_MAX_FRAMES), 0.0)
    ceil0 = s[CEILING]
    ceil_known = ~np.isnan(ceil0)
    learn = (
        ceil_known & (since0 > V.CEILING_HOLD) & ~((per >= V.VOICED_STRONG) & (above > V.START_STRONG_DB))
        & ~((per >= V.VOICED_START) & (band > ceil0))
    )
    ceiling = where(~ceil_known, band, where(learn, ceil0 + where(band > ceil0, V.CEILING_UP_DB, V.CEILING_DOWN_DB), ceil0))
    gate = ceiling + V.CEILING_START_DB - base
    cont = maximum(V.CONTINUE_DB, ceiling + V.CEILING_CONTINUE_DB - base)
    since_in = where((above > cont) & (per >= V.VOICED_CONTINUE), 0.0, since0 + 1)
    stay = (above > cont) & (since_in <= V.VOICED_HOLD)
    start = (above > gate) & (((above > V.START_DB) & (per >= V.VOICED_START))
                              | ((above > V.START_STRONG_DB) & (per >= V.VOICED_STRONG)))
    was = s[VSPEECH] > 0
    heard = live & ~vtone
    speech = heard & where(was, stay, start)
    new[VSPEECH] = speech
    new[FLOOR] = where(live, floor1, floor0)
    new[CEILING] = where(heard, ceiling, ceil0)
    new[RISE] = where(heard, rise, where(live, s[RISE], 0.0))
    new[SINCE] = where(
        heard,
        where(was, since_in, where(start, 0.0, since0 + 1)),
        where(live, V.VOICED_HOLD + 1, where(floor_known, since0 + 1, since0)),
    )
    rise_obs = new[RISE]

    # --- MusicTracker.update ----------------------------------------------------------------
    prev_ok = s[PREV] > 0
    P0, P1 = s[PREV0], s[PREV1]
    steady = (
        ~tone & (band - floor >= M.ABOVE_FLOOR_DB) & (f1 >= M.STEADY_FRAC) & prev_ok
        & ((absolute(p1 - P0) <= M.STEADY_HZ) | (absolute(p1 - P1) <= M.STEADY_HZ)
           | (absolute(p1 - s[PREV2]) <= M.STEADY_HZ) | (absolute(p1 - s[PREV3]) <= M.STEADY_HZ))
    )
    new[PREV] = 1.0
    new[PREV0], new[PREV1] = p1, p2
    new[PREV2], new[PREV3] = where(prev_ok, P0, -1e9), where(prev_ok, P1, -1e9)
    count, steady_n, bits = _slide(s[STEADY], s[STEADY_N], s[COUNT], steady)
    new[STEADY], new[STEADY_N], new[COUNT] = bits, steady_n, count
    music = (steady_n == M.WINDOW) & (count >= M.MUSIC_COUNT)
    q0 = s[QUIET]
    quiet = where(np.isnan(q0), floor, minimum(q0, floor))
    new[QUIET] = quiet
    loud_m = band - quiet >= M.ABOVE_QUIET_DB
    # _held_notes: the three slots in order, each taking the first free peak at its pitch.
    free1 = loud_m & (f1 >= M.NOTE_FRAC) & (p1 >= M.NOTE_LO_HZ)
    free2 = loud_m & (f2 >= M.NOTE_FRAC) & (p2 >= M.NOTE_LO_HZ)
    sounding = free1 | free2
    # As [slot, row] arrays: a slot takes a peak only if no earlier slot took it.
    hz = s[NOTE_HZ[0] : NOTE_HZ[-1] + 1]
    fr = where(sounding, s[NOTE_FRAMES[0] : NOTE_FRAMES[-1] + 1], 0.0)  # no free peak: every slot let go
    miss = s[NOTE_MISS[0] : NOTE_MISS[-1] + 1]
    on = fr != 0
    m1 = _first(on & free1 & (absolute(p1 - hz) <= M.NOTE_HZ))
    m2 = _first(on & ~m1 & free2 & (absolute(p2 - hz) <= M.NOTE_HZ))
    matched = m1 | m2
    missed = on & ~matched & (miss < M.NOTE_MISS_FRAMES)
    fr1 = where(matched, fr + 1, where(on & ~missed, 0.0, fr))
    held = ((missed & (fr >= M.NOTE_MIN_FRAMES)) | (matched & (fr1 >= M.NOTE_MIN_FRAMES))).any(axis=0)
    onset = (matched & (fr1 == M.NOTE_ONSET_FRAMES)).any(axis=0)  # a new note, perhaps: the onsets are Python's
    miss = where(missed, miss + 1, where(matched, 0.0, miss))
    fr = fr1
    free1 &= ~m1.any(axis=0)
    free2 &= ~m2.any(axis=0)
    for free, peak in ((free1, p1), (free2, p2)):  # _start_note: an empty slot, or the shortest note
        sel = free & (_SLOT_INDEX == fr.argmin(axis=0))  # the first of the shortest, as the scalar picks
        hz = where(sel, peak, hz)
        fr = where(sel, 1.0, fr)
        miss = where(sel, 0.0, miss)
    new[NOTE_HZ[0] : NOTE_HZ[-1] + 1] = hz
    new[NOTE_FRAMES[0] : NOTE_FRAMES[-1] + 1] = fr
    new[NOTE_MISS[0] : NOTE_MISS[-1] + 1] = miss
    new[ANY_NOTE] = sounding
    held_count, held_n, held_bits = _slide(s[HELD], s[HELD_N], s[HELD_COUNT], held)
    new[HELD], new[HELD_N], new[HELD_COUNT] = held_bits, held_n, held_count
    # Held notes are music only with three onsets kept: the scalar step judges those frames.
    notes_maybe = (held_count >= M.NOTE_COUNT) & (s[ONSETS] >= M.NOTE_ONSETS)
    new[NOTES] = 0.0
    # _drone_step
    d0, d1, d2, d3, d4, d5 = (s[c] for c in DRONE)
    ok = loud_m & (f1 >= M.DRONE_FRAC) & ~speech
    follow = ok & (d1 != 0) & (absolute(p1 - d0) <= M.DRONE_HZ)
    lapse = ~follow & (d1 != 0) & (d2 < M.DRONE_MISS_FRAMES)
    restart = ~follow & ~lapse & ok
    d1n = where(follow, d1 + 1, where(restart, 1.0, where(lapse, d1, 0.0)))
    d3n = where(restart | (follow & (p1 < d3)), p1, d3)
    d4n = where(restart | (follow & ~(p1 < d3) & (p1 > d4)), p1, d4)
    new[DRONE[0]] = where(follow, d0 + M.DRONE_CENTRE_RATE * (p1 - d0), where(restart, p1, d0))
    new[DRONE[1]] = d1n
    new[DRONE[2]] = where(follow | restart, 0.0, where(lapse, d2 + 1, d2))
    new[DRONE[3]], new[DRONE[4]] = d3n, d4n
    d5n = where(follow, d5 + absolute(p1 - s[DRONE_PREV]), where(restart, 0.0, d5))
    new[DRONE[5]] = d5n
    new[DRONE_PREV] = p1
    music |= (d1n >= M.DRONE_FRAMES) & (d4n - d3n >= M.DRONE_RANGE_HZ) & (d5n >= M.DRONE_JITTER_HZ * d1n)
    rare |= onset | notes_maybe | music

    # --- AmdStateMachine.step ---------------------------------------------------------------
    state = s[STATE]
    last_tone = where(tone, t, s[LAST_TONE])
    new[LAST_TONE] = last_tone
    streak0 = s[STREAK]
    rise_at = where(speech & (streak0 == 0), rise_obs, s[RISE_AT])
    streak = where(speech, streak0 + 1, 0.0)
    new[RISE_AT], new[STREAK] = rise_at, streak
    recent = ((s[RECENT].astype(np.int64) << 1) | speech) & CONFIRM_MASK
    new[RECENT] = recent
    need = where((state == SPEECH) | (state == GREETING), RESUME_CONFIRM_FRAMES, SPEECH_CONFIRM_FRAMES)
    confirmed = speech & (_POPCOUNT[recent] >= need)
    # Utterance bookkeeping: an onset back-dated over the voice's rise, or the utterance closed.
    was_speaking = s[IN_SPEECH] > 0
    opens = confirmed & ~was_speaking
    closes = was_speaking & ~speech
    last_end0 = s[LAST_END]
    onset_ms = maximum(t - FRAME_MS - FRAME_MS * (maximum(streak, rise_at) - 1), last_end0)
    in_speech = opens | (was_speaking & speech)
    new[IN_SPEECH] = in_speech
    utt_end = where(in_speech, t, s[UTT_END])
    new[UTT_END] = utt_end
    new[UTTS] = s[UTTS] + opens
    last_end = where(closes, s[UTT_END], last_end0)
    new[LAST_END] = last_end
    run_from0 = s[RUN_FROM]
    restart_run = opens & (np.isnan(run_from0) | (s[CLOSED] > 0))
    run_from = where(restart_run, onset_ms, run_from0)
    new[RUN_FROM] = run_from
    closed = where(restart_run, 0.0, s[CLOSED])
    new[CLOSED] = closed
    # The rules, on the state as bookkeeping left it (WAITING turns SPEECH once a run began).
    no_run = np.isnan(run_from)
    waiting = state == WAITING
    state = where(waiting & ~no_run, float(SPEECH), state)
    new[STATE] = state
    talking, greeting = state == SPEECH, state == GREETING
    silence = t - maximum(last_end, last_tone)
    run_len = where(in_speech, utt_end, where(last_end != 0, last_end, t)) - run_from
    speech_end = s[SPEECH_END]
    limit = where(s[HOLDING] > 0, speech_end + GREETING_HOLD_EXTRA_MS, speech_end)
    rare |= (
        (waiting & no_run & (t - s[ORIGIN] >= s[SILENCE_TIMEOUT]))
        | (talking & in_speech & (run_len >= s[SPEECH_THRESHOLD]))
        | (talking & ~in_speech & (silence >= speech_end) & ((closed == 0) | (silence >= limit)))
        | (greeting & ~in_speech & (t - last_end >= s[BEEP_WAIT]))
        | (t >= s[TIMEOUT])
    )
    trace = None
    if want_trace:
        floor_out = new[FLOOR]
        trace = _Trace(
            t.astype(np.int64).tolist(), band.tolist(), where(np.isnan(floor_out), 0.0, floor_out).tolist(),
            where(np.isnan(new[CEILING]), 0.0, new[CEILING]).tolist(), speech.tolist(), is_tone.tolist(),
        )
    return _Pass(new, rare, opens & ~rare, closes & ~rare, onset_ms, t, trace)


def _first(hits: np.ndarray) -> np.ndarray:
    """[slot, row] hits -> only each row's first (the scalar loop takes a peak once)."""
    out = hits.copy()
    out[1] &= ~hits[0]
    out[2] &= ~(hits[0] | hits[1])
    return out


def _slide(bits0: np.ndarray, n0: np.ndarray, count0: np.ndarray, flag: np.ndarray) -> tuple[
    np.ndarray, np.ndarray, np.ndarray
]:
    """A WINDOW-frame window as a bitmask: the newest flag in, the oldest out once full."""
    bits = bits0.astype(np.int64)
    full = n0 == M.WINDOW
    count = count0 - np.where(full, (bits >> M.OLDEST) & 1, 0) + flag
    return count, np.where(full, n0, n0 + 1), ((bits << 1) | flag) & M.WINDOW_MASK


def _store(det: Detector) -> list[float]:
    """The detector's attributes as a column (the params rows left 0)."""
    v, tn, m, mc = det.vad, det.tones, det.music, det.machine
    c = [0.0] * N_COLUMNS
    c[FRAMES] = det._frames_done
    c[HEARD_AT] = math.nan if det._heard_at is None else det._heard_at
    c[FLOOR] = math.nan if v.floor_db is None else v.floor_db
    c[VSPEECH], c[RISE] = v.in_speech, v._rise
    c[CEILING] = math.nan if v.ceiling_db is None else v.ceiling_db
    c[SINCE] = v._since_voiced
    r = tn._run
    if r is not None:
        c[RUN], c[RUN_START], c[RUN_END], c[RUN_HZ], c[RUN_PURITY], c[RUN_FRAMES] = (
            1, r.start_ms, r.end_ms, r.hz, r.purity, r.frames)
        c[RUN_LO_HZ], c[RUN_HI_HZ], c[RUN_LEVEL], c[RUN_LO_DB], c[RUN_HI_DB] = r.lo_hz, r.hi_hz, r.level_db, r.lo_db, r.hi_db
        c[RUN_MISS], c[RUN_QUIET] = r.misses, r.quiet_before
    c[PENDING], c[LOUD], c[TAIL] = tn._pending is not None, tn._loud_frames, tn._tail_frames
    c[PREV_LEVEL], c[FAX_MS], c[CPT_MS] = tn._prev_level, tn._fax_ms, tn._cpt_ms
    c[PREV2_LEVEL], c[DEAD_N] = tn._prev2_level, tn._dead_frames
    c[V21_MS], c[V21_LO], c[V21_HI], c[FAX_FOUND] = tn._v21_ms, tn._v21_lo, tn._v21_hi, tn.fax_found is not None
    if m._prev is not None:
        c[PREV], (c[PREV0], c[PREV1], c[PREV2], c[PREV3]) = 1, m._prev
    c[STEADY], c[STEADY_N], c[COUNT] = m._steady, m._steady_n, m._count
    for k, (hz, frames, missed) in enumerate(m._notes):
        c[NOTE_HZ[k]], c[NOTE_FRAMES[k]], c[NOTE_MISS[k]] = hz, frames, missed
    c[ANY_NOTE], c[HELD], c[HELD_N], c[HELD_COUNT] = m._any_note, m._held, m._held_n, m._held_count
    c[ONSETS] = len(m._onsets)
    c[QUIET] = math.nan if m._quiet_db is None else m._quiet_db
    for k, x in zip(DRONE, m._drone):
        c[k] = x
    c[DRONE_PREV], c[NOTES] = m._drone_prev_hz, m.notes
    c[STATE], c[UTTS] = _STATE_CODE[mc.state], len(mc.utterances)
    c[UTT_END] = mc.utterances[-1].end_ms if mc.utterances else 0
    c[RECENT] = mc._recent
    c[RUN_FROM] = math.nan if mc._run_start is None else mc._run_start
    c[LAST_END] = mc._last_speech_end or 0
    c[IN_SPEECH], c[STREAK], c[LAST_TONE], c[RISE_AT] = mc._in_speech, mc._streak, mc._last_tone_end, mc._rise_at_start
    c[ORIGIN], c[CLOSED], c[HOLDING], c[OTHER_AT] = mc._silence_origin, mc._run_closed, mc._holding, mc._other_at
    return c


def _load(det: Detector, c: list[float]) -> None:
    """The column into the detector's attributes (those the vector pass writes), with the
    scalar code's types: ints stay ints (they reach causes and event times)."""
    v, tn, m, mc = det.vad, det.tones, det.music, det.machine
    det._frames_done = int(c[FRAMES])
    det._heard_at = None if math.isnan(c[HEARD_AT]) else int(c[HEARD_AT])
    v.floor_db, v.in_speech, v._rise = _opt(c[FLOOR]), bool(c[VSPEECH]), int(c[RISE])
    v.ceiling_db, v._since_voiced = _opt(c[CEILING]), int(c[SINCE])
    tn._run = (
        ToneRun(int(c[RUN_START]), int(c[RUN_END]), c[RUN_HZ], c[RUN_PURITY], int(c[RUN_FRAMES]),
                lo_hz=c[RUN_LO_HZ], hi_hz=c[RUN_HI_HZ], level_db=c[RUN_LEVEL], lo_db=c[RUN_LO_DB], hi_db=c[RUN_HI_DB],
                misses=int(c[RUN_MISS]), quiet_before=bool(c[RUN_QUIET]))
        if c[RUN] else None
    )
    tn._prev_level, tn._fax_ms, tn._cpt_ms = c[PREV_LEVEL], int(c[FAX_MS]), int(c[CPT_MS])
    tn._prev2_level, tn._dead_frames = c[PREV2_LEVEL], int(c[DEAD_N])
    tn._v21_ms, tn._v21_lo, tn._v21_hi = int(c[V21_MS]), c[V21_LO], c[V21_HI]
    m._prev = (c[PREV0], c[PREV1], c[PREV2], c[PREV3]) if c[PREV] else None
    m._steady, m._steady_n, m._count = int(c[STEADY]), int(c[STEADY_N]), int(c[COUNT])
    for k, slot in enumerate(m._notes):
        slot[0], slot[1], slot[2] = c[NOTE_HZ[k]], int(c[NOTE_FRAMES[k]]), int(c[NOTE_MISS[k]])
    m._any_note, m._held, m._held_n, m._held_count = bool(c[ANY_NOTE]), int(c[HELD]), int(c[HELD_N]), int(c[HELD_COUNT])
    m._quiet_db = _opt(c[QUIET])
    d = m._drone
    d[0], d[1], d[2], d[3], d[4], d[5] = c[DRONE[0]], int(c[DRONE[1]]), int(c[DRONE[2]]), c[DRONE[3]], c[DRONE[4]], c[DRONE[5]]
    m._drone_prev_hz, m.notes = c[DRONE_PREV], bool(c[NOTES])
    # The vector pass never prunes the onsets (it only counts them): as the scalar step would
    # have by the frame before this one.
    onsets, before = m._onsets, (int(c[FRAMES])) * FRAME_MS
    while onsets and before - onsets[0][0] > M.NOTE_ONSETS_MS:
        onsets.popleft()
    mc.state = STATES[int(c[STATE])]
    if mc.utterances:
        mc.utterances[-1].end_ms = int(c[UTT_END])
    mc._recent = int(c[RECENT])
    mc._run_start = None if math.isnan(c[RUN_FROM]) else int(c[RUN_FROM])
    mc._last_speech_end = int(c[LAST_END]) or None
    mc._in_speech, mc._streak, mc._last_tone_end = bool(c[IN_SPEECH]), int(c[STREAK]), int(c[LAST_TONE])
    mc._rise_at_start, mc._silence_origin = int(c[RISE_AT]), int(c[ORIGIN])
    mc._run_closed, mc._holding, mc._other_at = bool(c[CLOSED]), bool(c[HOLDING]), int(c[OTHER_AT])

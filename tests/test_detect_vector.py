"""The vector decision step (ari_amd.detect.vector) against the scalar one: after every frame,
every column of every call equals what a scalar Detector fed the same frames holds, and the
events, verdicts and traces are the same."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_amd.detect import AmdParams, Mode
from ari_amd.detect import vector as V
from ari_amd.detect.detector import COLUMNS, Detector, classify
from ari_amd.detect.features import FRAME, analyze
from ari_amd.detect.g711 import decode_ulaw, encode_ulaw
from ari_amd.detect.verdict import AmdEvent
from ari_amd.media.batch import FrameBatch
from ari_amd.synth import DEV_CATEGORIES, make_clip

FEATURES = ("band_db", "periodicity", "peak_hz", "peak_frac", "peak2_hz", "peak2_frac", "fsk_frac", "cpt_frac")
PARAMS = [
    AmdParams(),
    AmdParams(mode=Mode.DETECT_MESSAGE_END),
    # Short limits, so that every rule falls due within a few seconds.
    AmdParams(timeout_ms=3000, silence_timeout_ms=2000, speech_threshold_ms=1000, speech_end_threshold_ms=500),
    AmdParams(mode=Mode.DETECT_MESSAGE_END, timeout_ms=4000, silence_timeout_ms=2000, speech_threshold_ms=1000,
              speech_end_threshold_ms=500),
]  # fmt: skip


def rows_of(samples: np.ndarray) -> np.ndarray:
    """int16 audio -> its frames' features, [frames, 8] float64 (the values the scalar step sees)."""
    n = len(samples) // FRAME
    feats = analyze(samples[: n * FRAME].reshape(n, FRAME).astype(np.float32) / 32768.0)
    return np.stack([getattr(feats, name).astype(np.float64) for name in FEATURES], axis=1)


ONSETS = COLUMNS.index["music.onsets"]


def assert_same_state(vec: V.VectorDecider, slot: int, ref: Detector, where: str) -> None:
    want = COLUMNS.store(ref)
    got = vec.column(slot)
    for col in range(COLUMNS.n):
        a, b = want[col], got[col]
        if col == ONSETS:
            assert b >= a, where  # the vector pass only counts them; the scalar step prunes
        else:
            name = COLUMNS.names[col]
            assert a == b or (math.isnan(a) and math.isnan(b)), f"column {name} at {where}: scalar {a}, vector {b}"


def lockstep(calls: list[tuple[AmdParams, np.ndarray]], min_rows: int = 1, check_state: bool = True) -> V.VectorDecider:
    """Every call's frames through a VectorDecider (a pass per frame index, all calls still
    undecided) and through a scalar Detector each, compared after every frame."""
    vec = V.VectorDecider(capacity=4, min_rows=min_rows)  # small: slots grow as calls are added
    refs, dets, slots = [], [], []
    for params, _ in calls:
        ref, det = Detector(params), Detector(params)
        ref.trace, det.trace = [], []
        refs.append(ref)
        dets.append(det)
        slots.append(vec.add(det))
    longest = max(len(rows) for _, rows in calls)
    for k in range(longest):
        alive = [i for i, (_, rows) in enumerate(calls) if k < len(rows) and not vec.finished[slots[i]]]
        if not alive:
            break
        feats = [np.array([calls[i][1][k, c] for i in alive]) for c in range(8)]
        events, errors = vec.step(np.array([slots[i] for i in alive]), feats)
        assert not errors
        got: dict[int, list[AmdEvent]] = dict(events)
        for j, i in enumerate(alive):
            want = refs[i].step_features(*calls[i][1][k].tolist())
            assert got.get(j, []) == want, f"call {i} frame {k}"
            if check_state:
                assert_same_state(vec, slots[i], refs[i], f"call {i} frame {k}")
            assert vec.finished[slots[i]] == refs[i].done
    for i, slot in enumerate(slots):
        det = vec.retire(slot)
        assert det is dets[i]
        if not refs[i].done:
            assert det.finish() == refs[i].finish()
        assert det.verdicts == refs[i].verdicts and det.trace == refs[i].trace, f"call {i}"
    return vec


@pytest.fixture(scope="module")
def clip_rows() -> list[np.ndarray]:
    # Two clips of every category, through mu-law as on a live call.
    return [rows_of(decode_ulaw(encode_ulaw(make_clip(cat, 40 + k).samples))) for cat in DEV_CATEGORIES for k in range(2)]


def test_every_column_of_every_call_matches_the_scalar_step_frame_by_frame(clip_rows: list[np.ndarray]) -> None:
    calls = [(params, rows) for rows in clip_rows for params in PARAMS]
    vec = lockstep(calls)
    assert vec.vector_rows > 10 * vec.scalar_rows  # the common frame did go through the arrays


def test_lost_packets_and_digital_silence_anywhere(clip_rows: list[np.ndarray]) -> None:
    rng = np.random.default_rng(3)
    calls = []
    for rows in clip_rows[:12]:
        rows = rows.copy()
        dead = rng.random(len(rows)) < 0.08  # lost packets, filled with zeros
        dead[: rng.integers(0, 60)] = True  # and a lead-in of digital silence
        rows[dead] = [-100.0, 0.0, 250.0, 0.0, 250.0, 0.0, 0.0, 0.0]
        calls += [(PARAMS[0], rows), (PARAMS[3], rows)]
    lockstep(calls)


@st.composite
def feature_rows(draw: st.DrawFn) -> np.ndarray:
    """Arbitrary feature sequences that hold still for a while (tones, notes, drones form) and
    jump (onsets, dead frames), far outside what real audio gives."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    parts = []
    for _ in range(draw(st.integers(1, 12))):
        n = draw(st.integers(1, 80))
        base = np.array([
            draw(st.sampled_from([-100.0, -80.0, -60.0, -45.0, -30.0, -15.0])),
            draw(st.floats(0.0, 1.0)),
            draw(st.sampled_from([300.0, 440.0, 1000.0, 1400.0, 1650.0, 1850.0, 2100.0, 3000.0])),
            draw(st.floats(0.0, 1.0)),
            draw(st.floats(250.0, 3600.0)),
            draw(st.floats(0.0, 0.5)),
            draw(st.floats(0.0, 1.0)),
            draw(st.floats(0.0, 1.0)),
        ])
        jitter = draw(st.sampled_from([0.0, 0.5, 5.0]))
        block = base + rng.normal(0.0, 1.0, (n, 8)) * jitter * np.array([1, 0.02, 2, 0.02, 20, 0.02, 0.02, 0.02])
        block[:, [1, 3, 5, 6, 7]] = block[:, [1, 3, 5, 6, 7]].clip(0.0, 1.0)
        # float32 values, as analyze gives them
        parts.append(block.astype(np.float32).astype(np.float64))
    return np.concatenate(parts)


@settings(max_examples=60)
@given(st.lists(feature_rows(), min_size=1, max_size=6), st.lists(st.sampled_from(range(len(PARAMS))), min_size=6,
                                                                  max_size=6))
def test_arbitrary_features_give_the_scalar_step_s_state(seqs: list[np.ndarray], modes: list[int]) -> None:
    lockstep([(PARAMS[modes[i]], rows) for i, rows in enumerate(seqs)])


def test_the_batch_gives_classify_s_verdicts_and_traces_with_many_calls_at_once() -> None:
    # More calls than the batch's min_vector_rows, 20 ms packets interleaved, a tick
    # every other packet as in the service, calls starting at different times.
    clips = [decode_ulaw(encode_ulaw(make_clip(cat, 70 + k).samples)) for k in range(3) for cat in DEV_CATEGORIES]
    batch = FrameBatch(min_vector_rows=8)
    sessions = []
    for i, samples in enumerate(clips):
        session = batch.add(Detector(PARAMS[i % 2]))
        session.detector.trace = []
        sessions.append((session, np.concatenate([np.zeros(FRAME * (i % 7), np.int16), samples])))
    longest = max(len(x) for _, x in sessions) // FRAME
    for k in range(longest):
        for session, x in sessions:
            if (k + 1) * FRAME <= len(x):
                session(x[k * FRAME : (k + 1) * FRAME], 8000)
        if k % 2:
            batch.process()
    for session, _ in sessions:
        session.finish()
    assert batch._vector.vector_rows > batch._vector.scalar_rows
    for i, (session, x) in enumerate(sessions):
        offline = Detector(PARAMS[i % 2])
        offline.trace = []
        offline.feed(x)
        if not offline.done:
            offline.finish()
        assert session.detector.verdicts == offline.verdicts == classify(x, PARAMS[i % 2])
        assert session.detector.trace == offline.trace


def test_a_closed_call_s_queued_frames_are_skipped_and_its_slot_reused_after_the_tick() -> None:
    samples = decode_ulaw(encode_ulaw(make_clip(DEV_CATEGORIES[0], 5).samples))
    batch = FrameBatch(min_vector_rows=8)
    many = [batch.add() for _ in range(8)]
    gone = batch.add()
    for s in (*many, gone):
        s(samples[:FRAME], 8000)
    slot = gone._slot
    gone.close()
    newcomer = batch.add()  # the retired slot is not handed out while its frame is queued
    assert newcomer._slot != slot
    assert batch.process() == len(many) + 1
    assert gone.detector.time_ms == 0  # its queued frame was skipped
    assert all(s.detector.time_ms == 20 for s in many)
    later = batch.add()
    assert later._slot == slot  # free again after the tick
    for s in (*many, newcomer, later):
        s.feed(samples)
    batch.process()
    for s in (newcomer, later):
        s.finish()
        assert s.detector.verdicts == classify(samples)


def test_a_detector_subclass_is_stepped_by_its_own_step_inside_a_vector_pass() -> None:
    calls = []

    class Counting(Detector):
        def step_features(self, *row: float) -> list[AmdEvent]:
            calls.append(self.time_ms)
            return super().step_features(*row)

    samples = decode_ulaw(encode_ulaw(make_clip(DEV_CATEGORIES[1], 9).samples))
    batch = FrameBatch(min_vector_rows=8)
    others = [batch.add() for _ in range(8)]
    mine = batch.add(Counting())
    for k in range(len(samples) // FRAME):
        for s in (*others, mine):
            s(samples[k * FRAME : (k + 1) * FRAME], 8000)
        batch.process()
    mine.finish()
    assert len(calls) == mine.detector.time_ms // 20 > 0
    assert mine.detector.verdicts == classify(samples)


def test_an_idle_tick_frees_the_slots_of_calls_that_left() -> None:
    batch = FrameBatch()
    sessions = [batch.add() for _ in range(3)]
    for s in sessions:
        s.close()
    assert len(batch._vector) == 0 and len(batch._by_slot) == 3  # retired, not yet free
    assert batch.process() == 0
    assert batch._by_slot == {}  # nothing queued could name them: free, and the sessions let go
    assert batch.add()._slot in range(3)  # one of theirs, handed out again

"""FrameBatch: many calls' frames decided in one vectorised step give the verdicts of one detector each."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ari_amd.detect import AmdParams, Mode
from ari_amd.detect.detector import Detector, classify
from ari_amd.detect.features import FRAME, analyze
from ari_amd.detect.g711 import ALAW_TO_LINEAR, decode_alaw, decode_ulaw, encode_ulaw
from ari_amd.detect.verdict import AmdEvent, AnsweredBy
from ari_amd.media.batch import MAX_ROWS_PER_ANALYZE, BatchSession, FrameBatch, occurrence_rank
from ari_amd.synth import DEV_CATEGORIES, make_clip

MODES = (AmdParams(), AmdParams(mode=Mode.DETECT_MESSAGE_END))


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    # One clip per category, through mu-law like the live path.
    return [decode_ulaw(encode_ulaw(make_clip(cat, 11 + i).samples)) for i, cat in enumerate(DEV_CATEGORIES)]


def upsample(x: np.ndarray) -> np.ndarray:
    """8 kHz -> 16 kHz by sample repetition: crude, but the same input for both paths."""
    return np.repeat(x, 2)


def test_step_features_gives_feed_verdicts_events_and_trace(clips: list[np.ndarray]) -> None:
    for samples in clips:
        for params in MODES:
            fed = Detector(params)
            fed.trace = []
            fed_events = fed.feed(samples)
            stepped = Detector(params)
            stepped.trace = []
            n = len(samples) // FRAME
            f = analyze((samples[: n * FRAME].astype(np.float32) / 32768.0).reshape(n, FRAME))
            cols = [f.band_db, f.periodicity, f.peak_hz, f.peak_frac, f.peak2_hz, f.peak2_frac, f.fsk_frac, f.cpt_frac]
            stepped_events: list[AmdEvent] = []
            for row in zip(*(c.tolist() for c in cols)):
                stepped_events += stepped.step_features(*row)
            assert stepped_events == fed_events
            assert stepped.verdicts == fed.verdicts and stepped.verdicts
            assert stepped.time_ms == fed.time_ms
            assert stepped.trace == fed.trace


def test_step_features_after_the_final_verdict_does_nothing() -> None:
    det = Detector(AmdParams(silence_timeout_ms=2000))
    while not det.done:
        det.step_features(-100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    t = det.time_ms
    assert det.step_features(-20.0, 0.9, 200.0, 0.2, 400.0, 0.1, 0.0, 0.0) == []
    assert det.time_ms == t
    assert det.verdicts[-1].answered_by is AnsweredBy.UNKNOWN


def test_interleaved_calls_in_one_batch_match_offline_classify(clips: list[np.ndarray]) -> None:
    batch = FrameBatch()
    calls: list[tuple[BatchSession, np.ndarray, AmdParams]] = []
    for samples in clips:
        for params in MODES:
            calls.append((batch.add(Detector(params)), samples, params))
    longest = max(len(s) for _, s, _ in calls) // FRAME + 1
    rng = np.random.default_rng(3)
    for i in range(longest):
        for session, samples, _ in calls:
            packet = samples[i * FRAME : (i + 1) * FRAME]
            if len(packet):
                session(packet, 8000)
        if rng.random() < 0.4:  # ticks at irregular points: frames of several packets per call wait
            batch.process()
    for session, _, _ in calls:
        session.finish()
    for session, samples, params in calls:
        assert session.detector.verdicts == classify(samples, params)
    assert batch.frames_processed > MAX_ROWS_PER_ANALYZE  # blocks were split
    assert len(batch) == 0


@pytest.mark.parametrize("chunk", [1, 80, 159, 161, 240, 1000])
def test_chunks_of_any_size_give_offline_verdicts(clips: list[np.ndarray], chunk: int) -> None:
    batch = FrameBatch()
    samples = clips[2]  # a voicemail: speech, then a beep
    session = batch.add(Detector(MODES[1]))
    for start in range(0, len(samples), chunk):
        session.feed(samples[start : start + chunk])
        if start % (chunk * 7) == 0:
            batch.process()
    session.finish()
    assert session.detector.verdicts == classify(samples, MODES[1])


def test_packets_of_mixed_sizes_and_types_keep_their_order(clips: list[np.ndarray]) -> None:
    # 160-sample int16 packets take the bulk-scaled path, others the float path: a call switching
    # between them within a tick must still be decided in arrival order, frame for frame.
    rng = np.random.default_rng(5)
    batch = FrameBatch()
    pairs = []
    for samples in clips[:4]:
        session = batch.add(Detector(MODES[1]))
        session.detector.trace = []
        offline = Detector(MODES[1])
        offline.trace = []
        offline.feed(samples)
        pairs.append((session, offline))
        start = 0
        while start < len(samples):
            size = int(rng.choice([160, 160, 160, 80, 240, 320, 17]))
            chunk = samples[start : start + size]
            session.feed(chunk.astype(np.float32) / 32768.0 if rng.random() < 0.1 else chunk)
            start += size
            if rng.random() < 0.2:
                batch.process()
    batch.process()
    for session, offline in pairs:
        assert session.detector.trace == offline.trace
        assert session.detector.verdicts == offline.verdicts


def encode_alaw(samples: np.ndarray) -> np.ndarray:
    """Nearest A-law code per sample (tests only: a search of the 256 codes)."""
    order = np.argsort(ALAW_TO_LINEAR)
    table = ALAW_TO_LINEAR[order].astype(np.int32)
    idx = np.clip(np.searchsorted(table, samples.astype(np.int32)), 1, 255)
    nearer = np.where(np.abs(table[idx - 1] - samples) <= np.abs(table[idx] - samples), idx - 1, idx)
    return order[nearer].astype(np.uint8)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_payloads_decoded_by_the_tick_match_decoded_frames(clips: list[np.ndarray], law: str) -> None:
    # Undecoded 20 ms payloads, lost frames (None), and decoded packets of other sizes in between,
    # as an RtpReceiver with on_g711 hands them on: frame for frame what one detector makes of the
    # decoded audio with silence for the losses.
    encode, decode = (encode_ulaw, decode_ulaw) if law == "ulaw" else (encode_alaw, decode_alaw)
    rng = np.random.default_rng(9)
    batch = FrameBatch()
    pairs = []
    for samples in clips[:5]:
        coded = encode(samples)
        session = batch.add(Detector(MODES[1]), law=law)
        session.detector.trace = []
        heard: list[np.ndarray] = []
        start = 0
        while start < len(coded):
            r = rng.random()
            size = FRAME if r < 0.85 else int(rng.choice([80, 240, 320]))
            chunk = coded[start : start + size]
            if len(chunk) == FRAME and r < 0.05:
                session.feed_g711(None)
                heard.append(np.zeros(FRAME, np.int16))
            elif len(chunk) == FRAME:
                session.feed_g711(chunk.tobytes())
                heard.append(decode(chunk))
            else:
                session.feed(decode(chunk))
                heard.append(decode(chunk))
            start += size
            if rng.random() < 0.3:
                batch.process()
        offline = Detector(MODES[1])
        offline.trace = []
        offline.feed(np.concatenate(heard))
        pairs.append((session, offline))
    batch.process()
    for session, offline in pairs:
        assert session.detector.trace == offline.trace
        assert session.detector.verdicts == offline.verdicts


def test_g711_frames_are_refused_without_a_law_or_of_the_wrong_size() -> None:
    batch = FrameBatch()
    with pytest.raises(ValueError, match="without a G.711 law"):
        batch.add().feed_g711(bytes(FRAME))
    with pytest.raises(ValueError, match="160 bytes"):
        batch.add(law="ulaw").feed_g711(bytes(80))
    with pytest.raises(ValueError, match="law must be one of"):
        batch.add(sample_rate=16000, law="ulaw")


def test_slin16_calls_match_a_16k_detector(clips: list[np.ndarray]) -> None:
    batch = FrameBatch()
    pairs = []
    for samples in clips[:4]:
        wide = upsample(samples)
        session = batch.add(Detector(sample_rate=16000), sample_rate=16000)
        for start in range(0, len(wide), 320):
            session(wide[start : start + 320], 16000)
        pairs.append((session, wide))
    batch.process()
    for session, wide in pairs:
        session.finish()
        assert session.detector.verdicts == classify(wide, sample_rate=16000)


def test_float_input_is_taken_as_full_scale_one(clips: list[np.ndarray]) -> None:
    samples = clips[0]
    batch = FrameBatch()
    session = batch.add()
    session.feed(samples.astype(np.float32) / 32768.0)
    session.finish()
    assert session.detector.verdicts == classify(samples)


def test_events_reach_the_callback_and_a_failing_callback_spares_other_calls(clips: list[np.ndarray]) -> None:
    seen: list[AnsweredBy] = []

    def boom(session: BatchSession, events: list[AmdEvent]) -> None:
        raise RuntimeError("handler bug")

    def record(session: BatchSession, events: list[AmdEvent]) -> None:
        seen.extend(e.verdict.answered_by for e in events if e.verdict is not None)

    batch = FrameBatch()
    bad = batch.add(on_events=boom)
    good = batch.add(on_events=record)
    for s in (bad, good):
        s.feed(clips[0])
    batch.process()
    good.finish()
    bad.finish()
    assert batch.callback_errors >= 1
    assert seen == [v.answered_by for v in classify(clips[0])]


def test_a_detector_fault_ends_that_call_only(clips: list[np.ndarray]) -> None:
    class Faulty(Detector):
        def step_features(self, *row: float) -> list[AmdEvent]:
            if self.time_ms >= 1000:
                raise ZeroDivisionError("a bug in one call's state")
            return super().step_features(*row)

    batch = FrameBatch()
    bad = batch.add(Faulty())
    good = [batch.add() for _ in range(3)]
    for s in (bad, *good):
        for i in range(0, len(clips[0]), FRAME):
            s(clips[0][i : i + FRAME], 8000)
    batch.process()
    assert batch.step_errors == 1 and bad.closed
    for s in good:
        s.finish()
        assert s.detector.verdicts == classify(clips[0])


def test_non_mono_audio_is_refused_at_the_caller(clips: list[np.ndarray]) -> None:
    batch = FrameBatch()
    session = batch.add()
    other = batch.add()
    other.feed(clips[0][:FRAME])
    with pytest.raises(ValueError, match="1-D"):
        session.feed(np.zeros((FRAME, 2), dtype=np.int16))
    assert batch.process() == 1  # the tick is unharmed


def test_a_reused_input_buffer_does_not_change_queued_frames(clips: list[np.ndarray]) -> None:
    samples = clips[0]
    batch = FrameBatch()
    session = batch.add()
    session.detector.trace = []
    buf = np.zeros(2 * FRAME, dtype=np.int16)
    for i in range(0, len(samples) - FRAME + 1, FRAME):
        buf[:FRAME] = samples[i : i + FRAME]  # one buffer, refilled for every packet
        session.feed(buf[:FRAME])
        if i % (FRAME * 5) == 0:
            batch.process()
    batch.process()
    offline = Detector()
    offline.trace = []
    offline.feed(samples[: len(samples) // FRAME * FRAME])
    assert session.detector.trace == offline.trace


def test_audio_at_another_rate_than_the_calls_is_refused() -> None:
    session = FrameBatch().add()
    with pytest.raises(ValueError, match="16000 Hz"):
        session(np.zeros(320, dtype=np.int16), 16000)


def test_finish_decides_queued_frames_before_the_end(clips: list[np.ndarray]) -> None:
    batch = FrameBatch()
    session = batch.add()
    session.feed(clips[0][: 40 * FRAME])
    assert batch.queued == 40
    session.finish("hangup")
    assert session.detector.time_ms == 40 * 20
    assert batch.queued == 0


def test_a_closed_call_is_skipped_and_takes_no_more_audio(clips: list[np.ndarray]) -> None:
    batch = FrameBatch()
    session = batch.add()
    session.feed(clips[0][: 10 * FRAME])
    session.close()
    batch.process()
    session.feed(clips[0][: 10 * FRAME])
    assert session.detector.time_ms == 0
    assert batch.queued == 0
    assert session.finish() == []


async def test_run_ticks_on_the_event_loop(clips: list[np.ndarray]) -> None:
    batch = FrameBatch(tick_ms=5)
    session = batch.add()
    task = asyncio.create_task(batch.run())
    session.feed(clips[0][: 25 * FRAME])
    for _ in range(200):  # a bound, not a timing assertion
        await asyncio.sleep(0.005)
        if batch.queued == 0:
            break
    task.cancel()
    assert session.detector.time_ms == 25 * 20


def test_bad_rate_and_tick_are_refused() -> None:
    with pytest.raises(ValueError):
        FrameBatch(tick_ms=0)
    with pytest.raises(ValueError):
        FrameBatch().add(sample_rate=44100)


def test_occurrence_rank_counts_the_equal_keys_before_each() -> None:
    keys = np.array([7, 3, 7, 7, 1, 3])
    assert occurrence_rank(keys).tolist() == [0, 0, 1, 2, 0, 1]
    assert occurrence_rank(np.array([], dtype=np.intp)).tolist() == []


def test_a_recording_session_keeps_every_frame_it_decided_as_int16(clips: list[np.ndarray]) -> None:
    batch = FrameBatch()
    x = clips[0][: 40 * FRAME]
    recorded: list[np.ndarray] = []
    session = batch.add(law="ulaw")
    session.record(recorded)
    other = batch.add(law="ulaw")  # not recording: none of its frames may appear
    payloads = encode_ulaw(x).tobytes()
    for i in range(40):
        frame = payloads[i * FRAME : (i + 1) * FRAME]
        if i % 3 == 0:
            session.feed(decode_ulaw(np.frombuffer(frame, np.uint8)))  # int16, as held frames come
        else:
            session.feed_g711(frame)
        other.feed_g711(bytes(FRAME))
        if i % 4 == 3:
            batch.process()
    batch.process()
    assert np.array_equal(np.concatenate(recorded), decode_ulaw(encode_ulaw(x)))
    session.close()
    session.feed_g711(payloads[:FRAME])
    batch.process()
    assert len(recorded) == 40  # a closed call records no more

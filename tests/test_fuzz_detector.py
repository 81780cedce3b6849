"""The detector fed anything: arbitrary int16/float audio in arbitrary chunks never raises, and the
verdicts do not depend on how the audio was cut (the live path's packets vs a whole file)."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_amd.detect import AmdParams, Mode
from ari_amd.detect.detector import Detector
from ari_amd.media.batch import FrameBatch

RATE = 8000
# Short limits so a few seconds of audio reach verdicts (MachineDetectionTimeout's minimum is 3 s).
PARAMS = [
    AmdParams(timeout_ms=3000, silence_timeout_ms=2000, speech_threshold_ms=1000, speech_end_threshold_ms=500),
    AmdParams(mode=Mode.DETECT_MESSAGE_END, timeout_ms=3000, silence_timeout_ms=2000,
              speech_threshold_ms=1000, speech_end_threshold_ms=500),
]


@st.composite
def audio(draw: st.DrawFn) -> np.ndarray:
    """int16 sound made of segments that exercise every tracker: silence, digital zero, noise, tones
    (one or two, steady or gliding), voiced pulse trains, clipping, plus raw arbitrary bytes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    parts: list[np.ndarray] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["zero", "noise", "tone", "two_tone", "glide", "voiced", "clip", "bytes"]))
        n = draw(st.integers(1, 2 * RATE))
        t = np.arange(n) / RATE
        amp = draw(st.sampled_from([30.0, 1000.0, 8000.0, 32767.0]))
        f = draw(st.floats(100.0, 3800.0))
        if kind == "zero":
            x = np.zeros(n)
        elif kind == "noise":
            x = rng.standard_normal(n) * amp / 3
        elif kind == "tone":
            x = amp * np.sin(2 * np.pi * f * t)
        elif kind == "two_tone":
            x = amp / 2 * (np.sin(2 * np.pi * f * t) + np.sin(2 * np.pi * (f * 1.09) * t))
        elif kind == "glide":
            x = amp * np.sin(2 * np.pi * (f + 300 * t) * t)
        elif kind == "voiced":
            pitch = draw(st.floats(80.0, 300.0))
            x = amp * np.sign(np.sin(2 * np.pi * pitch * t)) * np.exp(-((t * pitch) % 1) * 6)
        elif kind == "clip":
            x = np.clip(rng.standard_normal(n) * 1e6, -32768, 32767)
        else:
            raw = draw(st.binary(max_size=4000))
            x = np.frombuffer(raw[: len(raw) // 2 * 2], dtype=np.int16).astype(np.float64)
        parts.append(np.clip(x, -32768, 32767).astype(np.int16))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


chunkings = st.lists(st.integers(1, 2000), min_size=1, max_size=8)


def run(samples: np.ndarray, params: AmdParams, chunks: list[int] | None) -> Detector:
    det = Detector(params)
    det.trace = []
    if chunks is None:
        det.feed(samples)
    else:
        pos, i = 0, 0
        while pos < len(samples):
            size = chunks[i % len(chunks)]
            det.feed(samples[pos : pos + size])
            pos, i = pos + size, i + 1
    if not det.done:
        det.finish()
    return det


@settings(max_examples=120)
@given(samples=audio(), chunks=chunkings, mode=st.integers(0, 1))
def test_any_int16_audio_in_any_chunks_gives_the_whole_file_verdicts(
    samples: np.ndarray, chunks: list[int], mode: int
) -> None:
    params = PARAMS[mode]
    whole = run(samples, params, None)
    cut = run(samples, params, chunks)
    assert cut.verdicts == whole.verdicts
    assert cut.trace == whole.trace
    assert whole.verdicts and whole.verdicts[-1].final  # always an answer, finish() or not
    assert whole.verdicts[-1].duration_ms <= max(len(samples) * 1000 // RATE, 0) + 20
    again = run(samples, params, None)  # and the same audio again gives the same answer
    assert again.verdicts == whole.verdicts


@settings(max_examples=60)
@given(samples=audio(), chunks=chunkings)
def test_float_input_scaled_the_same_gives_the_int16_verdicts(samples: np.ndarray, chunks: list[int]) -> None:
    as_int = run(samples, PARAMS[0], chunks)
    as_float = run(samples.astype(np.float32) / 32768.0, PARAMS[0], chunks[::-1])
    assert as_float.verdicts == as_int.verdicts


@settings(max_examples=60)
@given(
    values=st.lists(
        st.floats(allow_nan=True, allow_infinity=True, width=32) | st.floats(-1.0, 1.0, width=32),
        min_size=0,
        max_size=3000,
    ),
    dtype=st.sampled_from([np.float32, np.float64]),
    chunks=chunkings,
)
def test_out_of_range_and_non_finite_floats_never_raise(values: list[float], dtype: type, chunks: list[int]) -> None:
    # NaN, inf and 1e38 are not audio; numpy may warn on them (overflow in the power sum), but the
    # detector must not raise, and must still answer.
    x = np.array(values, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        det = run(np.tile(x, 3) if len(x) else x, PARAMS[0], chunks)
    assert det.verdicts and det.verdicts[-1].final


@settings(max_examples=60)
@given(samples=audio(), chunks=chunkings, dtype=st.sampled_from([np.uint8, np.int32, np.int64, np.uint16]))
def test_other_integer_dtypes_never_raise(samples: np.ndarray, chunks: list[int], dtype: type) -> None:
    det = run(samples.astype(dtype), PARAMS[1], chunks)
    assert det.verdicts and det.verdicts[-1].final


@settings(max_examples=40)
@given(calls=st.lists(st.tuples(audio(), chunkings, st.integers(0, 1)), min_size=1, max_size=5), ticks=chunkings)
def test_batched_calls_in_any_chunks_give_their_whole_file_verdicts(
    calls: list[tuple[np.ndarray, list[int], int]], ticks: list[int]
) -> None:
    batch = FrameBatch()
    sessions = [batch.add(Detector(PARAMS[mode])) for _, _, mode in calls]
    cursors = [0] * len(calls)
    step = 0
    while any(c < len(s) for c, (s, _, _) in zip(cursors, calls)):
        for k, (samples, chunks, _) in enumerate(calls):
            size = chunks[step % len(chunks)]
            sessions[k].feed(samples[cursors[k] : cursors[k] + size])
            cursors[k] += size
        if ticks[step % len(ticks)] % 3 == 0:
            batch.process()
        step += 1
    for session, (samples, _, mode) in zip(sessions, calls):
        session.finish()
        assert session.detector.verdicts == run(samples, PARAMS[mode], None).verdicts

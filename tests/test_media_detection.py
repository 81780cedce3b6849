"""DetectionSession: a call's audio from its tap to its detector, without Asterisk.

Whatever the route (per packet, the batch's G.711 or linear path, the hub's blocks), what is held
before answer and what is recorded, the verdicts are those of `classify` on the audio since answer.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ari_amd.detect import AmdEvent, AmdParams, EventKind, Mode, classify
from ari_amd.detect.g711 import decode_ulaw, encode_ulaw
from ari_amd.media import RtpReceiver, build_packet
from ari_amd.media.batch import FrameBatch
from ari_amd.media.detection import FRAME_S, HELD_FRAMES, DetectionSession
from ari_amd.media.hub import RtpHub
from ari_amd.synth import make_clip

HOST = "127.0.0.1"
FRAME = 160
PARAMS = (AmdParams(), AmdParams(mode=Mode.DETECT_MESSAGE_END))
CATEGORIES = ("human_residential", "machine_personal", "silence")


class Clock:
    """time.monotonic for held frames, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    # Through mu-law, as the live path hears them: every route gets the same int16 audio.
    return {cat: decode_ulaw(encode_ulaw(make_clip(cat, 21 + i).samples)) for i, cat in enumerate(CATEGORIES)}


def session_for(fmt: str, params: AmdParams, batch: FrameBatch | None, record: bool = False,
                clock: Clock | None = None) -> tuple[DetectionSession, list[AmdEvent]]:  # fmt: skip
    events: list[AmdEvent] = []
    session = DetectionSession(params, fmt, events.append, batch=batch, record=record, clock=clock or Clock())
    return session, events


def play(session: DetectionSession, audio: np.ndarray, batch: FrameBatch | None, fmt: str = "ulaw") -> None:
    """`audio` (int16 at 8 kHz) as the receiver hands it on: 20 ms G.711 payloads to on_g711 where the
    session takes them, else decoded frames to on_audio (slin16: at 16 kHz); the batch ticks now and then."""
    rate = 16000 if fmt == "slin16" else 8000
    for i, start in enumerate(range(0, len(audio) - FRAME + 1, FRAME)):
        frame = audio[start : start + FRAME]
        if session.on_g711 is not None:
            session.on_g711(encode_ulaw(frame).tobytes())
        else:
            session.on_audio(np.repeat(frame, 2) if rate == 16000 else frame, rate)
        if batch is not None and i % 3 == 2:
            batch.process()


def verdicts(session: DetectionSession, events: list[AmdEvent]) -> list[object]:
    got = [ev.verdict for ev in events if ev.kind is EventKind.VERDICT]
    assert got == session.detector.verdicts  # the events carry every verdict, in order
    return got


ROUTES = [("ulaw", False, "feed"), ("ulaw", True, "batch_g711"), ("slin", True, "batch_linear"),
          ("slin16", True, "batch_linear"), ("slin16", False, "feed")]  # fmt: skip


@pytest.mark.parametrize(("fmt", "batched", "route"), ROUTES)
@pytest.mark.parametrize("category", CATEGORIES)
def test_each_route_gives_classify_verdicts(clips: dict[str, np.ndarray], fmt: str, batched: bool, route: str,
                                            category: str) -> None:  # fmt: skip
    audio = clips[category]
    for params in PARAMS:
        batch = FrameBatch() if batched else None
        session, events = session_for(fmt, params, batch)
        assert session.route == route
        session.start(answered_at=0.0)
        play(session, audio, batch, fmt)
        session.finish()
        if fmt == "slin16":
            want = classify(np.repeat(audio[: len(audio) // FRAME * FRAME], 2), params, sample_rate=16000)
        else:
            want = classify(audio[: len(audio) // FRAME * FRAME], params)
        assert verdicts(session, events) == want and want
        assert batch is None or len(batch) == 0  # it left the batch


def test_frames_before_answer_are_held_and_ringing_is_dropped(clips: dict[str, np.ndarray]) -> None:
    audio = clips["machine_personal"]
    clock = Clock()
    batch = FrameBatch()
    session, events = session_for("ulaw", PARAMS[1], batch, clock=clock)
    ring = (np.sin(np.arange(50 * FRAME) * 2 * np.pi * 440 / 8000) * 8000).astype(np.int16)
    play(session, ring, None)  # ringing, before the answer's stamp
    clock.now += 0.5
    answered = clock.now
    early = audio[: 40 * FRAME]  # heard after the answer, before detection started
    play(session, early, None)
    assert session.held == 90 and not session.detecting and not events
    assert session.detector.time_ms == 0  # nothing reached the detector yet
    session.start(answered_at=answered)
    assert session.held == 0 and session.detecting
    play(session, audio[40 * FRAME :], batch)
    session.finish()
    assert verdicts(session, events) == classify(audio[: len(audio) // FRAME * FRAME], PARAMS[1])


def test_holding_keeps_the_last_ten_seconds() -> None:
    session, _ = session_for("slin", PARAMS[0], None)
    for _ in range(HELD_FRAMES + 25):
        session.on_audio(np.zeros(FRAME, dtype=np.int16), 8000)
    assert session.held == HELD_FRAMES


def test_a_tap_later_than_the_answer_puts_the_gap_in_as_silence(clips: dict[str, np.ndarray]) -> None:
    audio = clips["human_residential"]
    for batch in (None, FrameBatch()):
        session, events = session_for("ulaw", PARAMS[0], batch, record=True)
        session.start(answered_at=10.0, tapped_at=10.0 + 15 * FRAME_S)
        play(session, audio, batch)
        session.finish()
        heard = np.concatenate((np.zeros(15 * FRAME, dtype=np.int16), audio[: len(audio) // FRAME * FRAME]))
        assert verdicts(session, events) == classify(heard, PARAMS[0])
        recording = session.recording
        assert recording is not None and np.array_equal(recording, heard[: len(recording)])


@pytest.mark.parametrize(("fmt", "batched"), [("ulaw", False), ("ulaw", True), ("slin", True), ("slin16", False)])
def test_the_recording_is_what_the_detector_heard_since_answer(tmp_path: Path, clips: dict[str, np.ndarray],
                                                               fmt: str, batched: bool) -> None:  # fmt: skip
    audio = clips["machine_personal"]
    clock = Clock()
    batch = FrameBatch() if batched else None
    session, events = session_for(fmt, PARAMS[1], batch, record=True, clock=clock)
    rate = 16000 if fmt == "slin16" else 8000
    play(session, np.full(10 * FRAME, 3000, dtype=np.int16), None, fmt)  # ringing: not recorded
    clock.now += 1.0
    session.start(answered_at=clock.now)
    play(session, audio, batch, fmt)
    session.finish()
    heard = audio[: len(audio) // FRAME * FRAME]
    if rate == 16000:
        heard = np.repeat(heard, 2)
    final = verdicts(session, events)[-1]
    recording = session.recording
    assert recording is not None and recording.dtype == np.int16
    # Every frame up to the final verdict (at most a tick's worth past it), the ringing left out.
    assert final.duration_ms * rate // 1000 <= len(recording) <= len(heard)
    assert np.array_equal(recording, heard[: len(recording)])
    path = tmp_path / "calls" / "call.wav"
    assert session.write_recording(path)
    written, written_rate = sf.read(str(path), dtype="int16")
    assert written_rate == rate and np.array_equal(written, recording)


def test_nothing_is_recorded_unless_asked(tmp_path: Path, clips: dict[str, np.ndarray]) -> None:
    session, _ = session_for("ulaw", PARAMS[0], FrameBatch())
    session.start(answered_at=0.0)
    play(session, clips["silence"], None)
    session.finish()
    assert session.recording is None
    assert not session.write_recording(tmp_path / "none.wav") and not (tmp_path / "none.wav").exists()


def test_a_session_closed_before_answer_leaves_the_batch_without_a_verdict() -> None:
    batch = FrameBatch()
    session, events = session_for("ulaw", PARAMS[0], batch)
    assert len(batch) == 1
    assert session.on_g711 is not None  # the batch's G.711 route
    session.on_g711(bytes(FRAME))  # held
    session.close()
    assert len(batch) == 0 and not events and session.held == 0
    session.on_audio(np.zeros(FRAME, dtype=np.int16), 8000)  # after close: dropped
    session.start(answered_at=0.0)  # too late: nothing starts
    assert not session.detecting and session.detector.time_ms == 0


def test_close_leaves_the_batch_without_a_verdict_and_finish_after_it_does_nothing() -> None:
    batch = FrameBatch()
    session, events = session_for("ulaw", PARAMS[0], batch)
    session.start(answered_at=0.0)
    play(session, np.zeros(50 * FRAME, dtype=np.int16), batch)
    session.close()
    session.finish("hangup")
    assert len(batch) == 0 and not session.detecting
    assert not [ev for ev in events if ev.kind is EventKind.VERDICT] and not session.done


def test_an_undecided_call_ends_unknown_with_the_cause() -> None:
    for batch in (None, FrameBatch()):
        session, events = session_for("ulaw", PARAMS[0], batch)
        session.start(answered_at=0.0)
        play(session, np.zeros(50 * FRAME, dtype=np.int16), batch)
        session.finish("hangup")
        (verdict,) = verdicts(session, events)
        assert verdict.answered_by.value == "unknown" and "hangup" in verdict.cause
        assert verdict.duration_ms == 1000


def test_an_unknown_format_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="opus"):
        DetectionSession(PARAMS[0], "opus", lambda ev: None)


def test_the_hub_queues_a_started_calls_frames_as_blocks(sender: socket.socket,
                                                          clips: dict[str, np.ndarray]) -> None:  # fmt: skip
    """On an RtpHub, from `start` on the call's in-sequence G.711 is taken by array into the batch;
    before it, the same packets are decoded and held. The verdicts are classify's either way."""
    audio = clips["machine_personal"]
    batch = FrameBatch()
    hub = RtpHub(HOST, 0, batch=batch)
    hub.open()
    try:
        clock = Clock()
        session, events = session_for("ulaw", PARAMS[1], batch, record=True, clock=clock)
        rx = RtpReceiver.attach(hub, "ulaw", session.on_audio, sender.getsockname(), on_g711=session.on_g711)
        payload = encode_ulaw(audio).tobytes()
        n = len(audio) // FRAME

        def send(seqs: range) -> None:
            for i in seqs:
                packet = build_packet(payload[i * FRAME : (i + 1) * FRAME], sequence=i, timestamp=i * FRAME, ssrc=9,
                                      payload_type=0)  # fmt: skip
                sender.sendto(packet, (HOST, hub.port))
                if i % 8 == 7:
                    drain(hub, batch)
            drain(hub, batch)

        send(range(0, 25))  # heard before detection starts: held
        assert session.held == 25 and hub.stats.fast == 0
        session.start(answered_at=0.0, receiver=rx)
        send(range(25, n))
        assert hub.stats.fast > 0  # taken by array, as blocks into the batch
        session.finish()
        rx.close()
        heard = audio[: n * FRAME]
        assert verdicts(session, events) == classify(heard, PARAMS[1])
        recording = session.recording
        assert recording is not None and np.array_equal(recording, heard[: len(recording)])
    finally:
        hub.close()


def drain(hub: RtpHub, batch: FrameBatch) -> None:
    time.sleep(0.002)
    while hub.drain():
        time.sleep(0.002)
    batch.process()

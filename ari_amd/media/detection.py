"""One call's audio from its media tap to its detector: held while the call rings, then fed to the
detector by one route, optionally recorded, its events handed on as they come.

    tap (RtpReceiver: on_audio / on_g711) -> DetectionSession -> Detector -> on_event(AmdEvent)
                                             [held until start()]  [or the FrameBatch's columns]

The four routes (`route`; the first three fixed when the session is made, the fourth at `start`):
- "feed", no FrameBatch: each decoded frame through `Detector.feed`, events at once (per packet);
- "batch_g711": the payloads undecoded into the batch (`BatchSession.feed_g711`), decoded a tick
  at a time with every other call's;
- "batch_linear", slin and slin16: the decoded samples into the batch (`BatchSession.feed`);
- on an RtpHub, "batch_g711" once started: the hub queues the call's in-sequence payloads itself,
  as one block with every other call's (`RtpReceiver.bind_batch`); the rest still come one by one.
Recording keeps what the detector was given since answer (the batch records G.711 itself, as int16
at 8 kHz, whichever way a frame reached it) and writes it as one WAV at the end.

The session knows nothing of calls or ARI: the caller says when the call was answered and when
the tap started listening, and reads the events.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from ari_amd.detect import AmdEvent, AmdParams, Detector
from ari_amd.detect.g711 import G711_TO_LINEAR, decode_g711_frame
from ari_amd.media.batch import BatchSession, FrameBatch
from ari_amd.media.receiver import FORMATS, G711_FRAME_BYTES, G711Callback, RtpReceiver

FRAME_S = 0.020
HELD_FRAMES = 500  # 10 s of audio held while the call rings (the tap starts before answer)

EventHandler = Callable[[AmdEvent], None]
Clock = Callable[[], float]

log = structlog.get_logger(__name__)


class DetectionSession:
    """One call's detection on the media side: give `on_audio` (and `on_g711`, when not None) to
    the call's RtpReceiver before the tap opens, `start` at answer, `finish` when detection ends
    (or only `close`, for a call never answered)."""

    def __init__(
        self,
        params: AmdParams,
        media_format: str,
        on_event: EventHandler,
        *,
        batch: FrameBatch | None = None,
        record: bool = False,
        logger: Any = None,
        clock: Clock = time.monotonic,
    ) -> None:
        """media_format: the externalMedia format (a key of FORMATS). on_event: each AmdEvent, in
        order (from the batch's tick on the batch routes). record: keep the audio for
        `write_recording`. logger: a structlog logger bound to the call. clock: what the
        arrival times of held frames are read from (time.monotonic, as `start`'s times)."""
        try:
            self.sample_rate = FORMATS[media_format].sample_rate
        except KeyError:
            raise ValueError(f"unknown media format {media_format!r}; one of {sorted(FORMATS)}") from None
        self.media_format = media_format
        self.on_event = on_event
        self.detector = Detector(params, self.sample_rate)
        self._clock = clock
        self._log = logger if logger is not None else log
        self._detecting = False
        self._closed = False
        self._receiver: RtpReceiver | None = None
        # Frames that arrive before detection starts, with their arrival time, so that `start`
        # can tell the callee's first frame from ringing.
        self._held: deque[tuple[float, np.ndarray]] = deque(maxlen=HELD_FRAMES)
        self._recorded: list[np.ndarray] | None = [] if record else None
        self._batch: BatchSession | None = None
        self._law = media_format if media_format in G711_TO_LINEAR else None
        # The receiver's on_g711: only where the batch takes G.711 undecoded.
        self.on_g711: G711Callback | None = None
        if batch is not None:
            # Decided with every other call's frames, one vectorised step per tick.
            self._batch = batch.add(self.detector, self.sample_rate, self._on_batch_events, law=self._law)
            if self._law is not None:
                self.on_g711 = self._on_g711
                if self._recorded is not None:
                    self._batch.record(self._recorded)  # every frame, whichever way it reached the batch

    # -- what the caller reads ------------------------------------------------------------------
    @property
    def detecting(self) -> bool:
        """Started and not yet finished or closed: frames go to the detector (before: held)."""
        return self._detecting

    @property
    def done(self) -> bool:
        """The final verdict is out."""
        return self.detector.done

    @property
    def route(self) -> str:
        """How frames reach the detector: "feed", "batch_g711" or "batch_linear"."""
        if self._batch is None:
            return "feed"
        return "batch_g711" if self.on_g711 is not None else "batch_linear"

    @property
    def held(self) -> int:
        """Frames held, waiting for `start`."""
        return len(self._held)

    @property
    def recording(self) -> np.ndarray | None:
        """What the detector was given since answer, int16 at `sample_rate`; None when not
        recording or nothing was."""
        if not self._recorded:
            return None
        return np.concatenate(self._recorded)

    # -- the receiver's callbacks ----------------------------------------------------------------
    def on_audio(self, samples: np.ndarray, rate: int) -> None:
        """Decoded audio from the receiver (its on_audio callback)."""
        if self._closed or self.detector.done:
            return
        if not self._detecting:
            self._held.append((self._clock(), samples))
            return
        self._feed(samples)

    def _on_g711(self, payload: bytes | None) -> None:
        """A 20 ms G.711 frame from the receiver (None: lost): undecoded into the batch while
        detecting, else decoded and held as any other audio."""
        batch = self._batch
        assert batch is not None and self._law is not None
        if self._detecting:
            batch.feed_g711(payload)
            return
        self.on_audio(decode_g711_frame(self._law, payload, G711_FRAME_BYTES), self.sample_rate)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, answered_at: float, tapped_at: float | None = None, receiver: RtpReceiver | None = None) -> None:
        """Detection starts: what the tap heard since `answered_at` goes in first (both times on
        the session's clock). tapped_at: when the tap started listening; later than the answer
        (a channel handed over by the dialplan), the gap goes in as silence so that durations
        stay counted from answer. receiver: the call's, flushed at `finish` (and, on an RtpHub
        with the batch's G.711 route, let queue the call's frames as blocks)."""
        if self._detecting or self._closed:
            return
        self._detecting = True
        self._receiver = receiver
        # Frames that arrived before the answer was stamped were ringing (or early media).
        held = [x for t, x in self._held if t >= answered_at]
        self._held.clear()
        if tapped_at is not None and tapped_at > answered_at:
            # What the callee said before the tap attached is lost.
            frames = int(round((tapped_at - answered_at) / FRAME_S))
            if frames > 0:
                self._feed(np.zeros(frames * int(self.sample_rate * FRAME_S), dtype=np.int16))
            self._log.debug("audio_lead_in", lead_in_ms=frames * 20)
        for x in held:
            self._feed(x)
        if self.on_g711 is not None and receiver is not None:
            # From here on_g711 only passes frames to the batch: the hub may queue them itself.
            receiver.bind_batch(self._batch)

    def finish(self, cause: str = "end_of_audio") -> None:
        """Detection ends: frames the receiver holds back for a missing packet go in, then an
        undecided detector ends with `unknown` (cause: "hangup", "no_media"...), then `close`."""
        if self._closed:
            return
        if self._detecting:
            if self._receiver is not None:
                self._receiver.flush()  # they belong before the end
            if not self.detector.done:
                if self._batch is not None:
                    self._batch.finish(cause)  # its queued frames first; events via the callback
                else:
                    for ev in self.detector.finish(cause):
                        self.on_event(ev)
        self.close()

    def close(self) -> None:
        """Leave the batch, with no verdict if there was none (a call never answered); later
        frames are dropped. Idempotent."""
        if self._closed:
            return
        if self._batch is not None:
            self._batch.close()
        self._closed = True
        self._detecting = False
        self._held.clear()

    def write_recording(self, path: Path) -> bool:
        """Write what was recorded as a 16-bit WAV at `path` (blocking: run it in a thread).
        False if there was nothing to write or it could not be written (logged)."""
        audio = self.recording
        if audio is None:
            return False
        import soundfile as sf

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), audio, self.sample_rate, subtype="PCM_16")
        except OSError as e:
            self._log.warning("call_record_failed", path=str(path), error=str(e))
            return False
        self._log.info("call_recorded", path=str(path))
        return True

    # -- internals ------------------------------------------------------------------------------
    def _feed(self, samples: np.ndarray) -> None:
        if self.detector.done:
            return
        if self._recorded is not None and self.on_g711 is None:
            self._recorded.append(samples)  # (on the batch's G.711 route, the batch records)
        if self._batch is not None:
            self._batch.feed(samples)
            return
        for ev in self.detector.feed(samples):
            self.on_event(ev)

    def _on_batch_events(self, session: BatchSession, events: list[AmdEvent]) -> None:
        for ev in events:
            self.on_event(ev)

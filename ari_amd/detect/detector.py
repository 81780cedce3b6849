"""The streaming detector: feed samples of any length, get events at the frame they happen.

`Detector.step_features` is one call's decision step over its trackers; `step_arrays` the same
composition over many calls' columns (`COLUMNS`, derived from each tracker's declared state) for
ari_amd.detect.vector, each tracker's array step beside its scalar one in its own module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from ari_amd.detect import machine as _machine
from ari_amd.detect import music as _music
from ari_amd.detect import tones as _tones
from ari_amd.detect import vad as _vad
from ari_amd.detect.columns import INT, OPT_INT, Declaration, Field, Layout
from ari_amd.detect.features import DEAD_DB, FRAME, FRAME_MS, SAMPLE_RATE, analyze
from ari_amd.detect.machine import CALL_PROGRESS_MS, AmdStateMachine, State
from ari_amd.detect.music import MusicTracker
from ari_amd.detect.params import AmdParams
from ari_amd.detect.resample import Decimator
from ari_amd.detect.tones import ToneTracker
from ari_amd.detect.vad import VoiceActivity
from ari_amd.detect.verdict import AmdEvent, Verdict

MUSIC_VETOES_BEEP_MS = 2_000  # a tone this soon after music, straight out of it, is a note of it
FEED_BLOCK_FRAMES = 250  # frames analysed in one vectorised step (5 s)


class TraceRow(NamedTuple):
    t_ms: int
    level_db: float
    floor_db: float
    ceiling_db: float
    speech: bool
    tone: bool
    music: bool


class Detector:
    """One call's detector. Time is the audio clock: samples fed since answer.

    feed(samples): int16 (or float in [-1, 1]) mono at `sample_rate` (8000 or 16000).
    finish(cause): end of audio (hangup, end of file); emits `unknown` if undecided.
    Features are computed for all whole frames of a chunk at once; the per-frame
    decisions that follow are cheap scalar work.
    """

    # The detector's own part of the columns (its trackers declare theirs).
    STATE: tuple[Declaration, ...] = (
        Field("frames_done", INT, "_frames_done"),
        Field("heard_at", OPT_INT, "_heard_at"),
    )
    # Not per-frame state (the trackers' is theirs to declare), or the feed() path's only.
    OBJECT_ONLY: frozenset[str] = frozenset(
        {"params", "_decimator", "_pending", "vad", "tones", "music", "machine", "trace"}
    )

    def __init__(self, params: AmdParams | None = None, sample_rate: int = SAMPLE_RATE) -> None:
        self.params = params or AmdParams()
        if sample_rate not in (SAMPLE_RATE, 2 * SAMPLE_RATE):
            raise ValueError(f"sample_rate must be 8000 or 16000 (got {sample_rate})")
        self._decimator = Decimator() if sample_rate == 2 * SAMPLE_RATE else None
        self._pending = np.zeros(0, dtype=np.float32)
        self._frames_done = 0
        self._heard_at: int | None = None  # the end of the first frame that was not digital silence
        self.vad = VoiceActivity()
        self.tones = ToneTracker()
        self.music = MusicTracker()
        self.machine = AmdStateMachine(self.params)
        # Set to [] to record, per frame: (t_ms, level_db, floor_db, ceiling_db, speech, tone, music).
        self.trace: list[TraceRow] | None = None

    @property
    def time_ms(self) -> int:
        return self._frames_done * FRAME_MS

    @property
    def done(self) -> bool:
        """The final verdict is out (the machine's state DONE is set with it)."""
        return self.machine.state is State.DONE

    @property
    def verdicts(self) -> list[Verdict]:
        return list(self.machine.verdicts)

    def feed(self, samples: np.ndarray) -> list[AmdEvent]:
        if self.done:
            return []
        x = np.asarray(samples)
        x = x.astype(np.float32) / 32768.0 if x.dtype.kind in "iu" else x.astype(np.float32, copy=False)
        if self._decimator is not None:
            x = self._decimator.process(x)
        buf = np.concatenate((self._pending, x)) if len(self._pending) else x
        n = len(buf) // FRAME
        self._pending = buf[n * FRAME :].copy()
        events: list[AmdEvent] = []
        # A long chunk (a whole file) is analysed a few seconds at a time, so the audio after
        # the final verdict is never analysed. Features are per frame: same verdicts either way.
        for start in range(0, n, FEED_BLOCK_FRAMES):
            stop = min(n, start + FEED_BLOCK_FRAMES)
            events += self._frames(buf[start * FRAME : stop * FRAME].reshape(stop - start, FRAME))
            if self.done:
                self._pending = np.zeros(0, dtype=np.float32)
                break
        return events

    def _frames(self, frames: np.ndarray) -> list[AmdEvent]:
        feats = analyze(frames)
        events: list[AmdEvent] = []
        step = self.step_features
        for row in zip(
            feats.band_db.tolist(), feats.periodicity.tolist(), feats.peak_hz.tolist(), feats.peak_frac.tolist(),
            feats.peak2_hz.tolist(), feats.peak2_frac.tolist(), feats.fsk_frac.tolist(), feats.cpt_frac.tolist(),
        ):
            events += step(*row)
            if self.done:
                break
        return events

    def step_features(
        self,
        band_db: float,
        periodicity: float,
        peak_hz: float,
        peak_frac: float,
        peak2_hz: float,
        peak2_frac: float,
        fsk_frac: float,
        cpt_frac: float,
    ) -> list[AmdEvent]:
        """The decision step for the next whole frame, its features already computed: feed()
        runs it for each frame of a chunk, media.batch for each call's frame of a tick (one
        `analyze` over every call). Do not mix with feed() of partial frames."""
        if self.done:
            return []
        vad, tones, music, machine = self.vad, self.tones, self.music, self.machine
        self._frames_done += 1
        t_ms = self._frames_done * FRAME_MS
        if self._heard_at is None and band_db > DEAD_DB:
            self._heard_at = t_ms
        floor = vad.floor_db if vad.floor_db is not None else band_db
        obs = tones.update(
            t_ms, band_db, floor, peak_hz, peak_frac, peak2_hz, peak2_frac, fsk_frac, cpt_frac, vad.ceiling_db
        )
        # Before anyone speaks, ringback-band tone is call progress, never a voice.
        progress = obs.call_progress_ms >= CALL_PROGRESS_MS and machine.listening_for_first_speech
        # Music in held notes (as of the frame before) is voiced too, but it is not a voice.
        voice = vad.update(band_db, periodicity, obs.tone or obs.candidate or progress or music.notes, peak_frac)
        playing = music.update(
            t_ms, peak_hz, peak2_hz, peak_frac, obs.tone or obs.candidate, band_db - floor, peak2_frac, band_db, floor,
            voice.speech,
        )
        beep = obs.beep
        if beep is not None and not beep.quiet_before and music.heard_within(beep.start_ms, MUSIC_VETOES_BEEP_MS):
            obs = replace(obs, beep=None)  # a note of the hold music, not a beep
        if self.trace is not None:
            self.trace.append(
                TraceRow(t_ms, band_db, vad.floor_db or 0.0, vad.ceiling_db or 0.0, voice.speech, obs.tone, playing)
            )
        return machine.step(t_ms, voice, obs, playing, self._heard_at)

    def finish(self, cause: str = "end_of_audio") -> list[AmdEvent]:
        return self.machine.finish(self.time_ms, cause)


# Every call's state as a column: the detector's, then each tracker's block.
COLUMNS = Layout((
    ("", Detector.STATE),
    ("vad", VoiceActivity.STATE),
    ("tones", ToneTracker.STATE),
    ("music", MusicTracker.STATE),
    ("machine", AmdStateMachine.STATE),
))
_FRAMES, _HEARD_AT, _FLOOR, _CEILING, _NOTES = (
    COLUMNS.index[name] for name in ("frames_done", "heard_at", "vad.floor_db", "vad.ceiling_db", "music.notes")
)
_VAD, _TONES, _MUSIC, _MACHINE = (COLUMNS.blocks[part] for part in ("vad", "tones", "music", "machine"))


class ArrayTrace(NamedTuple):
    """TraceRow's fields, a list each with a value per row (music is never heard in an array step's row)."""

    t_ms: list[int]
    level_db: list[float]
    floor_db: list[float]
    ceiling_db: list[float]
    speech: list[bool]
    tone: list[bool]

    def row(self, i: int) -> TraceRow:
        return TraceRow(
            self.t_ms[i], self.level_db[i], self.floor_db[i], self.ceiling_db[i], self.speech[i], self.tone[i], False
        )


class ArrayStep(NamedTuple):
    """What `step_arrays` made of its rows."""

    state: np.ndarray  # the new columns
    rare: np.ndarray  # rows for the scalar step (from the old columns)
    opens: np.ndarray  # rows (not rare) where an utterance opened, back-dated to onset_ms
    closes: np.ndarray  # rows (not rare) where the open utterance closed, at ended_ms
    onset_ms: np.ndarray
    ended_ms: np.ndarray
    t_ms: np.ndarray
    trace: ArrayTrace | None  # if asked


def step_arrays(s: np.ndarray, feats: Sequence[np.ndarray], forced: np.ndarray, want_trace: bool) -> ArrayStep:
    """`Detector.step_features` over many calls' COLUMNS `s` [COLUMNS.n, calls] (not modified), one
    frame each: feats, the eight features (float64, a row per call). The common frame is done
    here; where something rare happens (or `forced`), the row is the scalar step's."""
    band, per, p1, f1, p2, f2, fsk, cpt = feats
    new = s.copy()
    frames = s[_FRAMES] + 1
    new[_FRAMES] = frames
    t = frames * FRAME_MS
    live = ~(band <= DEAD_DB)
    heard_at = s[_HEARD_AT]
    new[_HEARD_AT] = np.where(np.isnan(heard_at) & live, t, heard_at)
    # The floor the tone tracker and music judge against (the VAD's, as of the frame before).
    floor0 = s[_FLOOR]
    floor = np.where(np.isnan(floor0), band, floor0)
    tones = _tones.update_arrays(s[_TONES], new[_TONES], t, live, band, floor, p1, f1, f2, fsk, cpt)
    sounding = tones.tone | tones.candidate
    # Ringback before anyone speaks is the scalar step's (progress); held notes are not a voice.
    speech, rise = _vad.update_arrays(s[_VAD], new[_VAD], live, band, per, sounding | (s[_NOTES] > 0), f1)
    _, music_rare = _music.update_arrays(
        s[_MUSIC], new[_MUSIC], p1, p2, f1, sounding, band - floor, f2, band, floor, speech
    )
    mc = _machine.step_arrays(s[_MACHINE], new[_MACHINE], t, speech, rise, sounding)
    rare = forced | tones.scalar | (live & (tones.call_progress_ms >= CALL_PROGRESS_MS)) | music_rare | mc.scalar
    trace = None
    if want_trace:
        floor_out, ceiling_out = new[_FLOOR], new[_CEILING]
        trace = ArrayTrace(
            t.astype(np.int64).tolist(), band.tolist(), np.where(np.isnan(floor_out), 0.0, floor_out).tolist(),
            np.where(np.isnan(ceiling_out), 0.0, ceiling_out).tolist(), speech.tolist(), tones.tone.tolist(),
        )
    return ArrayStep(new, rare, mc.opens & ~rare, mc.closes & ~rare, mc.onset_ms, mc.ended_ms, t, trace)


def classify(samples: np.ndarray, params: AmdParams | None = None, sample_rate: int = SAMPLE_RATE) -> list[Verdict]:
    """Whole-clip convenience: every verdict the detector gives for this audio, in order."""
    det = Detector(params, sample_rate)
    det.feed(samples)
    if not det.done:
        det.finish()
    return det.verdicts

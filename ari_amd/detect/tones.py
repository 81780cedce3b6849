"""Tone detectors over per-frame spectral peaks: voicemail beeps, fax (V.25 / V.21), SIT.

A tone is a run of frames whose spectrum is one or two narrow peaks that stay put
(or glide slowly). What the run *was* is decided from its frequency, duration and what
follows it: a beep is short (80 ms-1.6 s) and ends into quiet, because the machine
starts recording; ringback is longer and cadenced; music keeps sounding after its notes.

`ToneTracker.update` is the rule for one call; `update_arrays` its common frame over many calls'
columns at once (ari_amd.detect.vector), on the state declared in `ToneTracker.STATE`. What only
the object holds (a beep group waiting for quiet, the runs kept for SIT and evidence) is judged
by the scalar step: the array step sends it those frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ari_amd.detect.columns import BOOL, FLOAT, INT, Declaration, Field, Record, rows
from ari_amd.detect.features import DEAD_DB, FRAME_MS

TONAL_FRAC = 0.55  # one peak holding this share of the band power starts a tone
TONAL_CONTINUE_FRAC = 0.4  # and this keeps one going at the same pitch (beeps in loud noise)
TWO_TONE_FRAC = 0.82  # or two peaks together (dual tones, tone + harmonic)
TONE_ABOVE_FLOOR_DB = 4.0  # purity, not loudness, says tone; the floor may have crept up under it...
PURE_FRAC = 0.7  # ...and a frame this pure (line noise stays below 0.4) need only clear it by
PURE_ABOVE_FLOOR_DB = 1.5
MAX_STEP_HZ = 12.0  # frame-to-frame drift allowed inside one tone (glides); voice pitch moves more
CANDIDATE_PURITY = 0.7  # mean purity for a starting tone to hold speech back (voices rarely reach it)
MIN_TONE_FRAMES = 5  # 100 ms before a frame is called tone rather than voice
# A burst of street noise or a babbler's syllable can take the strongest peak from a beep for a
# frame: an established tone survives one such frame if its pitch comes back.
RUN_MISS_FRAMES = 1
# Lost packets (zeros) inside a tone are a hole in it, up to a burst this long; longer, the line
# itself is digital silence (silence suppression) and the tone has ended.
DEAD_BRIDGE_FRAMES = 5

BEEP_MIN_MS = 120  # a run this long is judged as a beep by the rules below...
BEEP_PULSE_MIN_MS = 80  # ...a shorter one (a double beep's pulse) by stricter ones
BEEP_MAX_MS = 1_600
BEEP_LO_HZ, BEEP_HI_HZ = 280.0, 2_600.0
BEEP_MERGE_GAP_MS = 200  # double beeps and two-tone sequences are one beep
BEEP_QUIET_DB = 6.0  # after the beep, the level falls to within this of the floor...
BEEP_DROP_DB = 12.0  # ...or this far below the beep (the floor may be stale after a long tone)...
# ...or back under the background's loud end (the VAD's ceiling): in babble or street noise the
# floor sits under the noise's quiet moments, and the line after a beep is that noise again.
# Only for a tone too long to be a vowel: a 120 ms vowel at a steady pitch, then babble, is not.
BEEP_CEILING_DB = 3.0
BEEP_CEILING_MIN_MS = 200
BEEP_DECAY_FRAMES = 2  # loud frames allowed after the tone: its decay, room echo
BEEP_TAIL_FRAC = 0.3  # after the beep, a peak at its pitch this strong...
BEEP_TAIL_DROP_DB = 3.0  # ...and this much softer is the tone going on (as loud: the beep itself, broken up)
BEEP_PURITY = 0.6
BEEP_MAX_SPREAD_DB = 3.0  # a beep's level is flat
BEEP_STEADY_MS = 300  # past this, the allowed level spread grows with the duration
BEEP_LONG_SPREAD_DB = 6.0
BEEP_MAX_PITCH_RANGE_HZ = 12.0  # and so is its pitch...
BEEP_GLIDE_HZ_PER_MS = 0.12  # ...unless it glides, slowly, over a longer run
# A tone that holds its pitch this tightly this long is no voice (flat synthetic vowels waver by
# ~18 Hz): in noise that takes much of the band it is a beep at a lower share of the band.
BEEP_STEADY_PITCH_HZ = 10.0
BEEP_NOISY_PURITY = 0.45
# A tone whose own level holds within 2 dB is no vowel (vowels swell by 4 dB and more): its
# pitch estimate may jitter more in noise, and a pure one may glide faster (glide beeps sweep
# up to ~5% of their pitch).
BEEP_FLAT_DB = 2.0
BEEP_FLAT_PITCH_RANGE_HZ = 16.0
BEEP_PURE_GLIDE_HZ_PER_MS = 0.25
BEEP_PURE_GLIDE_PURITY = 0.8
BEEP_PULSE_PURITY = 0.75
BEEP_PULSE_SPREAD_DB = 2.0
BEEP_PULSE_PITCH_RANGE_HZ = 6.0

FAX_ANS_HZ = 2_100.0
FAX_ANS_TOL_HZ = 40.0
FAX_ANS_MS = 400  # V.25 answer tone lasts 2.6-4 s; a beep this pitch is rare before any speech
V21_MARK_HZ, V21_SPACE_HZ = 1_650.0, 1_850.0
V21_TOL_HZ = 60.0
V21_LO_HZ, V21_HI_HZ = V21_MARK_HZ - V21_TOL_HZ, V21_SPACE_HZ + V21_TOL_HZ  # where its peak may be
V21_MS = 200
V21_BAND_SHARE = 0.75
V21_MIN_HOP_HZ = 80.0

CPT_BAND_SHARE = 0.9  # ringback: nearly all the power in 350-550 Hz (speech: never > 120 ms)
CPT_BAND_HZ = (350.0, 550.0)
# Ringback: 440+480 Hz 2 s on (US: longer than any beep), 400+450 Hz as a double ring of two
# 0.4 s tones (UK), 425 Hz 1 s on (much of Europe). Where their strongest peak falls, a double
# ring of long tones, or a 425 Hz tone as long as a ring, is call progress, not a beep.
CPT_RING_HZ = (400.0, 470.0)
CPT_RING_PART_MS = 300
CPT_RING_GAP_MS = 320  # after a tone that may be the first of a double ring, wait this long for the second
CPT_EU_RING_HZ = (415.0, 435.0)
CPT_EU_RING_MS = 900

SIT_BANDS = ((880.0, 1_000.0), (1_330.0, 1_450.0), (1_740.0, 1_810.0))
SIT_SEGMENT_MS = (200, 450)


@dataclass
class ToneRun:
    start_ms: int
    end_ms: int
    hz: float
    purity: float
    frames: int = 0
    lo_hz: float = 1e9  # pitch range over the run: a beep holds its pitch, a sung vowel wavers
    hi_hz: float = 0.0
    level_db: float = -100.0  # the loudest interior level
    lo_db: float = 0.0  # level range over the run's interior frames: a beep is flat, a vowel swells
    hi_db: float = -200.0
    end_hz: float = 0.0  # the pitch at the end of the last run (a pending beep group's last tone)
    misses: int = 0  # frames in a row the peak has been elsewhere (RUN_MISS_FRAMES bridged)
    parts: int = 1  # a pending beep group: how many tones, and the shortest of them
    shortest_ms: int = 0
    quiet_before: bool = False  # two frames before it began were near the floor (the one just before
    # may hold its onset): it did not begin straight out of other sound

    @property
    def spread_db(self) -> float:
        return max(0.0, self.hi_db - self.lo_db)


@dataclass(frozen=True)
class Beep:
    start_ms: int
    end_ms: int
    hz: float
    quiet_before: bool = True  # it began out of quiet, not straight out of other sound (music's last note)


@dataclass(frozen=True)
class ToneObservation:
    """What the tone tracker says about one frame."""

    tone: bool  # this frame is part of a tone (VAD must not call it speech)
    candidate: bool = False  # a tone may be starting: don't count it as speech yet
    fax: str | None = None  # "v25_answer_tone" / "v21_flags" when first confirmed
    sit: bool = False  # SIT sequence completed at this frame
    beep: Beep | None = None  # a beep confirmed over (ended into quiet) at this frame
    call_progress: bool = False  # a frame of ringback-band tone
    call_progress_ms: int = 0  # how long it has lasted
    beep_pending: bool = False  # a beep-like tone (group) has ended and is waiting for quiet



_NOTHING = ToneObservation(tone=False)


class ToneTracker:
    """Per-call tone state. Feed one frame at a time, in order."""

    # The attributes the array step reads or writes, as the vector step's columns hold them.
    STATE: tuple[Declaration, ...] = (
        Record("run", "_run", ToneRun, (  # the run in progress (end_hz, parts, shortest_ms: a pending group's)
            Field("run_start", INT, "start_ms"),
            Field("run_end", INT, "end_ms"),
            Field("run_hz", FLOAT, "hz"),
            Field("run_purity", FLOAT, "purity"),
            Field("run_frames", INT, "frames"),
            Field("run_lo_hz", FLOAT, "lo_hz"),
            Field("run_hi_hz", FLOAT, "hi_hz"),
            Field("run_level", FLOAT, "level_db"),
            Field("run_lo_db", FLOAT, "lo_db"),
            Field("run_hi_db", FLOAT, "hi_db"),
            Field("run_misses", INT, "misses"),
            Field("run_quiet_before", BOOL, "quiet_before"),
        )),
        # Read only: while a beep waits for quiet, every frame is the scalar step's.
        Field("pending", BOOL, "{}._pending is not None", read_only=True),
        Field("loud_frames", INT, "_loud_frames", read_only=True),
        Field("tail_frames", INT, "_tail_frames", read_only=True),
        Field("prev_level", FLOAT, "_prev_level"),
        Field("prev2_level", FLOAT, "_prev2_level"),
        Field("dead_frames", INT, "_dead_frames"),
        Field("fax_ms", INT, "_fax_ms"),
        Field("cpt_ms", INT, "_cpt_ms"),
        Field("v21_ms", INT, "_v21_ms"),
        Field("v21_lo", FLOAT, "_v21_lo"),
        Field("v21_hi", FLOAT, "_v21_hi"),
        Field("fax_found", BOOL, "{}.fax_found is not None", read_only=True),  # confirmed by the scalar step
    )
    # Changed only by the scalar step, in the frames the array step hands it.
    OBJECT_ONLY: frozenset[str] = frozenset({"_sit_runs", "_sit_changed", "runs"})

    def __init__(self) -> None:
        self._run: ToneRun | None = None
        self._pending: ToneRun | None = None  # candidate beep group awaiting quiet
        self._loud_frames = 0  # loud frames since a candidate beep ended
        self._tail_frames = 0  # quieter frames since then still at the beep's pitch
        self._prev_level = 0.0
        self._prev2_level = 0.0  # the frame before that
        self._dead_frames = 0  # digital-silence frames in a row
        self._fax_ms = 0
        self._cpt_ms = 0
        self._v21_ms = 0
        self._v21_lo, self._v21_hi = 1e9, 0.0
        self.fax_found: str | None = None
        self._sit_runs: deque[ToneRun] = deque(maxlen=len(SIT_BANDS))
        self._sit_changed = False
        self.runs: list[ToneRun] = []  # every finished tone run, for evidence

    def update(
        self,
        t_ms: int,
        level_db: float,
        floor_db: float,
        peak_hz: float,
        peak_frac: float,
        peak2_hz: float,
        peak2_frac: float,
        fsk_frac: float = 0.0,
        cpt_frac: float = 0.0,
        ceiling_db: float | None = None,
    ) -> ToneObservation:
        """One frame. floor_db / ceiling_db: the background's level and its loud end, as the
        VAD knows them (as of the frame before)."""
        start_ms = t_ms - FRAME_MS
        run = self._run
        if level_db <= DEAD_DB:
            self._dead_frames += 1
            if run is not None:
                if self._dead_frames <= DEAD_BRIDGE_FRAMES:
                    # A lost packet inside a tone is a hole, not its end (the run's end moves on
                    # if the tone comes back).
                    return ToneObservation(tone=run.frames >= MIN_TONE_FRAMES)
                self._close_run(run)
                self._run = None
            if self._pending is None and not (self._loud_frames or self._tail_frames):
                return _NOTHING
            beep = self._track_beep(t_ms, level_db, floor_db, peak_hz, peak_frac, ceiling_db)
            return ToneObservation(False, beep=beep, beep_pending=self._pending is not None)
        self._dead_frames = 0
        above = level_db - floor_db
        # A very pure frame is a tone even barely over the floor (line noise stays below 0.4).
        loud = above > TONE_ABOVE_FLOOR_DB or (peak_frac >= PURE_FRAC and above > PURE_ABOVE_FLOOR_DB)
        single = peak_frac >= TONAL_FRAC
        dual = peak_frac + peak2_frac >= TWO_TONE_FRAC
        tonal = loud and (single or dual)
        fax = self._track_fax(tonal, peak_hz, peak_frac, fsk_frac, loud)
        cpt = above > TONE_ABOVE_FLOOR_DB and cpt_frac >= CPT_BAND_SHARE
        self._cpt_ms = self._cpt_ms + FRAME_MS if cpt else 0

        same_pitch = run is not None and abs(peak_hz - run.hz) <= MAX_STEP_HZ
        if same_pitch and not tonal and loud and peak_frac >= TONAL_CONTINUE_FRAC:
            tonal = single = True
        if tonal and run is not None and same_pitch:
            run.end_ms = t_ms
            run.hz = peak_hz
            run.lo_hz = min(run.lo_hz, peak_hz)
            run.hi_hz = max(run.hi_hz, peak_hz)
            run.purity += peak_frac + (peak2_frac if dual and not single else 0.0)
            run.frames += 1
            if run.frames > 2 and not run.misses:  # the first frames straddle the onset
                run.lo_db = min(run.lo_db, self._prev_level)
                run.hi_db = max(run.hi_db, self._prev_level)
                run.level_db = run.hi_db
            run.misses = 0
        elif run is not None and not tonal and run.misses < RUN_MISS_FRAMES and run.frames >= MIN_TONE_FRAMES:
            run.misses += 1
        else:
            if run is not None:
                self._close_run(run)
            self._run = (
                ToneRun(start_ms, t_ms, peak_hz, peak_frac, frames=1, lo_hz=peak_hz, hi_hz=peak_hz, lo_db=200.0,
                        quiet_before=self._prev2_level <= floor_db + BEEP_QUIET_DB)
                if tonal
                else None
            )
        self._prev2_level = self._prev_level
        self._prev_level = level_db  # the last frame of a run straddles its end: judged one frame late
        run = self._run
        is_tone = run is not None and run.frames >= MIN_TONE_FRAMES
        candidate = run is not None and run.frames >= 2 and run.purity >= CANDIDATE_PURITY * run.frames
        sit = self._sit_changed and self._sit_complete()
        pending = self._pending is not None
        # With no beep pending and nothing counted since one, _track_beep has nothing to do.
        beep = (
            self._track_beep(t_ms, level_db, floor_db, peak_hz, peak_frac, ceiling_db)
            if pending or self._loud_frames or self._tail_frames
            else None
        )
        pending = self._pending is not None
        if not (is_tone or candidate or fax or sit or beep or cpt or self._cpt_ms or pending):
            return _NOTHING  # most frames: one shared, immutable observation
        return ToneObservation(is_tone, candidate, fax, sit, beep, cpt, self._cpt_ms, pending)

    # --- fax -----------------------------------------------------------------
    def _track_fax(self, tonal: bool, peak_hz: float, peak_frac: float, fsk_frac: float, loud: bool) -> str | None:
        if self.fax_found:
            return None
        if tonal and abs(peak_hz - FAX_ANS_HZ) <= FAX_ANS_TOL_HZ:
            self._fax_ms += FRAME_MS
        elif self._fax_ms and not tonal:
            # V.25 phase reversals and ANSam dips blur a frame or two: decay, don't reset.
            self._fax_ms = max(0, self._fax_ms - FRAME_MS // 2)
        else:
            self._fax_ms = 0
        # V.21 FSK keeps its power in 1650-1850 Hz and its peak hops between mark and
        # space; a beep there would hold one pitch.
        fsk = loud and fsk_frac >= V21_BAND_SHARE and V21_LO_HZ <= peak_hz <= V21_HI_HZ
        if fsk:
            self._v21_ms += FRAME_MS
            self._v21_lo, self._v21_hi = min(self._v21_lo, peak_hz), max(self._v21_hi, peak_hz)
        elif self._v21_ms:  # lo and hi move only with it: already reset otherwise
            self._v21_ms, self._v21_lo, self._v21_hi = 0, 1e9, 0.0
        if self._fax_ms >= FAX_ANS_MS:
            self.fax_found = "v25_answer_tone"
        elif self._v21_ms >= V21_MS and self._v21_hi - self._v21_lo >= V21_MIN_HOP_HZ:
            self.fax_found = "v21_flags"
        return self.fax_found

    # --- beeps ---------------------------------------------------------------
    def _close_run(self, run: ToneRun) -> None:
        if run.frames < MIN_TONE_FRAMES:
            return
        run.purity /= run.frames
        self.runs.append(run)
        self._sit_runs.append(run)
        self._sit_changed = True
        pending = self._pending
        if not _beep_like(run):
            if pending is not None and run.start_ms - pending.end_ms <= _merge_gap(pending):
                self._pending = None  # another, unbeeplike tone straight after: music
            return
        if pending is not None and run.start_ms - pending.end_ms <= _merge_gap(pending):
            pending.purity = (pending.purity * pending.frames + run.purity * run.frames) / (pending.frames + run.frames)
            pending.end_ms = run.end_ms
            pending.end_hz = run.hz
            pending.parts += 1
            pending.shortest_ms = min(pending.shortest_ms, run.end_ms - run.start_ms)
            pending.frames += run.frames
            pending.level_db = max(pending.level_db, run.level_db)
        else:
            self._pending = ToneRun(
                run.start_ms, run.end_ms, run.hz, run.purity, run.frames, level_db=run.level_db, end_hz=run.hz,
                quiet_before=run.quiet_before, shortest_ms=run.end_ms - run.start_ms,
            )

    def _track_beep(
        self, t_ms: int, level_db: float, floor_db: float, peak_hz: float, peak_frac: float, ceiling_db: float | None
    ) -> Beep | None:
        pending = self._pending
        if pending is None or self._run is not None:
            self._loud_frames = 0
            self._tail_frames = 0
            return None
        quiet = max(floor_db + BEEP_QUIET_DB, pending.level_db - BEEP_DROP_DB)
        if ceiling_db is not None and pending.end_ms - pending.start_ms >= BEEP_CEILING_MIN_MS:
            quiet = max(quiet, ceiling_db + BEEP_CEILING_DB)
        if level_db > quiet:
            self._loud_frames += 1
            if self._loud_frames > BEEP_DECAY_FRAMES:
                # Sound goes on after the tone: music, speech, a voice over it: not a beep.
                self._pending = None
            return None
        if (
            abs(peak_hz - pending.end_hz) <= MAX_STEP_HZ
            and peak_frac >= BEEP_TAIL_FRAC
            and level_db <= pending.level_db - BEEP_TAIL_DROP_DB
        ):
            self._tail_frames += 1
            if self._tail_frames > BEEP_DECAY_FRAMES:
                # The same pitch sounds on, only softer: a note of music fading, not a beep
                # (the machine starts recording after a beep: what follows is the line).
                self._pending = None
            return None
        if t_ms - pending.end_ms < _merge_gap(pending):
            return None
        self._pending = None
        duration = pending.end_ms - pending.start_ms
        if BEEP_PULSE_MIN_MS <= duration <= BEEP_MAX_MS and not _ringback_like(pending, duration):
            return Beep(pending.start_ms, pending.end_ms, pending.hz, pending.quiet_before)
        return None

    # --- SIT -----------------------------------------------------------------
    def _sit_complete(self) -> bool:
        if not self._sit_changed:  # the verdict on the last three runs stands until another ends
            return False
        self._sit_changed = False
        runs = list(self._sit_runs)
        if len(runs) < len(SIT_BANDS):
            return False
        ok = all(
            lo <= r.hz <= hi and SIT_SEGMENT_MS[0] <= r.end_ms - r.start_ms <= SIT_SEGMENT_MS[1]
            for r, (lo, hi) in zip(runs, SIT_BANDS)
        ) and all(b.start_ms - a.end_ms <= 100 for a, b in zip(runs, runs[1:]))
        if ok:
            self._sit_runs.clear()
        return ok


def _beep_like(run: ToneRun) -> bool:
    """Is this tone run shaped like (part of) a beep? A beep is an oscillator switched on and
    off: one frequency (20 ms frames estimate it to a few Hz) at one amplitude. A voice, even a
    flat synthetic one, is a pulse train through a moving vocal tract: its harmonics drift with
    its pitch (tens of Hz across a vowel, more at higher harmonics) and its level swells and
    falls with the syllable (several dB)."""
    duration = run.end_ms - run.start_ms
    if not BEEP_LO_HZ <= run.hz <= BEEP_HI_HZ:
        return False
    pitch_range = run.hi_hz - run.lo_hz
    if duration >= BEEP_MIN_MS:
        flat = run.spread_db <= BEEP_FLAT_DB
        rate = BEEP_PURE_GLIDE_HZ_PER_MS if flat and run.purity >= BEEP_PURE_GLIDE_PURITY else BEEP_GLIDE_HZ_PER_MS
        still = BEEP_FLAT_PITCH_RANGE_HZ if flat else BEEP_MAX_PITCH_RANGE_HZ
        glide_allowance = max(still, rate * (duration - BEEP_MIN_MS))
        # A long steady tone is no vowel: let noise (hum beating, street) shake its level more.
        spread_allowance = min(BEEP_LONG_SPREAD_DB, BEEP_MAX_SPREAD_DB * duration / BEEP_STEADY_MS)
        spread_allowance = max(BEEP_MAX_SPREAD_DB, spread_allowance)
        steady = (
            duration >= BEEP_STEADY_MS - 100
            and pitch_range <= BEEP_STEADY_PITCH_HZ
            and run.spread_db <= BEEP_MAX_SPREAD_DB
        )
        purity = BEEP_NOISY_PURITY if steady else BEEP_PURITY
        return run.purity >= purity and run.spread_db <= spread_allowance and pitch_range <= glide_allowance
    # Short pulses (double beeps) must be cleaner still.
    return (
        duration >= BEEP_PULSE_MIN_MS
        and run.purity >= BEEP_PULSE_PURITY
        and run.spread_db <= BEEP_PULSE_SPREAD_DB
        and pitch_range <= BEEP_PULSE_PITCH_RANGE_HZ
    )


def _in_ring_band(hz: float) -> bool:
    return CPT_RING_HZ[0] <= hz <= CPT_RING_HZ[1]


def _merge_gap(group: ToneRun) -> int:
    """How long a silence still joins the next tone to this group: longer after what may be
    the first tone of a UK double ring (its gap is 0.2 s), so the pair is judged together."""
    ring_part = _in_ring_band(group.hz) and group.end_ms - group.start_ms >= CPT_RING_PART_MS
    return CPT_RING_GAP_MS if ring_part else BEEP_MERGE_GAP_MS


def _ringback_like(group: ToneRun, duration_ms: int) -> bool:
    """A tone group in the ringback band as long as a ring, or a double ring of long tones."""
    if CPT_EU_RING_HZ[0] <= group.hz <= CPT_EU_RING_HZ[1] and duration_ms >= CPT_EU_RING_MS:
        return True
    return _in_ring_band(group.hz) and group.parts >= 2 and group.shortest_ms >= CPT_RING_PART_MS


def _near(hz: float, target: float, tol: float) -> bool:
    return abs(hz - target) <= tol


class ToneArrays(NamedTuple):
    """What `update_arrays` says about each call's frame (ToneObservation's common fields)."""

    tone: np.ndarray
    candidate: np.ndarray
    call_progress_ms: np.ndarray
    scalar: np.ndarray  # something rare happened (a tone to judge ended, a beep waits, fax): the scalar step's frame


_ROWS = rows(ToneTracker.STATE, "ToneRows")


def update_arrays(
    s: np.ndarray, new: np.ndarray, t_ms: np.ndarray, live: np.ndarray, level_db: np.ndarray, floor_db: np.ndarray,
    peak_hz: np.ndarray, peak_frac: np.ndarray, peak2_frac: np.ndarray, fsk_frac: np.ndarray, cpt_frac: np.ndarray,
) -> ToneArrays:
    """`ToneTracker.update` for many calls, up to what only the scalar step does (`scalar`): s,
    new: their STATE rows before and after (new is written); live: level_db > DEAD_DB. Each
    array follows the scalar code's order of operations in float64, so the two agree to the bit."""
    where, minimum, maximum, absolute = np.where, np.minimum, np.maximum, np.abs
    r = _ROWS
    dead = ~live
    run = s[r.run] > 0
    above = level_db - floor_db
    loud = (above > TONE_ABOVE_FLOOR_DB) | ((peak_frac >= PURE_FRAC) & (above > PURE_ABOVE_FLOOR_DB))
    single = peak_frac >= TONAL_FRAC
    dual = peak_frac + peak2_frac >= TWO_TONE_FRAC
    tonal = loud & (single | dual)
    # _track_fax (frozen once found; a dead frame returns before it)
    fax_live = live & ~(s[r.fax_found] > 0)
    fax_ms0 = s[r.fax_ms]
    fax_ms = where(
        tonal & (absolute(peak_hz - FAX_ANS_HZ) <= FAX_ANS_TOL_HZ),
        fax_ms0 + FRAME_MS,
        where((fax_ms0 != 0) & ~tonal, maximum(0.0, fax_ms0 - FRAME_MS // 2), 0.0),
    )
    fsk_on = loud & (fsk_frac >= V21_BAND_SHARE) & (peak_hz >= V21_LO_HZ) & (peak_hz <= V21_HI_HZ)
    v21_ms0 = s[r.v21_ms]
    v21_ms = where(fsk_on, v21_ms0 + FRAME_MS, 0.0)
    v21_lo = where(fsk_on, minimum(s[r.v21_lo], peak_hz), where(v21_ms0 != 0, 1e9, s[r.v21_lo]))
    v21_hi = where(fsk_on, maximum(s[r.v21_hi], peak_hz), where(v21_ms0 != 0, 0.0, s[r.v21_hi]))
    fax_found = fax_live & ((fax_ms >= FAX_ANS_MS) | ((v21_ms >= V21_MS) & (v21_hi - v21_lo >= V21_MIN_HOP_HZ)))
    new[r.fax_ms] = where(fax_live, fax_ms, fax_ms0)
    new[r.v21_ms] = where(fax_live, v21_ms, v21_ms0)
    new[r.v21_lo] = where(fax_live, v21_lo, s[r.v21_lo])
    new[r.v21_hi] = where(fax_live, v21_hi, s[r.v21_hi])
    cpt = (above > TONE_ABOVE_FLOOR_DB) & (cpt_frac >= CPT_BAND_SHARE)
    cpt_ms = where(live, where(cpt, s[r.cpt_ms] + FRAME_MS, 0.0), s[r.cpt_ms])
    new[r.cpt_ms] = cpt_ms
    # The run: extended at the same pitch, else closed (judged by the scalar step if long
    # enough to be a tone) and a new one begun if this frame is tonal.
    same = run & (absolute(peak_hz - s[r.run_hz]) <= MAX_STEP_HZ)
    held_on = same & ~tonal & loud & (peak_frac >= TONAL_CONTINUE_FRAC)
    tonal = tonal | held_on
    single = single | held_on
    extend = live & tonal & same
    # An established tone survives a frame whose peak went elsewhere: the run as it was.
    misses0 = s[r.run_misses]
    bridge = live & run & ~tonal & (misses0 < RUN_MISS_FRAMES) & (s[r.run_frames] >= MIN_TONE_FRAMES)
    begin = live & tonal & ~same
    active = where(live, extend | begin | bridge, run)
    keep = dead | bridge
    run_frames = where(extend, s[r.run_frames] + 1, where(begin, 1.0, where(keep, s[r.run_frames], 0.0)))
    new[r.run_misses] = where(bridge, misses0 + 1, where(dead, misses0, 0.0))
    prev_level = s[r.prev_level]
    new[r.run_quiet_before] = where(
        begin, s[r.prev2_level] <= floor_db + BEEP_QUIET_DB, where(extend | keep, s[r.run_quiet_before], 0.0)
    )
    straddle = extend & (run_frames > 2) & (misses0 == 0)  # the first frames straddle the onset
    lo_db = where(straddle, minimum(s[r.run_lo_db], prev_level), s[r.run_lo_db])
    hi_db = where(straddle, maximum(s[r.run_hi_db], prev_level), s[r.run_hi_db])
    purity = s[r.run_purity] + (peak_frac + where(dual & ~single, peak2_frac, 0.0))
    new[r.run] = active
    new[r.run_start] = where(extend | keep, s[r.run_start], where(begin, t_ms - FRAME_MS, 0.0))
    new[r.run_end] = where(extend, t_ms, where(keep, s[r.run_end], where(begin, t_ms, 0.0)))
    new[r.run_hz] = where(extend | begin, peak_hz, where(keep, s[r.run_hz], 0.0))
    run_purity = where(extend, purity, where(begin, peak_frac, where(keep, s[r.run_purity], 0.0)))
    new[r.run_purity] = run_purity
    new[r.run_frames] = run_frames
    lo_hz, hi_hz = s[r.run_lo_hz], s[r.run_hi_hz]
    new[r.run_lo_hz] = where(extend, minimum(lo_hz, peak_hz), where(begin, peak_hz, where(keep, lo_hz, 0.0)))
    new[r.run_hi_hz] = where(extend, maximum(hi_hz, peak_hz), where(begin, peak_hz, where(keep, hi_hz, 0.0)))
    new[r.run_lo_db] = where(extend, lo_db, where(begin, 200.0, where(keep, s[r.run_lo_db], 0.0)))
    new[r.run_hi_db] = where(extend, hi_db, where(begin, -200.0, where(keep, s[r.run_hi_db], 0.0)))
    new[r.run_level] = where(straddle, hi_db, where(begin, -100.0, where(extend | keep, s[r.run_level], 0.0)))
    new[r.prev_level] = where(live, level_db, prev_level)
    new[r.prev2_level] = where(live, prev_level, s[r.prev2_level])
    new[r.dead_frames] = where(dead, s[r.dead_frames] + 1, 0.0)
    is_tone = active & (run_frames >= MIN_TONE_FRAMES)
    candidate = live & active & (run_frames >= 2) & (run_purity >= CANDIDATE_PURITY * run_frames)
    scalar = (
        (live & run & ~extend & ~bridge & (s[r.run_frames] >= MIN_TONE_FRAMES))  # a tone ended: beep? SIT?
        | (dead & run & (s[r.dead_frames] >= DEAD_BRIDGE_FRAMES))  # ...into digital silence
        | (s[r.pending] > 0) | (s[r.loud_frames] > 0) | (s[r.tail_frames] > 0)  # a beep waits for quiet
        | fax_found
    )
    return ToneArrays(is_tone, candidate, cpt_ms, scalar)

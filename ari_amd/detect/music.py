"""Hold music: notes that hold their pitch, one after another, for seconds.

Three cues, any is enough:

- **Steady peaks.** The strongest peak stays put frame after frame for most of a second.
  Speech glides from pitch to pitch and babble is many such glides; line noise has no
  steady peaks at all: an instrument's note is a fixed frequency for its length, a voice's
  pitch moves every syllable, and noise has no peak that outlasts a frame.
- **Held notes.** Quiet or noisy music (music on hold a few dB over the line, chords)
  rarely keeps one peak on top, but each note still holds one of the two strongest peaks
  for 120 ms and more; a chord's notes take turns there. A vowel seldom holds a pitch
  200 ms and babble glides. A beep is one held note (or two, for a two-tone beep, or with
  its harmonic, begun together), so music needs three distinct notes begun within 2.5 s,
  not all at once, and a fifth of a second's frames in held notes. The VAD takes such
  music for a voice (it is voiced): the detector tells it otherwise.
- **Drone.** Chords whose notes lie closer than one 31 Hz bin beat into a single peak that
  wanders to and fro in a narrow band for seconds. A beep holds its pitch or glides
  smoothly; a voice (which the VAD hears) breaks it up.

Loudness is judged against the quietest the line has been (the VAD's floor learns music
that goes on, and mains hum holds steady peaks but is the floor).

`MusicTracker.update` is the rule for one call; `update_arrays` its common frame over many calls'
columns at once (ari_amd.detect.vector), on the state declared in `MusicTracker.STATE`. Music
heard, and a note that may be a new one, are the scalar step's frames (the spans and onsets
are the object's).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ari_amd.detect.columns import BOOL, FLOAT, INT, OPT_FLOAT, Declaration, Field, Record, rows
from ari_amd.detect.features import FRAME_MS

STEADY_HZ = 8.0  # a peak within this of one 20-40 ms earlier is the same note
STEADY_FRAC = 0.25  # and must hold this share of the band
WINDOW = 50  # frames (1 s)
WINDOW_MASK = (1 << WINDOW) - 1  # windows are bitmasks, the newest frame in bit 0
OLDEST = WINDOW - 1
MUSIC_SHARE = 0.6
MUSIC_COUNT = MUSIC_SHARE * WINDOW  # steady frames in a full window
ABOVE_FLOOR_DB = 3.0
MUSIC_SPANS = 8  # recent stretches of music remembered, for vetoing beeps

ABOVE_QUIET_DB = 3.0  # held notes and drones: this far over the quietest floor so far
NOTE_HZ = 12.0  # a held note stays this close to the pitch it started at
NOTE_FRAC = 0.15  # a peak weaker than this share of the band is not followed
NOTE_LO_HZ = 280.0  # below this, the band's edge and mains hum harmonics
NOTE_SLOTS = 3  # notes followed at once
NOTE_MISS_FRAMES = 1  # a chord has more notes than two peaks show: one may drop out for a frame
NOTE_MIN_FRAMES = 6  # 120 ms at one pitch is a held note...
NOTE_ONSET_FRAMES = 10  # ...and it counts as begun once held 200 ms: few vowels hold a pitch that long
NEW_NOTE_HZ = 36.0  # a note this far from every other in the window is a new one
NOTE_SHARE = 0.2  # share of a 1 s window in held notes
NOTE_COUNT = NOTE_SHARE * WINDOW
NOTE_ONSETS = 3  # distinct notes begun within NOTE_ONSETS_MS...
NOTE_ONSETS_MS = 2_500
NOTE_ONSET_GAP_MS = 100  # ...not all within this of each other

DRONE_FRAC = 0.3  # the peak holds this share of the band...
DRONE_HZ = 80.0  # ...stays this close to the band's (slowly moving) centre...
DRONE_CENTRE_RATE = 0.1
DRONE_MISS_FRAMES = 3  # ...with at most this many frames away in a row...
DRONE_FRAMES = 50  # ...for a second...
DRONE_RANGE_HZ = 25.0  # ...wandering at least this far...
DRONE_JITTER_HZ = 6.0  # ...and this much per frame on average (a beep moves 0-3 Hz)


class MusicTracker:
    # The attributes the array step reads or writes, as the vector step's columns hold them.
    STATE: tuple[Declaration, ...] = (
        Record("prev", "_prev", tuple, tuple(Field(f"prev{k}", FLOAT, str(k)) for k in range(4))),
        Field("steady", INT, "_steady"),  # a bitmask of WINDOW bits: exact in a float64
        Field("steady_n", INT, "_steady_n"),
        Field("count", INT, "_count"),
        # The note slots, pitch, frames held and missed, each a block of NOTE_SLOTS rows.
        *(Field(f"note_hz{k}", FLOAT, f"_notes[{k}][0]") for k in range(NOTE_SLOTS)),
        *(Field(f"note_frames{k}", INT, f"_notes[{k}][1]") for k in range(NOTE_SLOTS)),
        *(Field(f"note_miss{k}", INT, f"_notes[{k}][2]") for k in range(NOTE_SLOTS)),
        Field("any_note", BOOL, "_any_note"),
        Field("held", INT, "_held"),
        Field("held_n", INT, "_held_n"),
        Field("held_count", INT, "_held_count"),
        Field("onsets", INT, "len({}._onsets)", read_only=True),  # counted, never pruned, by the array step
        Field("quiet_db", OPT_FLOAT, "_quiet_db"),
        Field("drone_centre", FLOAT, "_drone[0]"),
        Field("drone_frames", INT, "_drone[1]"),
        Field("drone_misses", INT, "_drone[2]"),
        Field("drone_lo", FLOAT, "_drone[3]"),
        Field("drone_hi", FLOAT, "_drone[4]"),
        Field("drone_steps", FLOAT, "_drone[5]"),
        Field("drone_prev_hz", FLOAT, "_drone_prev_hz"),
        Field("notes", BOOL),
    )
    # Changed only by the scalar step, in the frames the array step hands it (music, a new note).
    OBJECT_ONLY: frozenset[str] = frozenset({"_onsets", "music_at", "_spans"})

    def __init__(self) -> None:
        self._prev: tuple[float, float, float, float] | None = None  # the peaks of the two frames before
        self._steady = 0  # the last WINDOW frames' steady flags
        self._steady_n = 0  # how many of them there are so far
        self._count = 0
        self._notes = [[0.0, 0, 0] for _ in range(NOTE_SLOTS)]  # [pitch, frames held, frames missed]
        self._any_note = False  # some slot may be holding a note
        self._held = 0  # the last WINDOW frames' held-note flags
        self._held_n = 0
        self._held_count = 0
        self._onsets: deque[tuple[int, float]] = deque()  # when held notes began (audio ms), at what pitch
        self._quiet_db: float | None = None  # the quietest floor so far
        # centre, frames, misses in a row, lowest, highest, sum of |frame-to-frame steps|
        self._drone: list[float] = [0.0, 0, 0, 0.0, 0.0, 0.0]
        self._drone_prev_hz = 0.0
        self.notes = False  # the held-note cue alone: music now, even where the VAD hears a voice
        self.music_at: int | None = None  # when music was last heard (audio ms)
        self._spans: deque[list[int]] = deque(maxlen=MUSIC_SPANS)  # [first, last] frame of recent music

    def update(
        self,
        t_ms: int,
        peak_hz: float,
        peak2_hz: float,
        peak_frac: float,
        tone: bool,
        above_floor_db: float,
        peak2_frac: float = 0.0,
        level_db: float | None = None,
        floor_db: float | None = None,
        speech: bool = False,
    ) -> bool:
        """tone: the frame belongs to a single tone (beep, fax): that is not a steady peak of music.
        above_floor_db: mains hum holds steady peaks too, but it *is* the floor.
        level_db, floor_db: this frame's level and the VAD's floor (held notes, drone).
        speech: the VAD hears a voice in this frame (a monotone voice can pass for a drone)."""
        p = self._prev
        steady = (
            not tone
            and above_floor_db >= ABOVE_FLOOR_DB
            and peak_frac >= STEADY_FRAC
            and p is not None
            and (
                abs(peak_hz - p[0]) <= STEADY_HZ
                or abs(peak_hz - p[1]) <= STEADY_HZ
                or abs(peak_hz - p[2]) <= STEADY_HZ
                or abs(peak_hz - p[3]) <= STEADY_HZ
            )
        )
        self._prev = (peak_hz, peak2_hz, p[0], p[1]) if p is not None else (peak_hz, peak2_hz, -1e9, -1e9)
        if self._steady_n == WINDOW:
            self._count -= (self._steady >> OLDEST) & 1
        else:
            self._steady_n += 1
        self._steady = ((self._steady << 1) | steady) & WINDOW_MASK
        self._count += steady
        music = self._steady_n == WINDOW and self._count >= MUSIC_COUNT
        if level_db is not None and floor_db is not None:
            quiet = self._quiet_db = floor_db if self._quiet_db is None else min(self._quiet_db, floor_db)
            loud = level_db - quiet >= ABOVE_QUIET_DB
            self.notes = self._held_notes(t_ms, peak_hz, peak_frac, peak2_hz, peak2_frac, loud)
            music = self._drone_step(peak_hz, loud and peak_frac >= DRONE_FRAC, speech) or self.notes or music
        if music:
            spans = self._spans
            if spans and spans[-1][1] == self.music_at:
                spans[-1][1] = t_ms
            else:
                spans.append([t_ms, t_ms])
            self.music_at = t_ms
        return music

    def heard_within(self, t_ms: int, span_ms: int) -> bool:
        """Was music heard in the span_ms before t_ms? (Not after: a beep's own tones, three
        in a row, can pass for music while they sound; they must not veto that beep.)"""
        return any(start < t_ms and end >= t_ms - span_ms for start, end in self._spans)

    def _held_notes(self, t_ms: int, hz1: float, frac1: float, hz2: float, frac2: float, loud: bool) -> bool:
        held = False
        onsets = self._onsets
        # Kept as of the frame before: after frames of the array step, which counts onsets but
        # never prunes them (a no-op after a frame of this step, which pruned them below).
        while onsets and t_ms - FRAME_MS - onsets[0][0] > NOTE_ONSETS_MS:
            onsets.popleft()
        free1 = loud and frac1 >= NOTE_FRAC and hz1 >= NOTE_LO_HZ
        free2 = loud and frac2 >= NOTE_FRAC and hz2 >= NOTE_LO_HZ
        if not (free1 or free2):
            if self._any_note:
                for slot in self._notes:
                    slot[1] = 0
                self._any_note = False
        else:
            self._any_note = True
            for slot in self._notes:
                if not slot[1]:
                    continue
                if free1 and abs(hz1 - slot[0]) <= NOTE_HZ:
                    free1 = False
                elif free2 and abs(hz2 - slot[0]) <= NOTE_HZ:
                    free2 = False
                elif slot[2] < NOTE_MISS_FRAMES:
                    slot[2] += 1
                    held = held or slot[1] >= NOTE_MIN_FRAMES
                    continue
                else:
                    slot[1] = 0
                    continue
                slot[1] += 1
                slot[2] = 0
                held = held or slot[1] >= NOTE_MIN_FRAMES
                if slot[1] == NOTE_ONSET_FRAMES and all(abs(slot[0] - hz) > NEW_NOTE_HZ for _, hz in self._onsets):
                    # A new note, at a pitch not heard in the window (a beep that dips and
                    # comes back is not a new note).
                    self._onsets.append((t_ms, slot[0]))
            if free1:
                self._start_note(hz1)
            if free2:
                self._start_note(hz2)
        if self._held_n == WINDOW:
            self._held_count -= (self._held >> OLDEST) & 1
        else:
            self._held_n += 1
        self._held = ((self._held << 1) | held) & WINDOW_MASK
        self._held_count += held
        while onsets and t_ms - onsets[0][0] > NOTE_ONSETS_MS:
            onsets.popleft()
        if self._held_count < NOTE_COUNT or len(onsets) < NOTE_ONSETS:
            return False
        # Notes that all began together are one sound (a beep and its harmonic, a dual tone).
        return onsets[-1][0] - onsets[0][0] >= NOTE_ONSET_GAP_MS

    def _start_note(self, hz: float) -> None:
        # Into an empty slot, or else the one holding the shortest note.
        a, b, c = self._notes
        slot = a if a[1] <= b[1] else b
        if c[1] < slot[1]:
            slot = c
        slot[0], slot[1], slot[2] = hz, 1, 0

    def _drone_step(self, hz: float, ok: bool, speech: bool) -> bool:
        d = self._drone
        if ok and not speech and d[1] and abs(hz - d[0]) <= DRONE_HZ:
            d[0] += DRONE_CENTRE_RATE * (hz - d[0])
            d[1] += 1
            d[2] = 0
            if hz < d[3]:
                d[3] = hz
            elif hz > d[4]:
                d[4] = hz
            d[5] += abs(hz - self._drone_prev_hz)
        elif d[1] and d[2] < DRONE_MISS_FRAMES:
            d[2] += 1
        elif ok and not speech:
            d[0], d[1], d[2], d[3], d[4], d[5] = hz, 1, 0, hz, hz, 0.0
        else:
            d[1] = 0
        self._drone_prev_hz = hz
        return d[1] >= DRONE_FRAMES and d[4] - d[3] >= DRONE_RANGE_HZ and d[5] >= DRONE_JITTER_HZ * d[1]


_ROWS = rows(MusicTracker.STATE, "MusicRows")
_NOTE_HZ = slice(_ROWS.note_hz0, _ROWS.note_hz0 + NOTE_SLOTS)  # [slot, call] blocks
_NOTE_FRAMES = slice(_ROWS.note_frames0, _ROWS.note_frames0 + NOTE_SLOTS)
_NOTE_MISS = slice(_ROWS.note_miss0, _ROWS.note_miss0 + NOTE_SLOTS)
_SLOT_INDEX = np.arange(NOTE_SLOTS)[:, None]


def update_arrays(
    s: np.ndarray, new: np.ndarray, peak_hz: np.ndarray, peak2_hz: np.ndarray, peak_frac: np.ndarray, tone: np.ndarray,
    above_floor_db: np.ndarray, peak2_frac: np.ndarray, level_db: np.ndarray, floor_db: np.ndarray, speech: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`MusicTracker.update` for many calls, up to what only the scalar step does: s, new: their
    STATE rows before and after (new is written). Returns (music, scalar): music heard (the
    steady-peak window or the drone), and the frames the scalar step must take (music heard,
    whose spans are the object's; a note that may be new, or held notes that may be music: the
    onsets are the object's). Each array follows the scalar code's order of operations in
    float64, so the two agree to the bit."""
    where, minimum, absolute = np.where, np.minimum, np.abs
    r = _ROWS
    p1, p2, f1, f2 = peak_hz, peak2_hz, peak_frac, peak2_frac
    prev_ok = s[r.prev] > 0
    P0, P1 = s[r.prev0], s[r.prev1]
    steady = (
        ~tone & (above_floor_db >= ABOVE_FLOOR_DB) & (f1 >= STEADY_FRAC) & prev_ok
        & ((absolute(p1 - P0) <= STEADY_HZ) | (absolute(p1 - P1) <= STEADY_HZ)
           | (absolute(p1 - s[r.prev2]) <= STEADY_HZ) | (absolute(p1 - s[r.prev3]) <= STEADY_HZ))
    )
    new[r.prev] = 1.0
    new[r.prev0], new[r.prev1] = p1, p2
    new[r.prev2], new[r.prev3] = where(prev_ok, P0, -1e9), where(prev_ok, P1, -1e9)
    count, steady_n, bits = _slide(s[r.steady], s[r.steady_n], s[r.count], steady)
    new[r.steady], new[r.steady_n], new[r.count] = bits, steady_n, count
    music = (steady_n == WINDOW) & (count >= MUSIC_COUNT)
    q0 = s[r.quiet_db]
    quiet = where(np.isnan(q0), floor_db, minimum(q0, floor_db))
    new[r.quiet_db] = quiet
    loud = level_db - quiet >= ABOVE_QUIET_DB
    # _held_notes: the three slots in order, each taking the first free peak at its pitch.
    free1 = loud & (f1 >= NOTE_FRAC) & (p1 >= NOTE_LO_HZ)
    free2 = loud & (f2 >= NOTE_FRAC) & (p2 >= NOTE_LO_HZ)
    sounding = free1 | free2
    # As [slot, row] arrays: a slot takes a peak only if no earlier slot took it.
    hz = s[_NOTE_HZ]
    fr = where(sounding, s[_NOTE_FRAMES], 0.0)  # no free peak: every slot let go
    miss = s[_NOTE_MISS]
    on = fr != 0
    m1 = _first(on & free1 & (absolute(p1 - hz) <= NOTE_HZ))
    m2 = _first(on & ~m1 & free2 & (absolute(p2 - hz) <= NOTE_HZ))
    matched = m1 | m2
    missed = on & ~matched & (miss < NOTE_MISS_FRAMES)
    fr1 = where(matched, fr + 1, where(on & ~missed, 0.0, fr))
    held = ((missed & (fr >= NOTE_MIN_FRAMES)) | (matched & (fr1 >= NOTE_MIN_FRAMES))).any(axis=0)
    onset = (matched & (fr1 == NOTE_ONSET_FRAMES)).any(axis=0)  # a new note, perhaps: the onsets are the object's
    miss = where(missed, miss + 1, where(matched, 0.0, miss))
    fr = fr1
    free1 &= ~m1.any(axis=0)
    free2 &= ~m2.any(axis=0)
    for free, peak in ((free1, p1), (free2, p2)):  # _start_note: an empty slot, or the shortest note
        sel = free & (fr.argmin(axis=0) == _SLOT_INDEX)  # the first of the shortest, as the scalar picks
        hz = where(sel, peak, hz)
        fr = where(sel, 1.0, fr)
        miss = where(sel, 0.0, miss)
    new[_NOTE_HZ] = hz
    new[_NOTE_FRAMES] = fr
    new[_NOTE_MISS] = miss
    new[r.any_note] = sounding
    held_count, held_n, held_bits = _slide(s[r.held], s[r.held_n], s[r.held_count], held)
    new[r.held], new[r.held_n], new[r.held_count] = held_bits, held_n, held_count
    # Held notes are music only with three onsets kept: the scalar step judges those frames.
    notes_maybe = (held_count >= NOTE_COUNT) & (s[r.onsets] >= NOTE_ONSETS)
    new[r.notes] = 0.0
    # _drone_step
    d0, d1, d2, d3, d4, d5 = (s[r.drone_centre], s[r.drone_frames], s[r.drone_misses], s[r.drone_lo], s[r.drone_hi],
                              s[r.drone_steps])
    ok = loud & (f1 >= DRONE_FRAC) & ~speech
    follow = ok & (d1 != 0) & (absolute(p1 - d0) <= DRONE_HZ)
    lapse = ~follow & (d1 != 0) & (d2 < DRONE_MISS_FRAMES)
    restart = ~follow & ~lapse & ok
    d1n = where(follow, d1 + 1, where(restart, 1.0, where(lapse, d1, 0.0)))
    d3n = where(restart | (follow & (p1 < d3)), p1, d3)
    d4n = where(restart | (follow & ~(p1 < d3) & (p1 > d4)), p1, d4)
    new[r.drone_centre] = where(follow, d0 + DRONE_CENTRE_RATE * (p1 - d0), where(restart, p1, d0))
    new[r.drone_frames] = d1n
    new[r.drone_misses] = where(follow | restart, 0.0, where(lapse, d2 + 1, d2))
    new[r.drone_lo], new[r.drone_hi] = d3n, d4n
    d5n = where(follow, d5 + absolute(p1 - s[r.drone_prev_hz]), where(restart, 0.0, d5))
    new[r.drone_steps] = d5n
    new[r.drone_prev_hz] = p1
    music |= (d1n >= DRONE_FRAMES) & (d4n - d3n >= DRONE_RANGE_HZ) & (d5n >= DRONE_JITTER_HZ * d1n)
    return music, onset | notes_maybe | music


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
    full = n0 == WINDOW
    count = count0 - np.where(full, (bits >> OLDEST) & 1, 0) + flag
    return count, np.where(full, n0, n0 + 1), ((bits << 1) | flag) & WINDOW_MASK

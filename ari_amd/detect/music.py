"""Hold music: notes that hold their pitch, one after another, for seconds.

Two cues, either is enough:

- **Steady peaks.** The strongest peak stays put frame after frame for most of a second.
  Speech glides from pitch to pitch and babble is many such glides; line noise has no
  steady peaks at all. Measured on the dev corpus over 1 s windows: a steady-peak share
  above 0.6 in 31% of music windows, 1% of speech windows, none of babble or line noise.
- **Held notes.** Quiet or noisy music (synth chords under brown noise, music on hold at
  a few dB over the line) rarely keeps one peak on top, but each note still holds one of
  the two strongest peaks for 120 ms and more. A vowel holds its pitch for less and babble
  glides, so on the dev corpus held-note frames were at most 18% of any 1 s window of
  babble, line noise or the recording after a beep, and 40-100% of most music windows. A
  beep is one held note (or two, for a two-tone beep), so new notes must keep starting.

Loudness is judged against the quietest the line has been (the VAD's floor learns music
that goes on, and mains hum holds steady peaks but is the floor).
"""

from __future__ import annotations

from collections import deque

STEADY_HZ = 8.0  # a peak within this of one 20-40 ms earlier is the same note
STEADY_FRAC = 0.25  # and must hold this share of the band
WINDOW = 50  # frames (1 s)
MUSIC_SHARE = 0.6
ABOVE_FLOOR_DB = 3.0

NOTE_HZ = 12.0  # a held note stays this close to the pitch it started at
NOTE_FRAC = 0.15  # a peak weaker than this share of the band is not followed
NOTE_MIN_FRAMES = 6  # 120 ms at one pitch is a note, not a vowel
NOTE_ONSET_FRAMES = 10  # a note counts as begun once held 200 ms: few vowels hold a pitch that long
NOTE_SHARE = 0.2  # share of a 1 s window in held notes
NOTE_ONSETS = 3  # distinct notes that began, at least 100 ms apart, within NOTE_ONSETS_MS
NOTE_ONSET_GAP_MS = 100
NOTE_SLOTS = 3
NOTE_MISS_FRAMES = 1
NEW_NOTE_HZ = 36.0  # a note this far from every other in the window is a new one
NOTE_ONSETS_MS = 2_500
NOTE_ABOVE_QUIET_DB = 3.0
DRONE_FRAC = 0.3
DRONE_HZ = 80.0  # the peak stays this close to the band's centre...
DRONE_CENTRE_RATE = 0.1
DRONE_MISS_FRAMES = 3  # ...with at most this many frames away in a row...
DRONE_FRAMES = 50  # ...for a second...
DRONE_RANGE_HZ = 25.0  # ...wandering at least this far...
DRONE_JITTER_HZ = 6.0  # ...and this much per frame on average (a beep moves 0-3 Hz)
NOTE_LO_HZ = 280.0  # below this, the band's edge and mains hum harmonics


class MusicTracker:
    def __init__(self) -> None:
        self._peaks: deque[tuple[float, float]] = deque(maxlen=2)
        self._steady: deque[bool] = deque(maxlen=WINDOW)
        self._count = 0
        # Note slots: a chord's notes take turns among the two strongest peaks.
        self._notes = [[0.0, 0, 0] for _ in range(NOTE_SLOTS)]  # [pitch, frames held, frames missed]
        self._held: deque[bool] = deque(maxlen=WINDOW)
        self._held_count = 0
        self._onsets: deque[tuple[int, float]] = deque()  # when held notes began (audio ms), at what pitch
        self._quiet_db: float | None = None  # the quietest floor so far
        self._drone_state: list = [0.0, 0, 0, 0.0, 0.0, 0.0]  # centre, frames, misses, lowest, highest, |steps|
        self._drone_prev_hz = 0.0
        self.notes = False  # the held-note cue alone: music playing now, even where the VAD hears a voice
        self.music_at: int | None = None  # when music was last heard (audio ms)

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
        level_db, floor_db: this frame's level and the VAD's floor, for the held-note cue.
        speech: the VAD hears a voice in this frame (a monotone voice can pass for a drone)."""
        steady = not tone and above_floor_db >= ABOVE_FLOOR_DB and peak_frac >= STEADY_FRAC and any(
            abs(peak_hz - a) <= STEADY_HZ or abs(peak_hz - b) <= STEADY_HZ for a, b in self._peaks
        )
        self._peaks.append((peak_hz, peak2_hz))
        if len(self._steady) == WINDOW:
            self._count -= self._steady[0]
        self._steady.append(steady)
        self._count += steady
        music = len(self._steady) == WINDOW and self._count >= MUSIC_SHARE * WINDOW
        if level_db is not None and floor_db is not None:
            self.notes = self._held_notes(t_ms, peak_hz, peak_frac, peak2_hz, peak2_frac, level_db, floor_db)
            music = music or self.notes or self._drone(peak_hz, peak_frac, level_db, speech)
        if music:
            self.music_at = t_ms
        return music

    def _held_notes(
        self, t_ms: int, hz1: float, frac1: float, hz2: float, frac2: float, level_db: float, floor_db: float
    ) -> bool:
        quiet = self._quiet_db = floor_db if self._quiet_db is None else min(self._quiet_db, floor_db)
        slots = self._notes
        held = False
        if level_db - quiet < NOTE_ABOVE_QUIET_DB or (frac1 < NOTE_FRAC and frac2 < NOTE_FRAC):
            for slot in slots:
                slot[1] = 0
        else:
            free1 = frac1 >= NOTE_FRAC and hz1 >= NOTE_LO_HZ
            free2 = frac2 >= NOTE_FRAC and hz2 >= NOTE_LO_HZ
            for slot in slots:
                if not slot[1]:
                    continue
                if free1 and abs(hz1 - slot[0]) <= NOTE_HZ:
                    free1 = False
                elif free2 and abs(hz2 - slot[0]) <= NOTE_HZ:
                    free2 = False
                elif slot[2] < NOTE_MISS_FRAMES:
                    # A chord has more notes than two peaks show: one may drop out for a frame.
                    slot[2] += 1
                    held = held or slot[1] >= NOTE_MIN_FRAMES
                    continue
                else:
                    slot[1] = 0
                    continue
                slot[1] += 1
                slot[2] = 0
                held = held or slot[1] >= NOTE_MIN_FRAMES
                if slot[1] == NOTE_ONSET_FRAMES:
                    # A new note, at a pitch not heard in the window. A beep that dips and
                    # comes back is not a new note.
                    onsets = self._onsets
                    if all(abs(slot[0] - hz) > NEW_NOTE_HZ for _, hz in onsets):
                        onsets.append((t_ms, slot[0]))
            for hz, free in ((hz1, free1), (hz2, free2)):
                if free:
                    # Into an empty slot, or else the one holding the shortest note.
                    slot = min(slots, key=_slot_age)
                    slot[0], slot[1], slot[2] = hz, 1, 0
        window = self._held
        if len(window) == WINDOW:
            self._held_count -= window[0]
        window.append(held)
        self._held_count += held
        onsets = self._onsets
        while onsets and t_ms - onsets[0][0] > NOTE_ONSETS_MS:
            onsets.popleft()
        if self._held_count < NOTE_SHARE * WINDOW or len(onsets) < NOTE_ONSETS:
            return False
        # Notes that all began together are one sound (a beep and its harmonic, a dual tone).
        return onsets[-1][0] - onsets[0][0] >= NOTE_ONSET_GAP_MS

    def _drone(self, hz: float, frac: float, level_db: float, speech: bool) -> bool:
        """Chords whose notes lie closer than the 20 ms frames resolve: one peak that wanders
        to and fro within a narrow band, second after second. A beep holds its pitch (or
        glides smoothly); a voice has gaps between its syllables."""
        assert self._quiet_db is not None
        ok = frac >= DRONE_FRAC and level_db - self._quiet_db >= NOTE_ABOVE_QUIET_DB
        d = self._drone_state
        if speech:
            d[1] = 0
        elif ok and d[1] and abs(hz - d[0]) <= DRONE_HZ:
            d[0] += DRONE_CENTRE_RATE * (hz - d[0])
            d[1] += 1
            d[2] = 0
            d[3], d[4] = min(d[3], hz), max(d[4], hz)
            d[5] += abs(hz - self._drone_prev_hz)
        elif d[1] and d[2] < DRONE_MISS_FRAMES:
            d[2] += 1
        elif ok:
            d[:] = [hz, 1, 0, hz, hz, 0.0]
        else:
            d[1] = 0
        self._drone_prev_hz = hz
        return d[1] >= DRONE_FRAMES and d[4] - d[3] >= DRONE_RANGE_HZ and d[5] >= DRONE_JITTER_HZ * d[1]

    def heard_within(self, t_ms: int, span_ms: int) -> bool:
        return self.music_at is not None and t_ms - self.music_at <= span_ms


def _slot_age(slot: list) -> int:
    return slot[1]

"""Voice activity over 20 ms frames: voiced, louder than the line's background, not a tone.

Two facts carry it. Line noise (white, pink, brown, hum, street) is almost never periodic
at a voice pitch, and speech's vowels are; so strong periodicity opens speech. Babble *is*
speech, so against it only loudness helps: the floor is a running median of the
background, learnt quickly from unvoiced frames and barely at all from voiced ones, so a
greeting does not raise its own floor while a street noise that steps up is absorbed
within half a second. Digital-zero frames (packet loss, dropouts) teach it nothing.
"""

from __future__ import annotations

START_DB = 8.0  # above the floor to open speech
START_STRONG_DB = 5.0  # ... or this, if strongly voiced (low-SNR lines)
VOICED_STRONG = 0.8
CONTINUE_DB = 5.0  # above the floor to stay in speech
VOICED_START = 0.7  # periodicity that can open speech
VOICED_CONTINUE = 0.55  # periodicity that keeps it going
VOICED_HOLD = 8  # frames (160 ms) an unvoiced active frame may follow a voiced one
STEP_UNVOICED_DB = 1.0  # median-tracker step for frames that cannot be a voice
STEP_VOICED_DB = 0.05  # and for frames that could (babble, or our talker)
DEAD_DB = -90.0  # digital silence: G.711 zeros, lost packets filled in
MIN_FLOOR_DB = -70.0  # a floor below this is dead air; speech must still be audible


class VoiceActivity:
    """Stateful per-call VAD. `update` returns True for a speech frame."""

    def __init__(self) -> None:
        self.floor_db: float | None = None
        self.in_speech = False
        self._since_voiced = VOICED_HOLD + 1

    def update(self, level_db: float, periodicity: float, tone: bool) -> bool:
        if level_db <= DEAD_DB:
            self.in_speech = False
            self._since_voiced += 1
            return False
        floor = self._track_floor(level_db, periodicity, tone)
        if tone:
            self.in_speech = False
            self._since_voiced = VOICED_HOLD + 1
            return False
        above = level_db - max(floor, MIN_FLOOR_DB)
        if self.in_speech:
            if above > CONTINUE_DB and periodicity >= VOICED_CONTINUE:
                self._since_voiced = 0
            else:
                self._since_voiced += 1
            self.in_speech = above > CONTINUE_DB and self._since_voiced <= VOICED_HOLD
        else:
            self.in_speech = (above > START_DB and periodicity >= VOICED_START) or (
                above > START_STRONG_DB and periodicity >= VOICED_STRONG
            )
            self._since_voiced = 0 if self.in_speech else self._since_voiced + 1
        return self.in_speech

    def _track_floor(self, level_db: float, periodicity: float, tone: bool) -> float:
        floor = self.floor_db
        if floor is None:
            self.floor_db = level_db
            return level_db
        if tone:  # a beep or fax tone says nothing about the line's noise
            return floor
        step = STEP_VOICED_DB if periodicity >= VOICED_CONTINUE else STEP_UNVOICED_DB
        floor += step if level_db > floor else -step
        self.floor_db = floor
        return floor

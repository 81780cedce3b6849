"""Voice activity over 20 ms frames: voiced, louder than the line's background, not a tone.

Two facts carry it. Line noise (white, pink, brown, hum, street) is almost never periodic
at a voice pitch, and speech's vowels are; so strong periodicity opens speech. Babble *is*
speech, so against it only loudness helps: the floor is a running median of the
background, learnt quickly from unvoiced frames and barely at all from voiced ones, so a
greeting does not raise its own floor while a street noise that steps up is absorbed
within half a second. A "ceiling", the background's 85th percentile, learnt away from
speech, keeps babble's loud moments from opening speech. Digital-zero frames (packet loss,
dropouts) teach it nothing.

`VoiceActivity.update` is the rule for one call; `update_arrays` the same rule over many calls'
columns at once (ari_amd.detect.vector), on the state declared in `STATE`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ari_amd.detect.columns import BOOL, INT, OPT_FLOAT, Declaration, Field, rows
from ari_amd.detect.features import DEAD_DB

START_DB = 8.0  # above the floor to open speech
START_STRONG_DB = 5.0  # ... or this, if strongly voiced (low-SNR lines)
VOICED_STRONG = 0.8
CONTINUE_DB = 5.0  # above the floor to stay in speech
VOICED_START = 0.7  # periodicity that can open speech
VOICED_CONTINUE = 0.55  # periodicity that keeps it going
VOICED_HOLD = 8  # frames (160 ms) an unvoiced active frame may follow a voiced one
PEAKY = 0.35  # share of band power in the strongest peak: noise stays below, notes rise above
STEP_UNVOICED_DB = 1.0  # median-tracker step for frames that cannot be a voice
STEP_VOICED_DB = 0.05  # and for frames that could (babble, or our talker)
CEILING_Q = 0.85  # the background's loud end: babble's peaks, street noise's steps
CEILING_STEP_DB = 1.0
CEILING_UP_DB = CEILING_STEP_DB * CEILING_Q  # a median-style tracker of the 85th percentile
CEILING_DOWN_DB = -CEILING_STEP_DB * (1.0 - CEILING_Q)
CEILING_HOLD = 15  # frames (300 ms) after speech before it learns again
CEILING_START_DB = 5.0  # a voice must clear the background's loud end by this much
CEILING_CONTINUE_DB = 0.0
RISE_DB = 4.0  # an onset is back-dated over frames this far above the floor...
RISE_MAX_FRAMES = 15  # ...at most 300 ms
INITIAL_FLOOR_MAX_DB = -35.0  # the floor starts no higher: a call may open with a tone or a voice
MIN_FLOOR_DB = -70.0  # a floor below this is dead air; speech must still be audible


@dataclass(frozen=True)
class VoiceObservation:
    """What the VAD says about one frame."""

    speech: bool
    rise_frames: int = 0  # consecutive frames clear of the floor up to this one: where an onset began


_OBSERVATIONS = {
    flag: tuple(VoiceObservation(flag, rise) for rise in range(RISE_MAX_FRAMES + 1)) for flag in (False, True)
}


class VoiceActivity:
    """Stateful per-call VAD: one `update` per frame, in order."""

    # Every attribute below, as the vector step's columns hold it.
    STATE: tuple[Declaration, ...] = (
        Field("floor_db", OPT_FLOAT),
        Field("in_speech", BOOL),
        Field("rise", INT, "_rise"),
        Field("ceiling_db", OPT_FLOAT),
        Field("since_voiced", INT, "_since_voiced"),
    )
    OBJECT_ONLY: frozenset[str] = frozenset()  # attributes the columns do not hold

    def __init__(self) -> None:
        self.floor_db: float | None = None
        self.in_speech = False
        self._rise = 0
        self.ceiling_db: float | None = None
        self._since_voiced = VOICED_HOLD + 1

    def update(self, level_db: float, periodicity: float, tone: bool, peakiness: float = 0.0) -> VoiceObservation:
        speech = self._update(level_db, periodicity, tone, peakiness)
        return _OBSERVATIONS[speech][self._rise]  # shared, immutable: no allocation per frame

    def _update(self, level_db: float, periodicity: float, tone: bool, peakiness: float) -> bool:
        if level_db <= DEAD_DB:
            self.in_speech = False
            if self.floor_db is not None:
                # Before the line was first heard, digital silence is no time at all: a live
                # tap pads what it missed before the snoop attached with zeros, and the
                # verdict must not depend on how many.
                self._since_voiced += 1
            self._rise = 0
            return False
        floor = self._track_floor(level_db, periodicity, tone, peakiness)
        if tone:
            self.in_speech = False
            self._since_voiced = VOICED_HOLD + 1
            return False
        base = max(floor, MIN_FLOOR_DB)
        above = level_db - base
        self._rise = min(self._rise + 1, RISE_MAX_FRAMES) if above > RISE_DB else 0
        ceiling = self._track_ceiling(level_db, periodicity, above)
        gate = ceiling + CEILING_START_DB - base  # both start paths must clear the background's loud end
        if self.in_speech:
            cont = max(CONTINUE_DB, ceiling + CEILING_CONTINUE_DB - base)
            if above > cont and periodicity >= VOICED_CONTINUE:
                self._since_voiced = 0
            else:
                self._since_voiced += 1
            self.in_speech = above > cont and self._since_voiced <= VOICED_HOLD
        else:
            self.in_speech = above > gate and (
                (above > START_DB and periodicity >= VOICED_START)
                or (above > START_STRONG_DB and periodicity >= VOICED_STRONG)
            )
            self._since_voiced = 0 if self.in_speech else self._since_voiced + 1
        return self.in_speech

    def _track_ceiling(self, level_db: float, periodicity: float, above: float) -> float:
        ceiling = self.ceiling_db
        if ceiling is None:
            self.ceiling_db = level_db
            return level_db
        if self._since_voiced <= CEILING_HOLD:  # between a talker's words is not background
            return ceiling
        if periodicity >= VOICED_STRONG and above > START_STRONG_DB:
            return ceiling  # could be our talker held back by this very gate: don't learn it
        if periodicity >= VOICED_START and level_db > ceiling:
            # Voiced and louder than the background's loud end: our talker, likelier than not,
            # on a loud line where the gate holds it back. Learnt, it would lift the gate over it.
            return ceiling
        ceiling += CEILING_UP_DB if level_db > ceiling else CEILING_DOWN_DB
        self.ceiling_db = ceiling
        return ceiling

    def _track_floor(self, level_db: float, periodicity: float, tone: bool, peakiness: float) -> float:
        floor = self.floor_db
        if floor is None:
            # Start no higher than a quiet line: audio may open with a tone or a voice.
            self.floor_db = min(level_db, INITIAL_FLOOR_MAX_DB)
            return self.floor_db
        if tone:  # a beep or fax tone says nothing about the line's noise
            return floor
        if level_db < floor:
            floor -= STEP_UNVOICED_DB
        else:
            # Near speech, unvoiced frames are consonants, not the line: rise slowly there.
            # Music is peaky where line noise is flat: don't learn it as the floor either.
            near_speech = (
                periodicity >= VOICED_CONTINUE or self._since_voiced <= CEILING_HOLD or peakiness >= PEAKY
            )
            floor += STEP_VOICED_DB if near_speech else STEP_UNVOICED_DB
        self.floor_db = floor
        return floor


_ROWS = rows(VoiceActivity.STATE, "VoiceRows")


def update_arrays(
    s: np.ndarray, new: np.ndarray, live: np.ndarray, level_db: np.ndarray, periodicity: np.ndarray, tone: np.ndarray,
    peakiness: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`VoiceActivity.update` for many calls: s, new: their STATE rows before and after (new is
    written); live: level_db > DEAD_DB. Returns (speech, rise_frames) per call. Each array
    follows the scalar code's order of operations in float64, so the two agree to the bit."""
    where, minimum, maximum = np.where, np.minimum, np.maximum
    floor0 = s[_ROWS.floor_db]
    floor_known = ~np.isnan(floor0)
    since0 = s[_ROWS.since_voiced]
    # _track_floor
    near_speech = (periodicity >= VOICED_CONTINUE) | (since0 <= CEILING_HOLD) | (peakiness >= PEAKY)
    floor1 = where(
        ~floor_known,
        minimum(level_db, INITIAL_FLOOR_MAX_DB),
        where(tone, floor0, where(level_db < floor0, floor0 - STEP_UNVOICED_DB,
                                  floor0 + where(near_speech, STEP_VOICED_DB, STEP_UNVOICED_DB))),
    )
    base = maximum(floor1, MIN_FLOOR_DB)
    above = level_db - base
    rise = where(above > RISE_DB, minimum(s[_ROWS.rise] + 1, RISE_MAX_FRAMES), 0.0)
    # _track_ceiling
    ceil0 = s[_ROWS.ceiling_db]
    ceil_known = ~np.isnan(ceil0)
    learn = (
        ceil_known & (since0 > CEILING_HOLD) & ~((periodicity >= VOICED_STRONG) & (above > START_STRONG_DB))
        & ~((periodicity >= VOICED_START) & (level_db > ceil0))  # our talker, likelier than not
    )
    step = where(level_db > ceil0, CEILING_UP_DB, CEILING_DOWN_DB)
    ceiling = where(~ceil_known, level_db, where(learn, ceil0 + step, ceil0))
    gate = ceiling + CEILING_START_DB - base
    cont = maximum(CONTINUE_DB, ceiling + CEILING_CONTINUE_DB - base)
    since_in = where((above > cont) & (periodicity >= VOICED_CONTINUE), 0.0, since0 + 1)
    stay = (above > cont) & (since_in <= VOICED_HOLD)
    start = (above > gate) & (((above > START_DB) & (periodicity >= VOICED_START))
                              | ((above > START_STRONG_DB) & (periodicity >= VOICED_STRONG)))
    was = s[_ROWS.in_speech] > 0
    # Neither dead (only the hold count moves) nor a tone (speech ends, only a first floor is learnt).
    heard = live & ~tone
    speech = heard & where(was, stay, start)
    new[_ROWS.in_speech] = speech
    new[_ROWS.floor_db] = where(live, floor1, floor0)
    new[_ROWS.ceiling_db] = where(heard, ceiling, ceil0)
    rise_out = new[_ROWS.rise] = where(heard, rise, where(live, s[_ROWS.rise], 0.0))
    new[_ROWS.since_voiced] = where(
        heard,
        where(was, since_in, where(start, 0.0, since0 + 1)),
        # a tone resets it; digital silence before the line was first heard is no time at all
        where(live, VOICED_HOLD + 1, where(floor_known, since0 + 1, since0)),
    )
    return speech, rise_out

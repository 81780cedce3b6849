"""The AMD state machine: Twilio's timing rules over speech/tone observations.

Enable:           silence >= SilenceTimeout          -> unknown
                  speech run >= SpeechThreshold      -> machine_start
                  run ends (silence >= SpeechEnd)    -> human
                  V.25 / V.21 before any verdict     -> fax
                  MachineDetectionTimeout            -> unknown
DetectMessageEnd: as Enable, but machine_start is only an interim verdict; then
                  a beep that ends into quiet        -> machine_end_beep
                  BeepTimeout after the greeting's last word, no beep:
                    quiet all along                  -> machine_end_silence
                    music heard                      -> machine_end_other
                  timeout, or the audio ends         -> machine_end_other (silence if quiet)
Beyond Twilio's rules:
                  a tone sounding is not silence: it holds the human decision
                  a beep before the human decision   -> machine (a short greeting, then the beep)
                  music after speech                 -> machine (not while a tone may be a beep)
                  after a run of >= 1.5 s, the human decision waits 400 ms more for a beep
                  (within the p90 budget of people's dead air); a hangup then is human
                  SIT tones                          -> unknown, cause sit_tone
                  ringback before anyone speaks      -> ignored; SilenceTimeout restarts after it

`AmdStateMachine.step` is the machine for one call; `step_arrays` its common frame over many
calls' columns at once (ari_amd.detect.vector: utterances going on, opening, closing), on the
state declared in `AmdStateMachine.STATE`, and the frames where a rule may fall due go to the
scalar step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import numpy as np

from ari_amd.detect.columns import BOOL, INT, OPT_INT, ZERO_NONE, Declaration, Field, choice, rows
from ari_amd.detect.features import FRAME_MS
from ari_amd.detect.params import AmdParams, Mode
from ari_amd.detect.tones import CPT_BAND_HZ, Beep, ToneObservation
from ari_amd.detect.vad import VoiceObservation
from ari_amd.detect.verdict import AmdEvent, AnsweredBy, EventKind, Rule, Segment, Verdict

SPEECH_CONFIRM_FRAMES = 5  # 100 ms of speech within the confirm window opens an utterance
SPEECH_CONFIRM_WINDOW = 8  # frames (160 ms)
RESUME_CONFIRM_FRAMES = 2  # inside a run, 40 ms of voice resumes it: low-SNR speech flickers
CONFIRM_MASK = (1 << SPEECH_CONFIRM_WINDOW) - 1
# A person's first words rarely run 1.5 s ("Hello?" median 0.6 s); a short voicemail greeting
# (1.5-2.4 s, under SpeechThreshold) is followed by its beep 0.2-1.5 s later, and the VAD ends
# an utterance up to ~0.2 s early. After a run this long, the human decision waits this much
# more, so such a beep is still heard; every other person keeps Twilio's timing.
GREETING_HOLD_MIN_MS = 1_500
GREETING_HOLD_EXTRA_MS = 400
# A machine beeps after its greeting has stopped and records after its beep: a short low tone
# straight out of the voice, or with a voice straight after it, is a held vowel (synthetic voices
# hold one at a steady pitch for 100-200 ms, at a harmonic under the first formant), not a beep.
BEEP_VOICE_AFTER_MS = 200  # a voice this soon after the tone...
BEEP_VOICE_SHORT_MS = 400  # ...unmakes a tone shorter than this...
BEEP_VOICE_MAX_HZ = 700.0  # ...and lower than this
# Nobody starts talking within this of picking up: a sound already there at the answer (music in
# the room, a TV) is the callee's background, and music in it is no machine's hold music.
ANSWER_SOUND_MS = 60
CALL_PROGRESS_MS = 200  # this much ringback-band tone before any speech is call progress
MUSIC_AFTER_SPEECH_MS = 300  # music counts once the voice has stopped: a monotone voice can seem to hold notes


def _in_cpt_band(hz: float) -> bool:
    return CPT_BAND_HZ[0] <= hz <= CPT_BAND_HZ[1]


class State(str, Enum):
    WAITING = "waiting"  # nothing heard yet
    SPEECH = "speech"  # an utterance run (gaps < SpeechEndThreshold)
    GREETING = "greeting"  # DetectMessageEnd: machine known, listening for its end
    DONE = "done"


STATES = tuple(State)  # as the columns hold them: by index
WAITING, SPEECH, GREETING = (STATES.index(state) for state in (State.WAITING, State.SPEECH, State.GREETING))


@dataclass
class Utterance:
    start_ms: int
    end_ms: int


class AmdStateMachine:
    # The attributes the array step reads or writes, as the vector step's columns hold them.
    STATE: tuple[Declaration, ...] = (
        Field("state", choice(STATES, "state")),
        # The open utterance's end (the array step extends it; the list is the object's).
        Field("utt_end", INT, "utterances[-1].end_ms", when="{}.utterances"),
        Field("recent", INT, "_recent"),
        Field("run_start", OPT_INT, "_run_start"),
        Field("last_speech_end", ZERO_NONE, "_last_speech_end"),
        Field("in_speech", BOOL, "_in_speech"),
        Field("streak", INT, "_streak"),
        Field("last_tone_end", INT, "_last_tone_end"),
        Field("rise_at_start", INT, "_rise_at_start"),
        Field("silence_origin", INT, "_silence_origin"),
        Field("run_closed", BOOL, "_run_closed"),
        Field("holding", BOOL, "_holding"),
        Field("music_at", INT, "_music_at"),
        # The call's parameters, set once.
        Field("speech_threshold_ms", INT, "params.speech_threshold_ms", read_only=True),
        Field("speech_end_threshold_ms", INT, "params.speech_end_threshold_ms", read_only=True),
        Field("silence_timeout_ms", INT, "params.silence_timeout_ms", read_only=True),
        Field("timeout_ms", INT, "params.timeout_ms", read_only=True),
        Field("beep_timeout_ms", INT, "params.beep_timeout_ms", read_only=True),
    )
    # Changed only by the scalar step, in the frames the array step hands it (a rule falling due);
    # the array step appends to utterances through the vector decider.
    OBJECT_ONLY: frozenset[str] = frozenset({"params", "utterances", "tones", "verdicts", "_held"})

    def __init__(self, params: AmdParams) -> None:
        self.params = params
        self.state = State.WAITING
        self.utterances: list[Utterance] = []
        self.tones: list[Segment] = []
        self.verdicts: list[Verdict] = []
        self._recent = 0  # the last SPEECH_CONFIRM_WINDOW frames' speech flags, newest in bit 0
        self._run_start: int | None = None  # first frame of the current utterance run
        self._last_speech_end: int | None = None  # end of the newest speech frame
        self._in_speech = False
        self._streak = 0  # consecutive speech frames, to back-date an onset
        self._last_tone_end = 0
        self._rise_at_start = 0
        self._silence_origin = 0  # SilenceTimeout counts from here: answer, or the end of ringback
        self._run_closed = False  # SpeechEndThreshold of silence ended the run; the next speech starts a new one
        self._held = False  # a greeting-length run has closed: Twilio's rule said human, we held it
        self._holding = False  # the run that closed was greeting-length: the human decision waits for a beep
        self._music_at = -1  # GREETING: the last frame of music heard while waiting for the beep

    # --- one frame ----------------------------------------------------------
    def step(
        self,
        t_ms: int,
        voice: VoiceObservation,
        tones: ToneObservation,
        music: bool = False,
        heard_at: int | None = None,
    ) -> list[AmdEvent]:
        """t_ms: the audio time at the end of this frame; heard_at: that of the first frame that
        was not digital silence (None before it)."""
        if self.state is State.DONE:
            return []
        speech = voice.speech
        events: list[AmdEvent] = []
        frame_start = t_ms - FRAME_MS
        if tones.tone or tones.candidate:
            # A sounding tone is not silence: it holds the human decision (a beep may follow).
            self._last_tone_end = t_ms
        if speech and self._streak == 0:
            self._rise_at_start = voice.rise_frames  # the level was already rising before the voice
        confirmed = self._confirm(speech)

        if tones.call_progress_ms >= CALL_PROGRESS_MS and self.listening_for_first_speech:
            # Ringback after "answer": the far end has not really answered yet. Whatever it
            # said so far was the tone, and the silence clock starts when the tone stops.
            self._silence_origin = t_ms
            self._drop_utterances_since(t_ms - tones.call_progress_ms)
            if self._run_start is None:
                self.state = State.WAITING
        if tones.beep is not None and not (self.state is State.WAITING and _in_cpt_band(tones.beep.hz)):
            events += self._on_beep(tones.beep, t_ms)
            if self.state is State.DONE:
                return events
        if tones.fax and self.state in (State.WAITING, State.SPEECH):
            cause = f"fax {tones.fax.replace('_', ' ')} at {t_ms}ms"
            return events + self._decide(AnsweredBy.FAX, t_ms, Rule.FAX, cause)
        if tones.sit and self.state is not State.GREETING:
            cause = f"sit_tone: special information tones at {t_ms}ms"
            return events + self._decide(AnsweredBy.UNKNOWN, t_ms, Rule.SIT, cause)

        # Utterance bookkeeping, with onsets back-dated to the first frame that was speech.
        if confirmed and not self._in_speech:
            back = max(self._streak, self._rise_at_start)
            onset = max(frame_start - FRAME_MS * (back - 1), self._last_speech_end or 0)
            self._in_speech = True
            self.utterances.append(Utterance(onset, t_ms))
            events.append(AmdEvent(EventKind.SPEECH_START, onset))
            if self._run_start is None or self._run_closed:
                self._run_start = onset
                self._run_closed = False
        elif self._in_speech and speech:
            self.utterances[-1].end_ms = t_ms
        elif self._in_speech and not speech:
            # Any non-speech frame closes the utterance; short gaps are bridged by the run rule.
            self._in_speech = False
            self._last_speech_end = self.utterances[-1].end_ms
            events.append(AmdEvent(EventKind.SPEECH_END, self._last_speech_end))

        p = self.params
        # While a tone sounds or a beep-like one waits for quiet, what seems music may be a
        # beep of three tones: let the beep decide first.
        if (
            music
            and not self._in_speech
            and not (tones.tone or tones.beep_pending)
            and t_ms - (self._last_speech_end or 0) >= MUSIC_AFTER_SPEECH_MS
            and not (self.state is State.SPEECH and self._sounding_at_answer(heard_at))
        ):
            self._last_tone_end = t_ms  # music is not silence
            if self.state is State.SPEECH:
                # Beyond Twilio: people don't play hold music. Speech, then music: a machine.
                spoke = t_ms - (self._run_start or 0)
                cause = f"music after {spoke}ms of speech"
                if p.mode is Mode.ENABLE:
                    return events + self._decide(AnsweredBy.MACHINE_START, t_ms, Rule.MUSIC, cause, spoke)
                events += self._interim(AnsweredBy.MACHINE_START, t_ms, Rule.MUSIC, cause, spoke)
                self.state = State.GREETING
            elif self.state is State.GREETING:
                # Hold music often plays between a greeting and its beep: keep listening.
                self._music_at = t_ms
        if self.state is State.WAITING:
            if self._run_start is not None:
                self.state = State.SPEECH
            elif t_ms - self._silence_origin >= p.silence_timeout_ms:
                return events + self._decide(
                    AnsweredBy.UNKNOWN,
                    t_ms,
                    Rule.SILENCE_TIMEOUT,
                    f"silence_timeout {p.silence_timeout_ms}ms: no speech",
                    t_ms - self._silence_origin,
                    p.silence_timeout_ms,
                )
        if self.state is State.SPEECH:
            assert self._run_start is not None
            run = (self.utterances[-1].end_ms if self._in_speech else self._last_speech_end or t_ms) - self._run_start
            if self._in_speech and run >= p.speech_threshold_ms:
                cause = f"speech_threshold {p.speech_threshold_ms}ms reached at {t_ms}ms"
                figures = (run, p.speech_threshold_ms)
                if p.mode is Mode.ENABLE:
                    return events + self._decide(AnsweredBy.MACHINE_START, t_ms, Rule.SPEECH_THRESHOLD, cause, *figures)
                events += self._interim(AnsweredBy.MACHINE_START, t_ms, Rule.SPEECH_THRESHOLD, cause, *figures)
                self.state = State.GREETING
            elif not self._in_speech and (silence := self._silence(t_ms)) >= p.speech_end_threshold_ms:
                if not self._run_closed:
                    # Twilio's run ends here. A greeting-length one holds the decision a little;
                    # a short one after it (a second "Hello?") gets Twilio's timing again.
                    self._run_closed = True
                    self._holding = run >= min(GREETING_HOLD_MIN_MS, p.speech_threshold_ms)
                    self._held = self._held or self._holding
                limit = p.speech_end_threshold_ms + (GREETING_HOLD_EXTRA_MS if self._holding else 0)
                if silence >= limit:
                    held = f", held {GREETING_HOLD_EXTRA_MS}ms more for a beep" if self._holding else ""
                    return events + self._decide(
                        AnsweredBy.HUMAN,
                        t_ms,
                        Rule.SPEECH_END,
                        f"speech_end_threshold {p.speech_end_threshold_ms}ms of silence after {run}ms of speech{held}",
                        silence,
                        limit,
                    )
        sounding = tones.tone or tones.candidate or tones.beep_pending
        if self.state is State.GREETING and not self._in_speech and not sounding:
            # Twilio calls message end after SpeechEndThreshold of silence, before a beep that
            # comes 2-8 s later (or after hold music): we wait BeepTimeout for the beep.
            waited = t_ms - (self._last_speech_end or 0)
            wait = max(p.beep_timeout_ms, p.speech_end_threshold_ms)
            if waited >= wait:
                if self._music_since_greeting():
                    return events + self._decide(
                        AnsweredBy.MACHINE_END_OTHER, t_ms, Rule.MUSIC,
                        f"music after the greeting, no beep within {wait}ms", waited, wait,
                    )
                return events + self._decide(
                    AnsweredBy.MACHINE_END_SILENCE, t_ms, Rule.END_SILENCE,
                    f"{wait}ms of silence after the greeting, no beep", waited, wait,
                )
        if t_ms >= p.timeout_ms:
            late = AnsweredBy.MACHINE_END_OTHER if self.state is State.GREETING else AnsweredBy.UNKNOWN
            return events + self._decide(late, t_ms, Rule.TIMEOUT, f"timeout {p.timeout_ms}ms", t_ms, p.timeout_ms)
        return events

    def finish(self, t_ms: int, cause: str) -> list[AmdEvent]:
        """The audio ended (hangup, end of file) before a final verdict."""
        if self.state is State.DONE:
            return []
        if self.state is State.GREETING:
            if self._music_since_greeting():
                return self._decide(
                    AnsweredBy.MACHINE_END_OTHER, t_ms, Rule.MUSIC, f"music after the greeting; {cause} at {t_ms}ms",
                    t_ms,
                )
            silent = not self._in_speech and self._silence(t_ms) >= self.params.speech_end_threshold_ms
            kind = AnsweredBy.MACHINE_END_SILENCE if silent else AnsweredBy.MACHINE_END_OTHER
            return self._decide(kind, t_ms, Rule.AUDIO_END, f"{cause} at {t_ms}ms during the greeting", t_ms)
        if self.state is State.SPEECH and self._held:
            # Twilio's rule had already said human (a run ended in SpeechEndThreshold of silence):
            # we were only holding it for a beep that never came.
            silence = self._silence(t_ms)
            return self._decide(
                AnsweredBy.HUMAN, t_ms, Rule.SPEECH_END, f"{cause} at {t_ms}ms after {silence}ms of silence, no beep",
                silence,
                self.params.speech_end_threshold_ms,
            )
        return self._decide(AnsweredBy.UNKNOWN, t_ms, Rule.AUDIO_END, f"{cause} at {t_ms}ms before a verdict", t_ms)

    @property
    def listening_for_first_speech(self) -> bool:
        """Nothing said yet, or only what began with a tone now sounding."""
        return self.state is State.WAITING or (self.state is State.SPEECH and len(self.utterances) <= 1)

    # --- helpers ------------------------------------------------------------
    def _drop_utterances_since(self, start_ms: int) -> None:
        while self.utterances and self.utterances[-1].start_ms >= start_ms - FRAME_MS:
            self.utterances.pop()
        if not self.utterances:
            self._run_start = None
            self._in_speech = False
            self._last_speech_end = None

    def _confirm(self, speech: bool) -> bool:
        self._streak = self._streak + 1 if speech else 0
        self._recent = ((self._recent << 1) | speech) & CONFIRM_MASK
        if not speech:
            return False
        state = self.state
        need = RESUME_CONFIRM_FRAMES if state is State.SPEECH or state is State.GREETING else SPEECH_CONFIRM_FRAMES
        return self._recent.bit_count() >= need

    def _silence(self, t_ms: int) -> int:
        last = max(self._last_speech_end or 0, self._last_tone_end)
        return t_ms - last

    def _on_beep(self, beep: Beep, t_ms: int) -> list[AmdEvent]:
        vowel_like = beep.end_ms - beep.start_ms < BEEP_VOICE_SHORT_MS and beep.hz < BEEP_VOICE_MAX_HZ
        if vowel_like and (not beep.quiet_before or self._voice_after(beep.end_ms)):
            return []
        self.tones.append(Segment("beep", beep.start_ms, beep.end_ms))
        events = [AmdEvent(EventKind.BEEP_START, beep.start_ms), AmdEvent(EventKind.BEEP_END, beep.end_ms)]
        cause = f"beep {beep.hz:.0f}Hz {beep.end_ms - beep.start_ms}ms ended at {beep.end_ms}ms"
        length = beep.end_ms - beep.start_ms
        if self.state is State.GREETING:
            events += self._decide(AnsweredBy.MACHINE_END_BEEP, t_ms, Rule.BEEP, cause, length)
        elif self.state in (State.WAITING, State.SPEECH):
            # Beyond Twilio: people don't beep. A short greeting, then a beep before the
            # human decision fell due, is a machine whose greeting has already ended.
            kind = AnsweredBy.MACHINE_START if self.params.mode is Mode.ENABLE else AnsweredBy.MACHINE_END_BEEP
            events += self._decide(kind, t_ms, Rule.BEEP, cause + ", before a verdict", length)
        return events

    def _music_since_greeting(self) -> bool:
        return self._music_at > (self._last_speech_end or 0)

    def _sounding_at_answer(self, heard_at: int | None) -> bool:
        """Did the run in progress begin with the line itself (music or TV there from the answer)?"""
        first = self.utterances[0].start_ms if self.utterances else None
        if heard_at is None or first is None:
            return False
        return self._run_start == first and first - heard_at <= ANSWER_SOUND_MS

    def _voice_after(self, end_ms: int) -> bool:
        """Was a voice heard in the BEEP_VOICE_AFTER_MS after `end_ms`? (The beep is confirmed
        once that much quiet has followed it, so the utterances are known by then.)"""
        until = end_ms + BEEP_VOICE_AFTER_MS
        return any(u.end_ms > end_ms and u.start_ms <= until for u in self.utterances[-3:])

    def _segments(self) -> tuple[Segment, ...]:
        speech = [Segment("speech", u.start_ms, u.end_ms) for u in self.utterances]
        return tuple(sorted(speech + self.tones, key=lambda s: s.start_ms))

    def _interim(
        self, kind: AnsweredBy, t_ms: int, rule: Rule, cause: str, measure: int = 0, limit: int = 0
    ) -> list[AmdEvent]:
        verdict = Verdict(kind, t_ms, cause, rule, measure, limit, final=False, segments=self._segments())
        self.verdicts.append(verdict)
        return [AmdEvent(EventKind.VERDICT, t_ms, verdict)]

    def _decide(
        self, kind: AnsweredBy, t_ms: int, rule: Rule, cause: str, measure: int = 0, limit: int = 0
    ) -> list[AmdEvent]:
        self.state = State.DONE
        verdict = Verdict(kind, t_ms, cause, rule, measure, limit, final=True, segments=self._segments())
        self.verdicts.append(verdict)
        return [AmdEvent(EventKind.VERDICT, t_ms, verdict)]


class MachineArrays(NamedTuple):
    """What `step_arrays` made of each call's frame."""

    opens: np.ndarray  # an utterance opened, back-dated to onset_ms
    closes: np.ndarray  # the open utterance closed, at ended_ms
    onset_ms: np.ndarray
    ended_ms: np.ndarray
    scalar: np.ndarray  # a rule may fall due: the scalar step's frame


_ROWS = rows(AmdStateMachine.STATE, "MachineRows")
_POPCOUNT = np.array([i.bit_count() for i in range(1 << SPEECH_CONFIRM_WINDOW)], dtype=np.int64)


def step_arrays(
    s: np.ndarray, new: np.ndarray, t_ms: np.ndarray, speech: np.ndarray, rise_frames: np.ndarray, tone: np.ndarray,
) -> MachineArrays:
    """`AmdStateMachine.step` for many calls, in a frame where no tone, fax, SIT, ringback or
    music reaches it: s, new: their STATE rows before and after (new is written); tone: a tone
    or candidate sounds. The utterance list is the caller's to extend (opens, closes). Each
    array follows the scalar code's order of operations in float64, so the two agree to the bit."""
    where, maximum = np.where, np.maximum
    r = _ROWS
    t = t_ms
    state = s[r.state]
    last_tone = where(tone, t, s[r.last_tone_end])
    new[r.last_tone_end] = last_tone
    streak0 = s[r.streak]
    rise_at = where(speech & (streak0 == 0), rise_frames, s[r.rise_at_start])
    streak = where(speech, streak0 + 1, 0.0)
    new[r.rise_at_start], new[r.streak] = rise_at, streak
    # _confirm
    recent = ((s[r.recent].astype(np.int64) << 1) | speech) & CONFIRM_MASK
    new[r.recent] = recent
    need = where((state == SPEECH) | (state == GREETING), RESUME_CONFIRM_FRAMES, SPEECH_CONFIRM_FRAMES)
    confirmed = speech & (_POPCOUNT[recent] >= need)
    # Utterance bookkeeping: an onset back-dated over the voice's rise, or the utterance closed.
    was_speaking = s[r.in_speech] > 0
    opens = confirmed & ~was_speaking
    closes = was_speaking & ~speech
    last_end0 = s[r.last_speech_end]
    onset_ms = maximum(t - FRAME_MS - FRAME_MS * (maximum(streak, rise_at) - 1), last_end0)
    in_speech = opens | (was_speaking & speech)
    new[r.in_speech] = in_speech
    ended_ms = s[r.utt_end]
    utt_end = where(in_speech, t, ended_ms)
    new[r.utt_end] = utt_end
    last_end = where(closes, ended_ms, last_end0)
    new[r.last_speech_end] = last_end
    run_from0 = s[r.run_start]
    restart_run = opens & (np.isnan(run_from0) | (s[r.run_closed] > 0))
    run_from = where(restart_run, onset_ms, run_from0)
    new[r.run_start] = run_from
    closed = where(restart_run, 0.0, s[r.run_closed])
    new[r.run_closed] = closed
    # The rules, on the state as bookkeeping left it (WAITING turns SPEECH once a run began).
    no_run = np.isnan(run_from)
    waiting = state == WAITING
    state = where(waiting & ~no_run, float(SPEECH), state)
    new[r.state] = state
    talking, greeting = state == SPEECH, state == GREETING
    silence = t - maximum(last_end, last_tone)
    run_len = where(in_speech, utt_end, where(last_end != 0, last_end, t)) - run_from
    speech_end = s[r.speech_end_threshold_ms]
    limit = where(s[r.holding] > 0, speech_end + GREETING_HOLD_EXTRA_MS, speech_end)
    beep_wait = maximum(s[r.beep_timeout_ms], speech_end)
    due = (
        (waiting & no_run & (t - s[r.silence_origin] >= s[r.silence_timeout_ms]))
        | (talking & in_speech & (run_len >= s[r.speech_threshold_ms]))
        | (talking & ~in_speech & (silence >= speech_end) & ((closed == 0) | (silence >= limit)))
        | (greeting & ~in_speech & (t - last_end >= beep_wait))  # (whether a tone holds it: the scalar step's)
        | (t >= s[r.timeout_ms])
    )
    return MachineArrays(opens, closes, onset_ms, ended_ms, due)

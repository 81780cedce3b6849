"""What the detector says: events on the audio clock, segments of evidence, verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class AnsweredBy(str, Enum):
    """Twilio's `AnsweredBy` values."""

    HUMAN = "human"
    MACHINE_START = "machine_start"
    MACHINE_END_BEEP = "machine_end_beep"
    MACHINE_END_SILENCE = "machine_end_silence"
    MACHINE_END_OTHER = "machine_end_other"
    FAX = "fax"
    UNKNOWN = "unknown"

    @property
    def is_machine(self) -> bool:
        return self.value.startswith("machine")


class Rule(str, Enum):
    """Which rule decided: with measure_ms/limit_ms, what an admin needs to see why."""

    SPEECH_END = "speech_end"  # silence >= SpeechEndThreshold after a short run: human
    SPEECH_THRESHOLD = "speech_threshold"  # run >= SpeechThreshold: machine
    SILENCE_TIMEOUT = "silence_timeout"  # no speech within SilenceTimeout: unknown
    TIMEOUT = "timeout"  # MachineDetectionTimeout
    BEEP = "beep"
    FAX = "fax"
    SIT = "sit"
    MUSIC = "music"
    END_SILENCE = "end_silence"  # silence after the greeting, no beep
    AUDIO_END = "audio_end"  # hangup / end of file before a verdict


@dataclass(frozen=True)
class Segment:
    """A stretch of audio the detector classified: speech, silence, beep, fax, sit, tone."""

    kind: str
    start_ms: int
    end_ms: int

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "start_ms": self.start_ms, "end_ms": self.end_ms}


@dataclass(frozen=True)
class Verdict:
    """A decision. `final` is False for machine_start in DetectMessageEnd (more will follow)."""

    answered_by: AnsweredBy
    duration_ms: int
    cause: str
    rule: Rule
    measure_ms: int = 0  # the figure that tripped the rule (silence, speech run, ...)
    limit_ms: int = 0  # and the threshold it met
    final: bool = True
    segments: tuple[Segment, ...] = field(default=(), compare=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "answered_by": self.answered_by.value,
            "duration_ms": self.duration_ms,
            "cause": self.cause,
            "rule": self.rule.value,
            "final": self.final,
            "segments": [s.as_dict() for s in self.segments],
        }


class EventKind(str, Enum):
    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"
    BEEP_START = "beep_start"
    BEEP_END = "beep_end"
    FAX_TONE = "fax_tone"
    SIT_TONE = "sit_tone"
    VERDICT = "verdict"


@dataclass(frozen=True)
class AmdEvent:
    """Something the detector noticed at `t_ms` (audio clock). VERDICT events carry a Verdict."""

    kind: EventKind
    t_ms: int
    verdict: Verdict | None = None

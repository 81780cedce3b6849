"""The four Twilio tunables and the detection mode, with Twilio's ranges and defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum


class Mode(str, Enum):
    """Twilio's `MachineDetection` values."""

    ENABLE = "Enable"
    DETECT_MESSAGE_END = "DetectMessageEnd"

    @classmethod
    def parse(cls, value: str) -> Mode:
        for mode in cls:
            if value.strip().lower() == mode.value.lower():
                return mode
        raise ParameterError("MachineDetection", value, "Enable or DetectMessageEnd")


class ParameterError(ValueError):
    """An AMD parameter outside its range; names the parameter so an API can echo it."""

    def __init__(self, name: str, value: object, allowed: str) -> None:
        super().__init__(f"{name} must be {allowed} (got {value!r})")
        self.name = name
        self.value = value
        self.allowed = allowed


# name -> (Twilio parameter name, min, max, unit); defaults live on the dataclass.
RANGES: dict[str, tuple[str, int, int, str]] = {
    "timeout_ms": ("MachineDetectionTimeout", 3_000, 59_000, "ms"),
    "speech_threshold_ms": ("MachineDetectionSpeechThreshold", 1_000, 6_000, "ms"),
    "speech_end_threshold_ms": ("MachineDetectionSpeechEndThreshold", 500, 5_000, "ms"),
    "silence_timeout_ms": ("MachineDetectionSilenceTimeout", 2_000, 10_000, "ms"),
    # ari-amd's own: in DetectMessageEnd, how long after the greeting's last word a beep is
    # still awaited before machine_end_silence (peers wait 30-120 s; beeps come up to ~8 s late).
    "beep_timeout_ms": ("MachineDetectionBeepTimeout", 1_000, 59_000, "ms"),
}


@dataclass(frozen=True)
class AmdParams:
    """Detection settings. Times in ms on the audio clock, t=0 at answer.

    Twilio expresses MachineDetectionTimeout in seconds; we hold ms internally
    and convert at the API edge.
    """

    mode: Mode = Mode.ENABLE
    timeout_ms: int = 30_000
    speech_threshold_ms: int = 2_400
    speech_end_threshold_ms: int = 1_200
    silence_timeout_ms: int = 5_000
    beep_timeout_ms: int = 9_000

    def __post_init__(self) -> None:
        if not isinstance(self.mode, Mode):
            object.__setattr__(self, "mode", Mode.parse(str(self.mode)))
        for f in fields(self):
            if f.name not in RANGES:
                continue
            twilio_name, lo, hi, _ = RANGES[f.name]
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParameterError(twilio_name, value, "an integer")
            if not lo <= value <= hi:
                if f.name == "timeout_ms":
                    raise ParameterError(twilio_name, value // 1000, f"{lo // 1000}-{hi // 1000} s")
                raise ParameterError(twilio_name, value, f"{lo}-{hi} ms")

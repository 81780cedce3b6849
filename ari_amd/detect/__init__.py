"""Pure signal processing: audio in, AMD events and verdicts out. No I/O, no asyncio."""

from ari_amd.detect.detector import Detector, classify
from ari_amd.detect.params import AmdParams, Mode, ParameterError
from ari_amd.detect.verdict import AmdEvent, AnsweredBy, EventKind, Rule, Segment, Verdict

__all__ = [
    "AmdEvent",
    "AmdParams",
    "AnsweredBy",
    "Detector",
    "EventKind",
    "Mode",
    "ParameterError",
    "Rule",
    "Segment",
    "Verdict",
    "classify",
]

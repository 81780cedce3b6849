"""The declared per-call state (ari_amd.detect.columns, each tracker's STATE): it covers every
attribute of every tracker, and a Detector's column loads back into the very same attributes,
types included, so that what the vector step's columns hold is the whole of the state its
array steps use."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import deque

import numpy as np
import pytest

from ari_amd.detect import AmdParams, Mode
from ari_amd.detect.columns import INT, Field, Layout, Record
from ari_amd.detect.detector import COLUMNS, Detector
from ari_amd.detect.g711 import decode_ulaw, encode_ulaw
from ari_amd.detect.machine import AmdStateMachine
from ari_amd.detect.music import MusicTracker
from ari_amd.detect.tones import ToneTracker
from ari_amd.detect.vad import VoiceActivity
from ari_amd.synth import DEV_CATEGORIES, make_clip

PARTS = (("", Detector), ("vad", VoiceActivity), ("tones", ToneTracker), ("music", MusicTracker),
         ("machine", AmdStateMachine))  # fmt: skip


def part_of(det: Detector, part: str) -> object:
    return getattr(det, part) if part else det


@pytest.fixture(scope="module")
def states() -> list[Detector]:
    """Detectors part-way through calls of every category, cut at random frames (some mid-tone,
    mid-utterance, mid-greeting), both modes."""
    rng = np.random.default_rng(12)
    out = []
    for k, cat in enumerate(DEV_CATEGORIES):
        samples = decode_ulaw(encode_ulaw(make_clip(cat, 20 + k).samples))
        for mode in Mode:
            for cut in rng.integers(10, len(samples) // 160, size=3).tolist():
                det = Detector(AmdParams(mode=mode))
                det.feed(samples[: cut * 160])
                out.append(det)
    return out


def test_every_attribute_of_every_tracker_is_declared_or_named_as_the_object_s_only(states: list[Detector]) -> None:
    # A rule that adds state must declare it (a column) or say why the columns need not hold it.
    for det in states[:3]:
        for part, cls in PARTS:
            attrs = set(vars(part_of(det, part)))
            declared = COLUMNS.paths[part]
            assert attrs - declared - cls.OBJECT_ONLY == set(), f"{cls.__name__}: undeclared state"
            assert declared | cls.OBJECT_ONLY <= attrs, f"{cls.__name__}: declares what it does not have"


def same(a: object, b: object, where: str) -> None:
    """Equal and of the same types all the way down (an int loaded as a float would reach a cause)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} against {type(b).__name__}"
    if isinstance(a, float):
        assert a == b or (math.isnan(a) and math.isnan(b)), f"{where}: {a} against {b}"
    elif isinstance(a, (list, tuple, deque)):
        assert len(a) == len(b), where  # type: ignore[arg-type]
        for k, (x, y) in enumerate(zip(a, b)):  # type: ignore[call-overload]
            same(x, y, f"{where}[{k}]")
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        for f in dataclasses.fields(a):
            same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, (int, str, bool, type(None))):
        assert a == b, f"{where}: {a} against {b}"


def as_held(det: Detector) -> list[float]:
    """The detector's column as the vector step holds it: float64."""
    return np.array(COLUMNS.store(det), dtype=np.float64).tolist()


def test_a_column_loads_back_into_the_same_attributes_of_the_same_types(states: list[Detector]) -> None:
    rng = np.random.default_rng(5)
    for i, det in enumerate(states):
        column = as_held(det)
        other = states[int(rng.integers(len(states)))]
        twin = copy.deepcopy(det)
        # Another call's state first, so every loaded attribute really changes, then this one's back.
        COLUMNS.load(twin, as_held(other))
        COLUMNS.load(twin, column)
        again = as_held(twin)
        for k, name in enumerate(COLUMNS.names):
            a, b = column[k], again[k]
            assert a == b or (math.isnan(a) and math.isnan(b)), f"state {i}: column {name}"
        for part, cls in PARTS:
            mine, theirs = part_of(det, part), part_of(twin, part)
            for attr in COLUMNS.paths[part] - cls.OBJECT_ONLY - {"vad", "tones", "music", "machine"}:
                same(getattr(theirs, attr), getattr(mine, attr), f"state {i}: {cls.__name__}.{attr}")


def test_the_declared_row_numbers_follow_the_declaration_order() -> None:
    layout = Layout((("", (Field("a", INT), Record("r", "r", tuple, (Field("x", INT, "0"),)))), ("p", (Field("a", INT),))))
    assert layout.names == ["a", "r", "x", "p.a"]
    assert layout.blocks["p"] == slice(3, 4)
    with pytest.raises(ValueError, match="declared twice"):
        Layout((("", (Field("a", INT), Field("a", INT))),))

"""Per-call state declared once, held as float64 columns for the vector decision step.

Each tracker (VoiceActivity, ToneTracker, MusicTracker, AmdStateMachine, and the Detector's own
counter) declares the fields of its state that its array step reads or writes: a name for the
array step, the attribute it mirrors, and how the value is held in a float64 (`Kind`). From the
declarations follow the row numbers (`Layout.rows`), and the copies between a Detector's
attributes and one column of the matrix (`Layout.store` / `Layout.load`), so that adding a
field to a tracker is one line beside its scalar and array steps (ari_amd.detect.vector keeps
many calls' columns side by side).

The copies run for every frame the vector pass hands to a call's own scalar step (~2% of them),
so they are compiled from the declarations into one plain function each, the way dataclasses
writes its __init__: a loop over field objects costs three times as much.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    """How a value of one Python type is held in a float64. `store` and `load` are expression
    templates over `{}` (the attribute's value, the column's float); numpy converts the stored
    ints and bools."""

    name: str
    store: str = "{}"
    load: str = "{}"


FLOAT = Kind("float")
INT = Kind("int", load="int({})")  # ints stay ints: they reach causes and event times
BOOL = Kind("bool", load="bool({})")
_NONE_AS_NAN = "(_nan if (_v := {}) is None else _v)"
OPT_FLOAT = Kind("float or None (nan)", store=_NONE_AS_NAN, load="(None if (_x := {}) != _x else _x)")
OPT_INT = Kind("int or None (nan)", store=_NONE_AS_NAN, load="(None if (_x := {}) != _x else int(_x))")
# For a time the scalar code reads as `x or 0` wherever it reads it.
ZERO_NONE = Kind("int or None (0)", store="({} or 0)", load="(int({}) or None)")


# Names the compiled copies may use: nan, and each choice's tables.
_CONSTANTS: dict[str, Any] = {"_nan": math.nan}


def choice(values: Sequence[object], name: str) -> Kind:
    """One of `values` (an enum's members), held as its index."""
    _CONSTANTS[f"_codes_{name}"] = {v: i for i, v in enumerate(values)}
    _CONSTANTS[f"_values_{name}"] = tuple(values)
    return Kind(f"one of {name}", store=f"_codes_{name}[{{}}]", load=f"_values_{name}[int({{}})]")


@dataclass(frozen=True)
class Field:
    """One column. path: the attribute it mirrors, relative to the tracker (`_rise`,
    `_notes[0][1]`), or an expression with `{}` for the tracker (`len({}._onsets)`); default the
    name. read_only: stored at each store, never loaded: a summary of state the columns do not
    hold (a beep pending, the onsets kept), which the array step only reads; or a parameter.
    when: an expression on the tracker; while false the column holds 0 and is not loaded."""

    name: str
    kind: Kind
    path: str = ""
    read_only: bool = False
    when: str = ""


@dataclass(frozen=True)
class Record:
    """An optional object (`path` None, or a `make` built from `fields`): a column `name` (1 when
    present) and one per field, 0 when absent. The fields' paths are the object's attributes
    (make a class: built by keyword) or indices (make `tuple`: built in order)."""

    name: str
    path: str
    make: type
    fields: tuple[Field, ...]


Declaration = Field | Record


def _expr(path: str, obj: str) -> str:
    return path.replace("{}", obj) if "{}" in path else f"{obj}.{path}"


class Layout:
    """The rows of some trackers' declared state, in declaration order: `parts` pairs the
    attribute that reaches each tracker from the object stored ("" for the object itself)
    with its declarations."""

    def __init__(self, parts: Sequence[tuple[str, Sequence[Declaration]]]) -> None:
        self.names: list[str] = []  # "part.name" ("name" for the object's own)
        self._namespace = dict(_CONSTANTS)
        self._part = ""  # the part being laid out
        self.blocks: dict[str, slice] = {}  # each part's rows
        self.paths: dict[str, set[str]] = {}  # each part's attributes the columns mirror
        store = ["def store(obj):", "    c = [0.0] * {n}"]
        load = ["def load(obj, c):"]
        for part, decls in parts:
            first = len(self.names)
            self._part = part
            obj = f"obj.{part}" if part else "obj"
            store.append(f"    o = {obj}")
            load.append(f"    o = {obj}")
            attrs = self.paths.setdefault(part, set())
            for d in decls:
                if isinstance(d, Record):
                    self._record(d, store, load, attrs)
                else:
                    self._field(d, store, load, attrs)
            self.blocks[part] = slice(first, len(self.names))
        store.append("    return c")
        self.n = len(self.names)
        if len(set(self.names)) != self.n:
            raise ValueError(f"a column is declared twice: {sorted(n for n in self.names if self.names.count(n) > 1)}")
        self.index = {name: i for i, name in enumerate(self.names)}
        self.source = "\n".join(store).replace("{n}", str(self.n)) + "\n\n" + "\n".join(load) + "\n"
        namespace = self._namespace
        exec(compile(self.source, "<columns>", "exec"), namespace)  # noqa: S102 - our own declarations
        self.store: Callable[[Any], list[float]] = namespace["store"]
        self.load: Callable[[Any, Sequence[float]], None] = namespace["load"]

    def _add(self, name: str) -> int:
        self.names.append(f"{self._part}.{name}" if self._part else name)
        return len(self.names) - 1

    def _field(self, f: Field, store: list[str], load: list[str], attrs: set[str]) -> None:
        i = self._add(f.name)
        path = f.path or f.name
        attrs.add(_attribute(path))
        value = f.kind.store.replace("{}", _expr(path, "o"))
        if f.when:
            store.append(f"    if {_expr(f.when, 'o')}:")
            store.append(f"        c[{i}] = {value}")
        else:
            store.append(f"    c[{i}] = {value}")
        if not f.read_only:
            target = f"    {_expr(path, 'o')} = {f.kind.load.replace('{}', f'c[{i}]')}"
            load += [f"    if {_expr(f.when, 'o')}:", "    " + target] if f.when else [target]

    def _record(self, r: Record, store: list[str], load: list[str], attrs: set[str]) -> None:
        present = self._add(r.name)
        attrs.add(_attribute(r.path))
        store.append(f"    r = {_expr(r.path, 'o')}")
        store.append("    if r is not None:")
        store.append(f"        c[{present}] = 1")
        args = []
        for f in r.fields:
            i = self._add(f.name)
            member = f"r[{f.path}]" if r.make is tuple else f"r.{f.path or f.name}"
            store.append(f"        c[{i}] = {f.kind.store.replace('{}', member)}")
            value = f.kind.load.replace("{}", f"c[{i}]")
            args.append(value if r.make is tuple else f"{f.path or f.name}={value}")
        self._namespace[f"_make_{r.make.__name__}"] = r.make
        built = f"({', '.join(args)},)" if r.make is tuple else f"_make_{r.make.__name__}({', '.join(args)})"
        load.append(f"    {_expr(r.path, 'o')} = {built} if c[{present}] else None")


def rows(decls: Sequence[Declaration], name: str) -> Any:
    """The declarations' row numbers by name, counted from their first row: an array step's
    handle on its tracker's block of the matrix (`s[rows.floor_db]`)."""
    names: list[str] = []
    for d in decls:
        names += [d.name, *(f.name for f in d.fields)] if isinstance(d, Record) else [d.name]
    return namedtuple(name, names)(*range(len(names)))


def _attribute(path: str) -> str:
    """The tracker's attribute a path reads (`_notes[0][1]` -> `_notes`, `len({}._onsets)` -> `_onsets`)."""
    if "{}." in path:
        path = path.split("{}.", 1)[1]
    for stop in "[. )":
        path = path.split(stop, 1)[0]
    return path

"""Call scenes: what the caller hears after answer, with its truth, built from known parts.

Each scene is a function ``(rng, **overrides) -> Clip``. The categories and the label fields
follow the dev corpus (``labels.csv``): the same names, the same meanings, the same way of
measuring speech times (10 ms frames of the clean speech in the phone band; a frame more
than 40 dB below the loudest counts as silence; an utterance ends at the first pause of
0.5 s or more). Beep times are where the beep was placed (first and last sample).

Overrides every scene accepts: ``voice`` (a Voice), ``noise`` (one of line.NOISE_KINDS or
None), ``snr_db``, ``level_dbfs``, ``hot``, ``clip_pct``, ``ulaw``, ``dropouts`` (a list of
(start_ms, length_ms), or False for none), ``lead_s`` (time before the first sound),
``codec`` ("ulaw" or "alaw"), ``noise_dbfs`` (the noise's own level, instead of ``snr_db``),
``full_scale_pct`` (drive the line until that % of the speech's samples clip at full scale),
``tempo_scale`` (every utterance said that much faster, after fitting its length). ``voice``
may also be an ``engines.ExternalVoice`` (a TTS engine or Asterisk's prompts).
Scene-specific ones are listed on each function. Anything else raises TypeError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ari_amd.synth import texts
from ari_amd.synth.engines import ExternalVoice, stretch
from ari_amd.synth.line import (
    SR,
    LineConfig,
    LineResult,
    activity,
    bandpass,
    db,
    rms,
    transmit,
)
from ari_amd.synth.tones import (
    Beep,
    cng,
    fax_answer_tone,
    level,
    make_beep,
    music,
    ringback,
    sit,
    uk_ringback,
    v21_burst,
)
from ari_amd.synth.voice import Voice, plan_speech, render

LABEL_COLUMNS = (
    "file", "category", "truth", "expected_enable", "expected_dme", "speech_onset_ms",
    "first_utterance_end_ms", "greeting_end_ms", "beep_start_ms", "beep_end_ms", "beep_hz",
    "snr_db", "voice", "notes",
)
UTTERANCE_PAUSE_MS = 500
SILENCE_FLOOR_DB = 40.0


@dataclass
class Part:
    """One thing placed on the call's timeline (not in labels.csv; for tests and plots)."""

    kind: str  # speech, beep, fax_ans, v21, cng, sit, ringback, music
    start_ms: int
    end_ms: int
    text: str = ""


@dataclass
class Clip:
    """A labelled call: int16 samples at 8 kHz plus the dev corpus's label fields."""

    samples: np.ndarray
    category: str
    truth: str
    expected_enable: str
    expected_dme: str
    speech_onset_ms: int | None = None
    first_utterance_end_ms: int | None = None
    greeting_end_ms: int | None = None
    beep_start_ms: int | None = None
    beep_end_ms: int | None = None
    beep_hz: int | None = None
    snr_db: float | None = None
    voice: str = ""
    notes: str = ""
    parts: list[Part] = field(default_factory=list)

    sample_rate: ClassVar[int] = SR

    @property
    def duration_ms(self) -> int:
        return int(round(len(self.samples) * 1000 / SR))

    def row(self, file: str) -> dict[str, str]:
        """The labels.csv row for this clip saved as ``file``."""
        vals: dict[str, Any] = {k: getattr(self, k) for k in LABEL_COLUMNS if k != "file"}
        vals["file"] = file
        out = {}
        for k in LABEL_COLUMNS:
            v = vals[k]
            if v is None:
                out[k] = ""
            elif k == "snr_db":
                out[k] = f"{v:.1f}"
            else:
                out[k] = str(v)
        return out


# ---------------------------------------------------------------------------------------------
# Building blocks


class _Opts:
    COMMON = ("voice", "noise", "snr_db", "level_dbfs", "hot", "clip_pct", "ulaw", "dropouts", "lead_s",
              "codec", "noise_dbfs", "full_scale_pct", "tempo_scale")

    def __init__(self, scene: str, overrides: dict[str, Any], own: tuple[str, ...]):
        unknown = set(overrides) - set(self.COMMON) - set(own)
        if unknown:
            raise TypeError(f"{scene}() got unknown overrides: {', '.join(sorted(unknown))}")
        self.o = overrides

    def get(self, key: str, default: Callable[[], Any]) -> Any:
        return self.o[key] if key in self.o else default()


class _Timeline:
    """Parts placed at known sample positions, kept as separate tracks."""

    def __init__(self, rng: np.random.Generator, voice: Voice | ExternalVoice, tempo_scale: float = 1.0):
        self.rng = rng
        self.voice = voice
        self.tempo_scale = tempo_scale
        self.speech: list[tuple[int, np.ndarray, str]] = []
        self.other: list[tuple[int, np.ndarray]] = []
        self.parts: list[Part] = []
        self.tempos: list[float] = []

    # speech -----------------------------------------------------------------------------
    def utterance(
        self, text_options: list[str] | str | Callable[[np.random.Generator], str], lo_s: float, hi_s: float
    ) -> tuple[np.ndarray, str, int, int]:
        """Render one utterance whose sounding length falls in [lo_s, hi_s] (tempo 0.75-1.3x,
        else another text). -> (samples, text, first, last sounding sample)."""
        if callable(text_options):
            draw = text_options
        else:
            options = [text_options] if isinstance(text_options, str) else list(text_options)

            def draw(rng: np.random.Generator) -> str:
                return options[int(rng.integers(len(options)))] if len(options) > 1 else options[0]

        if isinstance(self.voice, ExternalVoice):
            return self._external(draw, lo_s, hi_s)
        best = None
        for attempt in range(16):
            text = draw(self.rng)
            if "{digits}" in text:
                text = text.format(digits=texts.digits(self.rng))
            plan = plan_speech(text, self.voice, self.rng)
            # plan.duration counts the quiet edges too; sounding length is ~0.03 s shorter
            dur = plan.duration - 0.03
            tempo = dur / float(np.clip(dur, lo_s, hi_s))
            if tempo == 1.0:  # said at its own pace: take it
                best = (plan, text, 1.0)
                break
            # otherwise remember the one needing the least time-stretch (0.75-1.3x at most)
            if best is None or abs(np.log(tempo)) < abs(np.log(best[2])):
                best = (plan, text, tempo)
            if attempt >= 7 and 0.75 <= best[2] <= 1.3:
                break
        assert best is not None
        plan, text, tempo = best
        tempo = float(np.clip(tempo, 0.75, 1.3)) * self.tempo_scale
        plan = plan.with_tempo(tempo)
        y = render(plan, self.voice, self.rng).astype(np.float64)
        first, last = _sounding(y)
        if abs(tempo - 1.0) > 0.02:
            self.tempos.append(tempo)
        return y, text, first, last

    def _external(
        self, draw: Callable[[np.random.Generator], str], lo_s: float, hi_s: float
    ) -> tuple[np.ndarray, str, int, int]:
        """The same length fitting for a TTS engine or recorded prompts: say it, measure it,
        time-stretch with sox (0.75-1.3x), else try another text (a few times: engines are slow)."""
        assert isinstance(self.voice, ExternalVoice)
        best = None
        for _attempt in range(4):
            text = draw(self.rng)
            if "{digits}" in text:
                text = text.format(digits=texts.digits(self.rng))
            y = self.voice.say(text, self.rng)
            first, last = _sounding(y)
            dur = (last - first) / SR
            tempo = dur / float(np.clip(dur, lo_s, hi_s))
            if best is None or abs(np.log(tempo)) < abs(np.log(best[2])):
                best = (y, text, tempo)
            if 0.75 <= tempo <= 1.3:
                break
        assert best is not None
        y, text, tempo = best
        tempo = float(np.clip(tempo, 0.75, 1.3)) * self.tempo_scale
        if abs(tempo - 1.0) > 0.02:
            y = stretch(y, tempo)
            self.tempos.append(tempo)
        first, last = _sounding(y)
        return y, text, first, last

    def say(self, y: np.ndarray, text: str, sound_start: int, first: int, last: int, kind: str = "speech") -> int:
        """Place ``y`` so that its first sounding sample lands at ``sound_start``;
        -> the sample where its sound ends."""
        at = sound_start - first
        self.speech.append((at, y, text))
        self.parts.append(Part(kind, _ms(sound_start), _ms(at + last), text))
        return at + last

    # other sounds -------------------------------------------------------------------------
    def play(self, x: np.ndarray, at: int, kind: str, text: str = "") -> int:
        self.other.append((at, x))
        self.parts.append(Part(kind, _ms(at), _ms(at + len(x)), text))
        return at + len(x)

    def tracks(self, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        sp = np.zeros(n) if self.speech else None
        for at, y, _ in self.speech:
            _add(sp, y, at)
        ot = np.zeros(n) if self.other else None
        for at, x in self.other:
            _add(ot, x, at)
        return sp, ot


def _sounding(y: np.ndarray) -> tuple[int, int]:
    """First and last sounding sample (10 ms resolution, the label's own measure)."""
    act = np.nonzero(activity(bandpass(y), SILENCE_FLOOR_DB))[0]
    return (int(act[0]) * 80, (int(act[-1]) + 1) * 80) if len(act) else (0, len(y))


def _add(track: np.ndarray | None, x: np.ndarray, at: int) -> None:
    assert track is not None
    a, b = max(at, 0), min(at + len(x), len(track))
    if b > a:
        track[a:b] += x[a - at : b - at]


def _ms(samples: int) -> int:
    return int(round(samples * 1000 / SR))


def _s(seconds: float) -> int:
    return int(round(seconds * SR))


@dataclass
class _SpeechTimes:
    onset_ms: int | None
    first_end_ms: int | None
    last_end_ms: int | None
    runs: list[tuple[int, int]]  # utterances, ms


def measure_speech(speech: np.ndarray | None) -> _SpeechTimes:
    """The dev corpus's speech times from a clean speech track."""
    if speech is None or not np.any(speech):
        return _SpeechTimes(None, None, None, [])
    act = activity(bandpass(speech), SILENCE_FLOOR_DB)
    idx = np.nonzero(act)[0]
    if len(idx) == 0:
        return _SpeechTimes(None, None, None, [])
    runs: list[list[int]] = [[int(idx[0]), int(idx[0]) + 1]]
    for i in idx[1:]:
        if (i - runs[-1][1]) * 10 >= UTTERANCE_PAUSE_MS:
            runs.append([int(i), int(i) + 1])
        else:
            runs[-1][1] = int(i) + 1
    runs_ms = [(a * 10, b * 10) for a, b in runs]
    return _SpeechTimes(runs_ms[0][0], runs_ms[0][1], runs_ms[-1][1], runs_ms)


def _line(rng: np.random.Generator, opts: _Opts, duration_ms: int) -> LineConfig:
    cfg = LineConfig.random(rng, duration_ms)
    for key in ("noise", "snr_db", "level_dbfs", "hot", "clip_pct", "ulaw", "codec", "noise_dbfs", "full_scale_pct"):
        if key in opts.o:
            setattr(cfg, key, opts.o[key])
    if "hot" in opts.o and opts.o["hot"] and "level_dbfs" not in opts.o:
        cfg.level_dbfs = float(rng.uniform(-9, -3))
    if "dropouts" in opts.o:
        cfg.dropouts = list(opts.o["dropouts"] or [])
    return cfg


def _line_notes(cfg: LineConfig, res: LineResult, with_level: bool = True) -> list[str]:
    notes = [f"noise {cfg.noise}" if cfg.noise else "no line noise"]
    if cfg.noise and cfg.noise_dbfs is not None:
        notes[0] += f" at {cfg.noise_dbfs + res.gain_db:.0f} dBFS"
    if cfg.ulaw and cfg.codec != "ulaw":
        notes.append(f"codec {cfg.codec}")
    if with_level and res.speech_level_dbfs is not None:
        notes.append(f"level {res.speech_level_dbfs:.1f} dBFS")
    if res.clipped_pct > 0:
        notes.append(f"clipped {res.clipped_pct:.2f}%")
    if res.dropouts:
        notes.append("dropouts at " + " ".join(f"{a}+{b}" for a, b in res.dropouts) + " ms")
    return notes


def _finish(
    tl: _Timeline,
    n: int,
    opts: _Opts,
    *,
    category: str,
    truth: str,
    enable: str,
    dme: str,
    lead_notes: list[str],
    beep: tuple[Beep, int] | None = None,
    greeting_end_before: int | None = None,
    voice: bool = True,
    ref_dbfs: float | None = None,
    speech_times: bool = True,
) -> Clip:
    rng = tl.rng
    cfg = _line(rng, opts, _ms(n))
    sp, ot = tl.tracks(n)
    res = transmit(n, sp, ot, cfg, rng, ref_dbfs=ref_dbfs)
    times = measure_speech(sp) if speech_times else _SpeechTimes(None, None, None, [])
    notes = list(lead_notes)
    clip = Clip(
        samples=res.samples,
        category=category,
        truth=truth,
        expected_enable=enable,
        expected_dme=dme,
        speech_onset_ms=times.onset_ms,
        first_utterance_end_ms=times.first_end_ms,
        snr_db=float(round(cfg.snr_db, 1)) if cfg.noise else None,
        voice=tl.voice.name if (voice and sp is not None) else "",
        parts=tl.parts,
    )
    if greeting_end_before is not None:
        ends = [b for a, b in times.runs if a < _ms(greeting_end_before)]
        clip.greeting_end_ms = ends[-1] if ends else None
    if beep is not None:
        b, at = beep
        clip.beep_start_ms = _ms(at)
        clip.beep_end_ms = _ms(at + len(b.samples) - 1)
        clip.beep_hz = int(round(b.hz))
        notes.append(f"beep {b.description}")
        notes.append(f"beep level {b.level_dbfs + res.gain_db:.0f} dBFS")
        if res.speech_level_dbfs is not None:
            notes.append(f"beep {res.speech_level_dbfs - (b.level_dbfs + res.gain_db):.0f} dB under the speech")
    notes.extend(_line_notes(cfg, res))
    if res.speech_level_dbfs is None and ref_dbfs is not None:
        notes.insert(len(notes) - len(_line_notes(cfg, res)) + 1, f"level {ref_dbfs + res.gain_db:.1f} dBFS")
    if beep is not None and len(beep[0].freqs) > 1:
        notes.append("beep_freqs " + "/".join(f"{f:.0f}" for f in beep[0].freqs))
    if tl.tempos:
        notes.insert(0, "tempo " + ", ".join(f"x{t:.2f}" for t in tl.tempos))
    clip.notes = "; ".join(notes)
    return clip


def _voice(rng: np.random.Generator, opts: _Opts) -> Voice:
    voice: Voice = opts.get("voice", lambda: Voice.random(rng))
    return voice


def _timeline(rng: np.random.Generator, opts: _Opts) -> _Timeline:
    return _Timeline(rng, _voice(rng, opts), float(opts.o.get("tempo_scale", 1.0)))


def _after(rng: np.random.Generator, lo: float, hi: float) -> int:
    return _s(float(rng.uniform(lo, hi)))


# ---------------------------------------------------------------------------------------------
# People


def human_residential(rng: np.random.Generator, **overrides: Any) -> Clip:
    """A person at home: 0.2-1.5 s of line, a short "Hello?" (0.3-1.5 s, a few up to 2.3 s),
    then waiting; in ~40% a second "Hello?" 1.5-4 s later. 6-12 s in all.
    Own overrides: ``text``, ``length_s`` ((lo, hi) for the first words), ``second_hello``
    (bool), ``second_gap_s``, ``duration_s``."""
    opts = _Opts("human_residential", overrides, ("text", "length_s", "second_hello", "second_gap_s", "duration_s"))
    tl = _timeline(rng, opts)
    lead = _s(opts.get("lead_s", lambda: rng.uniform(0.2, 1.5)))
    long = rng.random() < 0.15
    text = opts.get("text", lambda: texts.HELLO_LONG if long else texts.HELLO)
    lo, hi = opts.get("length_s", lambda: (0.3, 2.3 if long else 1.5))
    y, said, a, b = tl.utterance(text, lo, hi)
    end = tl.say(y, said, lead, a, b)
    notes = [f"says [{said}]"]
    if opts.get("second_hello", lambda: rng.random() < 11 / 27):
        y2, said2, a2, b2 = tl.utterance(texts.HELLO_AGAIN, 0.3, 1.6)
        start2 = end + _s(opts.get("second_gap_s", lambda: rng.uniform(1.5, 4.0)))
        end = tl.say(y2, said2, start2, a2, b2)
        notes.append(f"again [{said2}] at {_ms(start2)}-{_ms(end)} ms")
    n = max(_s(opts.get("duration_s", lambda: rng.uniform(6, 12))), end + _s(rng.uniform(2.5, 4)))
    return _finish(tl, n, opts, category="human_residential", truth="human", enable="human", dme="human",
                   lead_notes=notes)


def human_business(rng: np.random.Generator, **overrides: Any) -> Clip:
    """A live person answering for a business: a 2.7-4 s greeting, then waiting; in ~20% a
    second "Hello?". Own overrides: ``text``, ``second_hello``, ``duration_s``."""
    opts = _Opts("human_business", overrides, ("text", "second_hello", "duration_s"))
    tl = _timeline(rng, opts)
    lead = _s(opts.get("lead_s", lambda: rng.uniform(0.2, 1.5)))
    y, said, a, b = tl.utterance(opts.get("text", lambda: texts.BUSINESS), 2.7, 4.0)
    end = tl.say(y, said, lead, a, b)
    notes = [f"says [{said}]"]
    if opts.get("second_hello", lambda: rng.random() < 5 / 27):
        y2, said2, a2, b2 = tl.utterance(texts.HELLO_AGAIN, 0.3, 1.6)
        start2 = end + _after(rng, 1.5, 4.0)
        end = tl.say(y2, said2, start2, a2, b2)
        notes.append(f"again [{said2}] at {_ms(start2)}-{_ms(end)} ms")
    n = max(_s(opts.get("duration_s", lambda: rng.uniform(6, 12))), end + _s(rng.uniform(2.5, 4)))
    return _finish(tl, n, opts, category="human_business", truth="human", enable="human", dme="human",
                   lead_notes=notes)


# ---------------------------------------------------------------------------------------------
# Machines


_BEEP_KEYS = ("beep_kind", "beep_hz", "beep_dur_s", "beep_level_dbfs")


def _beep(rng: np.random.Generator, opts: _Opts) -> Beep:
    return make_beep(
        rng,
        kind=opts.o.get("beep_kind"),
        hz=opts.o.get("beep_hz"),
        dur_s=opts.o.get("beep_dur_s"),
        level_dbfs=opts.o.get("beep_level_dbfs"),
    )


def _greeting_then_beep(
    rng: np.random.Generator, overrides: dict[str, Any], category: str, texts_: Any, lo: float, hi: float
) -> Clip:
    opts = _Opts(category, overrides, ("text", "gap_s", "after_s") + _BEEP_KEYS)
    tl = _timeline(rng, opts)
    lead = _s(opts.get("lead_s", lambda: rng.uniform(0.2, 1.5)))
    y, said, a, b = tl.utterance(opts.get("text", lambda: texts_), lo, hi)
    end = tl.say(y, said, lead, a, b)
    bp = _beep(rng, opts)
    at = end + _s(opts.get("gap_s", lambda: rng.uniform(0.2, 1.5)))
    stop = tl.play(bp.samples, at, "beep", bp.description)
    n = stop + _s(opts.get("after_s", lambda: rng.uniform(2, 4)))
    return _finish(tl, n, opts, category=category, truth="machine", enable="machine_start", dme="machine_end_beep",
                   lead_notes=[f"greeting [{said}]"], beep=(bp, at), greeting_end_before=at)


def machine_personal(rng: np.random.Generator, **overrides: Any) -> Clip:
    """A personal voicemail greeting (1.8-5 s), a 0.2-1.5 s gap, a beep, 2-4 s of line.
    Own overrides: ``text``, ``gap_s``, ``after_s``, ``beep_kind``, ``beep_hz``, ``beep_dur_s``,
    ``beep_level_dbfs``."""
    return _greeting_then_beep(rng, overrides, "machine_personal", texts.PERSONAL, 1.8, 5.0)


def machine_carrier(rng: np.random.Generator, **overrides: Any) -> Clip:
    """A long carrier/system greeting (8-13 s, often with a number read out), then a beep.
    Own overrides as machine_personal."""
    return _greeting_then_beep(rng, overrides, "machine_carrier", texts.carrier, 8.0, 13.0)


def machine_short(rng: np.random.Generator, **overrides: Any) -> Clip:
    """A very short greeting (0.8-2 s), a 1.2-2.4 s pause, in ~half a second short phrase
    ("Thanks."), then a beep. Own overrides: ``text``, ``second`` (bool), ``pause_s``,
    ``gap_s``, ``after_s``, beep settings."""
    opts = _Opts("machine_short", overrides, ("text", "second", "pause_s", "gap_s", "after_s") + _BEEP_KEYS)
    tl = _timeline(rng, opts)
    lead = _s(opts.get("lead_s", lambda: rng.uniform(0.2, 1.5)))
    y, said, a, b = tl.utterance(opts.get("text", lambda: texts.SHORT), 0.8, 2.0)
    end = tl.say(y, said, lead, a, b)
    notes = [f"greeting [{said}]"]
    pause = _s(opts.get("pause_s", lambda: rng.uniform(1.2, 2.4)))
    if opts.get("second", lambda: rng.random() < 14 / 27):
        y2, said2, a2, b2 = tl.utterance(texts.SHORT_SECOND, 0.25, 0.9)
        end = tl.say(y2, said2, end + pause, a2, b2)
        notes.append(f"then [{said2}]")
        at = end + _s(opts.get("gap_s", lambda: rng.uniform(0.2, 1.0)))
    else:
        at = end + pause
    bp = _beep(rng, opts)
    stop = tl.play(bp.samples, at, "beep", bp.description)
    n = stop + _s(opts.get("after_s", lambda: rng.uniform(2, 4)))
    return _finish(tl, n, opts, category="machine_short", truth="machine", enable="machine_start",
                   dme="machine_end_beep", lead_notes=notes, beep=(bp, at), greeting_end_before=at)


def machine_no_beep(rng: np.random.Generator, **overrides: Any) -> Clip:
    """A greeting and no beep: then 5-8 s of silence (machine_end_silence) or, in ~30%, music
    or other audio (machine_end_other). Own overrides: ``text``, ``end`` ("silence" or
    "music"), ``tail_s``."""
    opts = _Opts("machine_no_beep", overrides, ("text", "end", "tail_s"))
    tl = _timeline(rng, opts)
    end_kind = opts.get("end", lambda: "music" if rng.random() < 8 / 27 else "silence")
    if end_kind not in ("silence", "music"):
        raise ValueError("end must be 'silence' or 'music'")
    lead = _s(opts.get("lead_s", lambda: rng.uniform(0.2, 1.5)))
    pool = texts.NO_BEEP_MUSIC if end_kind == "music" else texts.NO_BEEP_SILENCE
    y, said, a, b = tl.utterance(opts.get("text", lambda: pool), 2.0, 6.0)
    end = tl.say(y, said, lead, a, b)
    tail = _s(opts.get("tail_s", lambda: rng.uniform(5, 8)))
    notes = [f"greeting [{said}]"]
    if end_kind == "music":
        at = end + _after(rng, 0.2, 1.0)
        m = level(music(rng, tail / SR), float(rng.uniform(-24, -12)))
        stop = tl.play(m, at, "music", "synthesised chords")
        notes.append(f"synthesised music (chords, {tail / SR:.1f} s) after the greeting, no beep")
        n = stop
        dme = "machine_end_other"
    else:
        notes.append("silence after the greeting, no beep")
        n = end + tail
        dme = "machine_end_silence"
    return _finish(tl, n, opts, category="machine_no_beep", truth="machine", enable="machine_start", dme=dme,
                   lead_notes=notes, greeting_end_before=n)


def machine_multi_gap(rng: np.random.Generator, **overrides: Any) -> Clip:
    """A greeting of 3-4 phrases with 0.8-2.5 s pauses ("Hello?" ... "Ha, got you, I'm not
    here." ... "Leave a message."), then a beep. Own overrides: ``phrases`` (list of texts),
    ``gap_s``, ``after_s``, beep settings."""
    opts = _Opts("machine_multi_gap", overrides, ("phrases", "gap_s", "after_s") + _BEEP_KEYS)
    tl = _timeline(rng, opts)
    k = 4 if rng.random() < 0.35 else 3
    phrases = opts.get("phrases", lambda: [texts.pick(rng, texts.MULTI_GAP[i]) for i in range(k)])
    pos = _s(opts.get("lead_s", lambda: rng.uniform(0.2, 1.5)))
    said_all, pauses = [], []
    end = pos
    for i, ph in enumerate(phrases):
        lo, hi = (0.3, 1.2) if i == 0 else (0.6, 3.5)
        y, said, a, b = tl.utterance(ph, lo, hi)
        end = tl.say(y, said, pos, a, b)
        said_all.append(said)
        if i < len(phrases) - 1:
            p = float(rng.uniform(0.8, 2.5))
            pauses.append(p)
            pos = end + _s(p)
    bp = _beep(rng, opts)
    at = end + _s(opts.get("gap_s", lambda: rng.uniform(0.2, 1.5)))
    stop = tl.play(bp.samples, at, "beep", bp.description)
    n = stop + _s(opts.get("after_s", lambda: rng.uniform(2, 4)))
    notes = [f"greeting [{' / '.join(said_all)}], pauses " + ", ".join(f"{p:.2f}" for p in pauses) + " s"]
    return _finish(tl, n, opts, category="machine_multi_gap", truth="machine", enable="machine_start",
                   dme="machine_end_beep", lead_notes=notes, beep=(bp, at), greeting_end_before=at)


# ---------------------------------------------------------------------------------------------
# Fax, nobody, and the extras


def fax(rng: np.random.Generator, **overrides: Any) -> Clip:
    """A fax machine answering: V.25 answer tone at 2100 Hz for 2.6-4 s (ANS, ANS/, ANSam,
    ANSam/), 75 ms of quiet, then ~1 s V.21 HDLC flag/frame bursts (1650/1850 Hz, 300 baud)
    about every 3 s. speech_onset_ms / first_utterance_end_ms are the answer tone's start and
    end. Own overrides: ``variant``, ``hz``, ``ans_s``, ``duration_s``, ``tone_dbfs``."""
    opts = _Opts("fax", overrides, ("variant", "hz", "ans_s", "duration_s", "tone_dbfs"))
    tl = _Timeline(rng, Voice.random(rng))
    lead = _s(opts.get("lead_s", lambda: rng.uniform(0.3, 2.0)))
    ans, variant, hz = fax_answer_tone(rng, opts.o.get("variant"), opts.o.get("hz"), opts.o.get("ans_s"))
    tone_db = float(opts.get("tone_dbfs", lambda: rng.uniform(-22, -9)))
    ans = level(ans, tone_db)
    end = tl.play(ans, lead, "fax_ans", f"{variant} {hz:.0f} Hz")
    n = max(_s(opts.get("duration_s", lambda: rng.uniform(7.5, 13))), end + _s(1.5))
    pos = end + _s(0.075)
    bursts = 0
    while pos < n - _s(0.5):
        burst = level(v21_burst(rng), tone_db + float(rng.uniform(-2, 1)))
        tl.play(burst[: n - pos], pos, "v21", "HDLC flags")
        bursts += 1
        pos += _s(rng.uniform(2.8, 3.2))
    clip = _finish(tl, n, opts, category="fax", truth="fax", enable="fax", dme="fax",
                   lead_notes=[f"fax {variant} {hz:.0f} Hz {len(ans) / SR:.2f} s, "
                               f"then {bursts} V.21 flag/frame bursts"],
                   voice=False, ref_dbfs=tone_db, speech_times=False)
    clip.speech_onset_ms = _ms(lead)
    clip.first_utterance_end_ms = _ms(end)
    return clip


def silence(rng: np.random.Generator, **overrides: Any) -> Clip:
    """Nobody: dead air (digital zero) or line/comfort noise only, 4-35 s.
    Own overrides: ``digital`` (bool), ``duration_s``, ``noise_dbfs``."""
    opts = _Opts("silence", overrides, ("digital", "duration_s", "noise_dbfs"))
    n = _s(opts.get("duration_s", lambda: rng.uniform(4, 35)))
    digital = opts.get("digital",
                       lambda: (opts.o.get("noise", "") is None) or ("noise" not in opts.o and rng.random() < 5 / 27))
    if digital:
        samples = np.zeros(n, dtype=np.int16)
        return Clip(samples, "silence", "nobody", "unknown", "unknown", notes="dead air (digital silence)")
    noise_db = float(opts.get("noise_dbfs", lambda: rng.uniform(-80, -45)))
    o = dict(opts.o)
    o.setdefault("noise", str(rng.choice(["white", "pink", "brown", "hum60", "street_steps"])))
    o["level_dbfs"] = noise_db
    o["hot"] = False
    o.setdefault("clip_pct", 0.0)
    opts2 = _Opts("silence", o, ("digital", "duration_s", "noise_dbfs"))
    cfg = _line(rng, opts2, _ms(n))
    res = transmit(n, None, None, cfg, rng)
    notes = [f"line noise {cfg.noise} at {noise_db + res.gain_db:.0f} dBFS"]
    if res.dropouts:
        notes.append("dropouts at " + " ".join(f"{a}+{b}" for a, b in res.dropouts) + " ms")
    return Clip(res.samples, "silence", "nobody", "unknown", "unknown", notes="; ".join(notes))


def sit_message(rng: np.random.Generator, **overrides: Any) -> Clip:
    """Not in the dev corpus. Special information tones (913.8/1370.6/1776.7 Hz, 274-380 ms
    segments) then a recorded message ("The number you have dialed is not in service...").
    truth "sit", expected unknown. speech_onset_ms / first_utterance_end_ms are the SIT's start
    and end (like the fax's answer tone); greeting_end_ms is the end of the message.
    Own overrides: ``code``, ``text``, ``message`` (bool), ``tone_dbfs``."""
    opts = _Opts("sit", overrides, ("code", "text", "message", "tone_dbfs", "tail_s"))
    tl = _timeline(rng, opts)
    lead = _s(opts.get("lead_s", lambda: rng.uniform(0.2, 1.2)))
    x, code = sit(rng, opts.o.get("code"))
    tone_db = float(opts.get("tone_dbfs", lambda: rng.uniform(-24, -12)))
    end_tone = tl.play(level(x, tone_db), lead, "sit", code)
    notes = [f"SIT {code} at {_ms(lead)}-{_ms(end_tone)} ms"]
    end = end_tone
    if opts.get("message", lambda: rng.random() < 0.9):
        y, said, a, b = tl.utterance(opts.get("text", lambda: texts.SIT_MESSAGE), 2.5, 7.0)
        end = tl.say(y, said, end_tone + _after(rng, 0.1, 0.6), a, b)
        notes.append(f"then [{said}]")
    n = end + _s(opts.get("tail_s", lambda: rng.uniform(1.0, 3.0)))
    clip = _finish(tl, n, opts, category="sit", truth="sit", enable="unknown", dme="unknown", lead_notes=notes,
                   ref_dbfs=tone_db, greeting_end_before=n)
    clip.speech_onset_ms = _ms(lead)
    clip.first_utterance_end_ms = _ms(end_tone)
    return clip


def ringback_then_human(rng: np.random.Generator, **overrides: Any) -> Clip:
    """Not in the dev corpus. Ringback (440+480 Hz, 2 s on / 4 s off) heard after the answer
    (a PBX or forwarding still ringing the person), then a person says hello. truth human.
    A beep detector must not fire on the ringback. Own overrides: ``rings`` (1-3), ``text``,
    ``tone_dbfs``."""
    opts = _Opts("ringback_then_human", overrides, ("rings", "text", "tone_dbfs", "duration_s"))
    tl = _timeline(rng, opts)
    lead = _s(opts.get("lead_s", lambda: rng.uniform(0.0, 0.5)))
    rings = int(opts.get("rings", lambda: int(rng.integers(1, 3))))
    tone_db = float(opts.get("tone_dbfs", lambda: rng.uniform(-24, -12)))
    phase = float(rng.uniform(0, 0.8)) if lead == 0 else 0.0
    on_total = rings * 6.0 - 4.0 - phase  # the last ring's end
    rb = ringback(on_total, phase_s=phase)
    rb = level(rb, tone_db)
    tl.play(rb, lead, "ringback", "440+480 Hz")
    ring_parts = []
    for r in range(rings):
        a = max(0.0, r * 6.0 - phase)
        ring_parts.append(f"{_ms(lead + _s(a))}-{_ms(lead + _s(r * 6.0 - phase + 2.0))}")
    start = lead + len(rb) + _after(rng, 0.3, 2.5)
    pool = texts.HELLO_LONG if rng.random() < 0.15 else texts.HELLO
    y, said, a, b = tl.utterance(opts.get("text", lambda: pool), 0.3, 1.5)
    end = tl.say(y, said, start, a, b)
    n = max(_s(opts.get("duration_s", lambda: rng.uniform(6, 12))), end + _s(rng.uniform(2.5, 4)))
    return _finish(tl, n, opts, category="ringback_then_human", truth="human", enable="human", dme="human",
                   lead_notes=[f"ringback 440+480 Hz at {', '.join(ring_parts)} ms", f"says [{said}]"])


def attendant_ringback(rng: np.random.Generator, **overrides: Any) -> Clip:
    """Not in the dev corpus. A person says "Please hold while I connect you." (1.2-3 s), then
    ringback is heard (440+480 Hz 2 s on / 4 s off, or 400+450 Hz 0.4/0.2/0.4 s on, 2 s off)
    for 2-4 cycles and nobody else answers within the clip. truth human (a live attendant);
    the ringback must never be taken for a beep. Own overrides: ``text``, ``kind`` ("us" or
    "uk"), ``rings``, ``tone_dbfs``."""
    opts = _Opts("attendant_ringback", overrides, ("text", "kind", "rings", "tone_dbfs"))
    tl = _timeline(rng, opts)
    lead = _s(opts.get("lead_s", lambda: rng.uniform(0.2, 1.0)))
    y, said, a, b = tl.utterance(opts.get("text", lambda: texts.ATTENDANT), 1.2, 3.0)
    end = tl.say(y, said, lead, a, b)
    kind = opts.get("kind", lambda: "us" if rng.random() < 0.5 else "uk")
    rings = int(opts.get("rings", lambda: int(rng.integers(2, 5))))
    tone_db = float(opts.get("tone_dbfs", lambda: rng.uniform(-24, -12)))
    cycle = 6.0 if kind == "us" else 3.0
    dur = rings * cycle - (4.0 if kind == "us" else 2.0)
    rb = level(ringback(dur) if kind == "us" else uk_ringback(dur), tone_db)
    at = end + _after(rng, 0.3, 1.5)
    stop = tl.play(rb, at, "ringback", "440+480 Hz" if kind == "us" else "400+450 Hz")
    n = stop + _s(rng.uniform(1.0, 2.5))
    desc = "440+480 Hz 2/4 s" if kind == "us" else "400+450 Hz 0.4/0.2/0.4/2 s"
    return _finish(tl, n, opts, category="attendant_ringback", truth="human", enable="human", dme="human",
                   lead_notes=[f"says [{said}]", f"then ringback {desc}, {rings} rings from {_ms(at)} ms"],
                   ref_dbfs=None)


def machine_hold_beep(rng: np.random.Generator, **overrides: Any) -> Clip:
    """Not in the dev corpus. A greeting (2-5 s), hold music (2-6 s), then a beep: the music
    must not end detection, the beep must. Own overrides: ``text``, ``music_s``, ``gap_s``,
    ``after_s``, beep settings."""
    opts = _Opts("machine_hold_beep", overrides, ("text", "music_s", "gap_s", "after_s") + _BEEP_KEYS)
    tl = _timeline(rng, opts)
    lead = _s(opts.get("lead_s", lambda: rng.uniform(0.2, 1.5)))
    y, said, a, b = tl.utterance(opts.get("text", lambda: texts.PERSONAL), 2.0, 5.0)
    end = tl.say(y, said, lead, a, b)
    m_at = end + _after(rng, 0.2, 1.0)
    m_s = float(opts.get("music_s", lambda: rng.uniform(2.0, 6.0)))
    m = level(music(rng, m_s), float(rng.uniform(-26, -14)))
    stop = tl.play(m, m_at, "music", "synthesised chords")
    bp = _beep(rng, opts)
    at = stop + _s(opts.get("gap_s", lambda: rng.uniform(0.2, 0.8)))
    stop = tl.play(bp.samples, at, "beep", bp.description)
    n = stop + _s(opts.get("after_s", lambda: rng.uniform(2, 4)))
    return _finish(tl, n, opts, category="machine_hold_beep", truth="machine", enable="machine_start",
                   dme="machine_end_beep", lead_notes=[f"greeting [{said}]", f"hold music {m_s:.1f} s, then the beep"],
                   beep=(bp, at), greeting_end_before=m_at)


def fax_calling(rng: np.random.Generator, **overrides: Any) -> Clip:
    """Not in the dev corpus and not in the default set: a *calling* fax's CNG (1100 Hz, 0.5 s
    on / 3 s off), as heard when a fax machine dials into us. truth fax."""
    opts = _Opts("fax_calling", overrides, ("duration_s", "tone_dbfs"))
    tl = _Timeline(rng, Voice.random(rng))
    lead = _s(opts.get("lead_s", lambda: rng.uniform(0.2, 1.5)))
    n = _s(opts.get("duration_s", lambda: rng.uniform(7, 12)))
    tone_db = float(opts.get("tone_dbfs", lambda: rng.uniform(-22, -10)))
    x = level(cng((n - lead) / SR), tone_db)
    tl.play(x, lead, "cng", "1100 Hz")
    clip = _finish(tl, n, opts, category="fax_calling", truth="fax", enable="fax", dme="fax",
                   lead_notes=["fax CNG 1100 Hz, 0.5 s on / 3 s off"], voice=False, ref_dbfs=tone_db,
                   speech_times=False)
    clip.speech_onset_ms = _ms(lead)
    clip.first_utterance_end_ms = _ms(lead + _s(0.5))
    return clip


# ---------------------------------------------------------------------------------------------

DEV_CATEGORIES = (
    "human_residential", "human_business", "machine_personal", "machine_carrier", "machine_short",
    "machine_no_beep", "machine_multi_gap", "fax", "silence",
)
EXTRA_CATEGORIES = ("sit", "ringback_then_human")
# made only when asked for by name (the families use them)
MORE_CATEGORIES = ("attendant_ringback", "machine_hold_beep", "fax_calling")
DEFAULT_CATEGORIES = DEV_CATEGORIES + EXTRA_CATEGORIES

SCENES: dict[str, Callable[..., Clip]] = {
    "human_residential": human_residential,
    "human_business": human_business,
    "machine_personal": machine_personal,
    "machine_carrier": machine_carrier,
    "machine_short": machine_short,
    "machine_no_beep": machine_no_beep,
    "machine_multi_gap": machine_multi_gap,
    "fax": fax,
    "silence": silence,
    "sit": sit_message,
    "ringback_then_human": ringback_then_human,
    "fax_calling": fax_calling,
    "attendant_ringback": attendant_ringback,
    "machine_hold_beep": machine_hold_beep,
}


def make_clip(category: str, rng: np.random.Generator | int, **overrides: Any) -> Clip:
    """One clip of ``category`` (a key of SCENES); ``rng`` may be a seed."""
    if category not in SCENES:
        raise ValueError(f"unknown category {category!r}; one of {', '.join(SCENES)}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    return SCENES[category](rng, **overrides)


__all__ = [
    "Clip", "Part", "LABEL_COLUMNS", "SCENES", "DEV_CATEGORIES", "EXTRA_CATEGORIES", "DEFAULT_CATEGORIES",
    "make_clip", "measure_speech", "db", "rms",
] + list(SCENES)

"""The options an admin writes in `Stasis(ari-amd,...)`: what AMD() took as arguments.

    Stasis(ari-amd)                                   sync, Enable, Twilio's defaults
    Stasis(ari-amd,mode=DetectMessageEnd)             sync; wait for the end of the greeting
    Stasis(ari-amd,async,callback=https://x/amd)      return at once; POST the verdict there
    Stasis(ari-amd,sync,timeout=20,speech_threshold=3000,speech_end_threshold=1500,silence_timeout=4000)

Words: `sync` / `async`. Keys (case-insensitive, Twilio's names accepted too): mode
(MachineDetection), timeout (MachineDetectionTimeout, s), speech_threshold, speech_end_threshold,
silence_timeout (ms), callback (AsyncAmdStatusCallback), callback_method (POST or GET).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ari_amd.detect import AmdParams, Mode, ParameterError

ALIASES = {
    "mode": "mode",
    "machinedetection": "mode",
    "timeout": "timeout",
    "machinedetectiontimeout": "timeout",
    "speech_threshold": "speech_threshold",
    "machinedetectionspeechthreshold": "speech_threshold",
    "speech_end_threshold": "speech_end_threshold",
    "machinedetectionspeechendthreshold": "speech_end_threshold",
    "silence_timeout": "silence_timeout",
    "machinedetectionsilencetimeout": "silence_timeout",
    "beep_timeout": "beep_timeout",
    "machinedetectionbeeptimeout": "beep_timeout",
    "callback": "callback",
    "asyncamdstatuscallback": "callback",
    "callback_method": "callback_method",
    "asyncamdstatuscallbackmethod": "callback_method",
}
INTEGER_KEYS = {
    "timeout": "MachineDetectionTimeout",
    "speech_threshold": "MachineDetectionSpeechThreshold",
    "speech_end_threshold": "MachineDetectionSpeechEndThreshold",
    "silence_timeout": "MachineDetectionSilenceTimeout",
    "beep_timeout": "MachineDetectionBeepTimeout",
}


@dataclass(frozen=True)
class StasisOptions:
    params: AmdParams
    async_amd: bool = False
    callback_url: str | None = None
    callback_method: str = "POST"


def check_callback_url(url: str, name: str = "callback") -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ParameterError(name, url, "an absolute http(s) URL")
    return url


def parse_stasis_args(args: tuple[str, ...] | list[str]) -> StasisOptions:
    """Raises ParameterError naming the first bad option."""
    async_amd = False
    values: dict[str, str] = {}
    for raw in args:
        arg = raw.strip()
        if not arg:
            continue
        word = arg.lower()
        if word in ("sync", "async"):
            async_amd = word == "async"
            continue
        key, sep, value = arg.partition("=")
        name = ALIASES.get(key.strip().lower())
        if not sep or name is None:
            raise ParameterError(key.strip() or arg, value if sep else arg,
                                 "sync, async or one of " + ", ".join(sorted(set(ALIASES.values()))) + "=value")
        values[name] = value.strip()
    kwargs: dict[str, object] = {}
    if "mode" in values:
        kwargs["mode"] = Mode.parse(values["mode"])
    for name, twilio in INTEGER_KEYS.items():
        if name in values:
            try:
                number = int(values[name])
            except ValueError:
                raise ParameterError(twilio, values[name], "an integer") from None
            kwargs[f"{name}_ms"] = number * 1000 if name == "timeout" else number
    if "timeout_ms" in kwargs and not 3 <= int(values["timeout"]) <= 59:  # in the admin's unit
        raise ParameterError("MachineDetectionTimeout", values["timeout"], "3-59 s")
    params = AmdParams(**kwargs)  # type: ignore[arg-type]
    callback = check_callback_url(values["callback"]) if "callback" in values else None
    method = values.get("callback_method", "POST").upper()
    if method not in ("POST", "GET"):
        raise ParameterError("callback_method", method, "POST or GET")
    return StasisOptions(params, async_amd, callback, method)

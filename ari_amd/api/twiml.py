"""A small TwiML (and Plivo XML) interpreter: the verbs AMD users answer a verdict with.

<Hangup/>, <Reject/>, <Pause length>, <Play loop digits> (an Asterisk sound, an http(s) file, or
an Asterisk media URI), <Redirect method>, <Dial timeout action method> to a number / <Number> /
<Sip>. <Say> has no text-to-speech here: it is logged and skipped, like any verb we do not know.
As in Twilio, the end of the document hangs up. A document that does not parse, or a fetch that
fails, hangs up with the error logged; nothing here raises into the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from ari_amd.api.errors import plain_traceback
from ari_amd.calls.model import Call, Engine

# (url, method, extra params) -> (document, the URL it came from, for relative URLs in it)
Fetch = Callable[[str, str, Mapping[str, str]], Awaitable[tuple[str, str]]]

MAX_DOCUMENTS = 50  # Redirect chains per run: a document redirecting to itself ends, not loops forever
MAX_LOOP = 1000  # Twilio's cap for <Play loop="0">
_MEDIA_SCHEMES = ("sound:", "tone:", "digits:", "recording:", "number:", "characters:")
_SOUND = re.compile(r"^[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+)*$")
# Plivo XML names for the same things
ALIASES = {"Speak": "Say", "Wait": "Pause", "User": "Sip", "PreAnswer": "Skip"}


class TwimlError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Verb:
    name: str
    attrs: Mapping[str, str] = field(default_factory=dict)
    text: str = ""
    children: tuple[Verb, ...] = ()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _verb(el: ET.Element) -> Verb:
    name = _local(el.tag)
    name = ALIASES.get(name, name)
    return Verb(name, dict(el.attrib), (el.text or "").strip(), tuple(_verb(c) for c in el))


def parse(document: str | bytes) -> list[Verb]:
    """The verbs of a <Response>; TwimlError if it is not one."""
    text = document.decode("utf-8", "replace") if isinstance(document, bytes) else document
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise TwimlError("DOCTYPE/ENTITY declarations are not accepted")  # no entity expansion tricks
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as e:
        raise TwimlError(f"not XML: {e}") from None
    if _local(root.tag) != "Response":
        raise TwimlError(f"the root element is <{_local(root.tag)}>, not <Response>")
    return [_verb(c) for c in root]


def media_uri(target: str) -> str | None:
    """What <Play> names, as an Asterisk media URI; None when it names nothing we can play."""
    t = target.strip()
    if t.startswith(_MEDIA_SCHEMES):
        return t
    if t.startswith(("http://", "https://")):
        return "sound:" + t  # Asterisk fetches and caches it (res_http_media_cache)
    if _SOUND.match(t):
        return "sound:" + t
    return None


@dataclass(frozen=True, slots=True)
class _Next:
    """Go on with another document."""

    url: str
    method: str
    extra: Mapping[str, str] = field(default_factory=dict)


_STOP = object()


def _int_attr(v: Verb, name: str, default: int, lo: int, hi: int) -> int:
    raw = v.attrs.get(name)
    if raw is None:
        return default
    try:
        return max(lo, min(hi, int(raw)))
    except ValueError:
        return default


class TwimlRunner:
    """Runs documents against one held call through the engine's control methods."""

    def __init__(
        self,
        engine: Engine,
        call: Call,
        *,
        fetch: Fetch,
        endpoint_for: Callable[[str], str],
        dial_status_param: str = "DialCallStatus",
        url_refused: Callable[[str], str | None] = lambda _: None,
    ) -> None:
        self.engine = engine
        # why a <Play> URL is refused (the URL policy), or None: Asterisk fetches it, so only its
        # literal host can be checked here
        self.url_refused = url_refused
        self.call = call
        self.fetch = fetch
        self.endpoint_for = endpoint_for
        self.dial_status_param = dial_status_param
        self.log = call.log.bind(component="twiml")

    async def run_url(self, url: str, method: str = "POST", extra: Mapping[str, str] | None = None) -> None:
        await self._run(_Next(url, method, dict(extra or {})), None)

    async def run_document(self, document: str, base_url: str = "") -> None:
        await self._run(None, (document, base_url))

    async def _run(self, nxt: _Next | None, doc: tuple[str, str] | None) -> None:
        try:
            for _ in range(MAX_DOCUMENTS):
                if self.call.ended:
                    return
                if doc is None:
                    assert nxt is not None
                    try:
                        doc = await self.fetch(nxt.url, nxt.method, nxt.extra)
                    except Exception as e:  # noqa: BLE001 - any failure to fetch ends the call, as Twilio does
                        self.log.error("twiml_fetch_failed", error=str(e) or type(e).__name__)
                        await self.engine.hangup(self.call)
                        return
                document, base = doc
                try:
                    verbs = parse(document)
                except TwimlError as e:
                    self.log.error("twiml_malformed", error=str(e))
                    await self.engine.hangup(self.call)
                    return
                outcome = await self._verbs(verbs, base)
                if outcome is _STOP:
                    return
                if isinstance(outcome, _Next):
                    nxt, doc = outcome, None
                    continue
                break  # end of the document
            else:
                self.log.warning("twiml_too_many_documents", limit=MAX_DOCUMENTS)
            if not self.call.ended:
                await self.engine.hangup(self.call)
        except asyncio.CancelledError:
            raise  # a new Url from the API replaces this run
        except Exception:
            self.log.error("twiml_failed", exception=plain_traceback())
            await self.engine.hangup(self.call)

    async def _verbs(self, verbs: list[Verb], base: str) -> object:
        for v in verbs:
            if self.call.ended:
                return _STOP
            outcome = await self._one(v, base)
            if outcome is not None:
                return outcome
        return None

    async def _one(self, v: Verb, base: str) -> object:
        if v.name in ("Hangup", "Reject"):
            self.log.info("twiml_hangup", verb=v.name)
            await self.engine.hangup(self.call)
            return _STOP
        if v.name == "Pause":
            length = _int_attr(v, "length", 1, 0, 600)
            with contextlib.suppress(TimeoutError):
                await self.call.wait_ended(timeout=length)
            return None
        if v.name == "Play":
            await self._play(v)
            return None
        if v.name == "Redirect":
            if not v.text:
                self.log.warning("twiml_redirect_without_url")
                return None
            return _Next(urllib.parse.urljoin(base, v.text), (v.attrs.get("method") or "POST").upper())
        if v.name == "Dial":
            return await self._dial(v, base)
        if v.name == "Say":
            self.log.info("twiml_say_skipped", chars=len(v.text))  # no TTS engine behind us
            return None
        self.log.warning("twiml_verb_skipped", verb=v.name)
        return None

    async def _play(self, v: Verb) -> None:
        digits = v.attrs.get("digits")
        if digits is not None:
            clean = re.sub(r"[^0-9*#A-Da-d]", "", digits)  # Twilio's 'w' (half-second wait) has no ARI form
            media = "digits:" + clean if clean else None
        else:
            media = media_uri(v.text)
        if media is None:
            self.log.warning("twiml_play_skipped", reason="nothing playable named")
            return None
        if media.startswith(("sound:http://", "sound:https://")):
            refused = self.url_refused(media.removeprefix("sound:"))
            if refused is not None:
                self.log.warning("twiml_play_refused", reason=refused)
                return None
        loops = _int_attr(v, "loop", 1, 0, MAX_LOOP) or MAX_LOOP
        for _ in range(loops):
            if self.call.ended:
                break
            await self.engine.play(self.call, media)
        return None

    async def _dial(self, v: Verb, base: str) -> object:
        targets = [c.text for c in v.children if c.name in ("Number", "Sip") and c.text] or ([v.text] if v.text else [])
        skipped = [c.name for c in v.children if c.name not in ("Number", "Sip")]
        if skipped:
            self.log.warning("twiml_dial_nouns_skipped", nouns=skipped)
        if not targets:
            self.log.warning("twiml_dial_without_target")
            return None
        if len(targets) > 1:
            self.log.warning("twiml_dial_first_only", targets=len(targets))  # no simultaneous ring here
        try:
            endpoint = self.endpoint_for(targets[0])
        except Exception as e:  # noqa: BLE001 - ApiError from the endpoint rules
            self.log.warning("twiml_dial_invalid", error=str(e))
            return None
        timeout = _int_attr(v, "timeout", 30, 5, 600)
        self.log.info("twiml_dial", endpoint=endpoint, timeout_s=timeout)
        status = await self.engine.dial(self.call, endpoint, timeout)
        action = v.attrs.get("action")
        if action:
            method = (v.attrs.get("method") or "POST").upper()
            return _Next(urllib.parse.urljoin(base, action), method, {self.dial_status_param: status})
        return None

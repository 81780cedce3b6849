"""ARI's REST half: typed methods over one aiohttp.ClientSession with Basic auth.

Only the calls ari-amd makes are here, each named for what it does, with Asterisk's parameter
names spelled once in this module. Errors come back as AriError carrying Asterisk's message.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import structlog

from ari_amd.ari.errors import AriConnectionError, AriError
from ari_amd.ari.models import Bridge, Channel

DEFAULT_URL = "http://127.0.0.1:8088"
DEFAULT_TIMEOUT_S = 10.0  # one REST call; Asterisk answers in milliseconds when healthy
ARI_PATH = "/ari"

log = structlog.get_logger(__name__)

Params = Mapping[str, str | int | float | bool | Sequence[str] | None]


def _q(segment: str) -> str:
    # Ids are ours or Asterisk's, but a '/' or '?' in one must not reach another resource.
    return quote(segment, safe="")


def _query(params: Params | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (params or {}).items():
        if v is None:
            continue
        if isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, str):
            out[k] = v
        elif isinstance(v, (int, float)):
            out[k] = str(v)
        else:
            out[k] = ",".join(v)  # ARI's allowMultiple parameters are comma-separated
    return out


def _join(values: str | Sequence[str] | None) -> str | None:
    if values is None or isinstance(values, str):
        return values
    return ",".join(values)


def _error_message(body: Any, text: str) -> str:
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return text.strip()[:200]


class AriClient:
    """REST client for one Asterisk. Use as `async with AriClient(url, user, password) as ari:`."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        username: str = "",
        password: str = "",
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"ARI url must be http(s)://host:port, got {url!r}")
        path = parts.path if parts.path.endswith(ARI_PATH) else parts.path + ARI_PATH
        self.base_url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self.username = username
        # Built once and kept private: the password appears nowhere else (not in URLs, not in repr).
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._auth_headers = {"Authorization": f"Basic {token}"}
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None

    def __repr__(self) -> str:  # never the password
        return f"AriClient({self.base_url!r}, user={self.username!r})"

    @property
    def auth_headers(self) -> dict[str, str]:
        """The Authorization header, for the events websocket's handshake."""
        return dict(self._auth_headers)

    @property
    def events_url(self) -> str:
        """The events websocket URL (no credentials in it)."""
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path + "/events", "", ""))

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- transport -----------------------------------------------------------------------------
    async def request(
        self, method: str, path: str, *, params: Params | None = None, body: Mapping[str, Any] | None = None
    ) -> Any:
        """One REST call; returns the decoded JSON (None for 204). Raises AriError."""
        url = self.base_url + path
        started = time.monotonic()
        try:
            async with self.session.request(
                method, url, params=_query(params), json=body, headers=self._auth_headers, timeout=self.timeout
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise AriConnectionError(method, path, f"{type(e).__name__}: {e}") from e
        ms = round((time.monotonic() - started) * 1000, 1)
        decoded: Any = None
        if text:
            try:
                decoded = json.loads(text)
            except ValueError:
                decoded = None
        if status >= 400:
            message = _error_message(decoded, text)
            log.debug("ari_request_failed", method=method, path=path, status=status, message=message, ms=ms)
            raise AriError(status, method, path, message)
        log.debug("ari_request", method=method, path=path, status=status, ms=ms)
        return decoded

    # -- asterisk & applications --------------------------------------------------------------
    async def info(self) -> dict[str, Any]:
        """GET /asterisk/info: build, system, config and status of this Asterisk."""
        result = await self.request("GET", "/asterisk/info")
        return result if isinstance(result, dict) else {}

    async def get_application(self, app: str) -> dict[str, Any] | None:
        """The application's subscriptions, or None when no websocket has registered it."""
        try:
            result = await self.request("GET", f"/applications/{_q(app)}")
        except AriError as e:
            if e.not_found:
                return None
            raise
        return result if isinstance(result, dict) else {}

    async def subscribe(self, app: str, event_source: str | Sequence[str]) -> dict[str, Any]:
        """Subscribe app to e.g. "channel:ID" (needed to keep hearing a channel after /continue)."""
        result = await self.request(
            "POST", f"/applications/{_q(app)}/subscription", params={"eventSource": _join(event_source)}
        )
        return result if isinstance(result, dict) else {}

    async def unsubscribe(self, app: str, event_source: str | Sequence[str]) -> dict[str, Any]:
        result = await self.request(
            "DELETE", f"/applications/{_q(app)}/subscription", params={"eventSource": _join(event_source)}
        )
        return result if isinstance(result, dict) else {}

    # -- channels ------------------------------------------------------------------------------
    async def list_channels(self) -> list[Channel]:
        result = await self.request("GET", "/channels")
        return [Channel.from_json(c) for c in result] if isinstance(result, list) else []

    async def get_channel(self, channel_id: str) -> Channel | None:
        """The channel, or None when it no longer exists."""
        try:
            return Channel.from_json(await self.request("GET", f"/channels/{_q(channel_id)}"))
        except AriError as e:
            if e.not_found:
                return None
            raise

    async def originate(
        self,
        endpoint: str,
        app: str | None = None,
        app_args: str | Sequence[str] | None = None,
        *,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        caller_id: str | None = None,
        timeout: int | None = None,
        variables: Mapping[str, str] | None = None,
        formats: str | Sequence[str] | None = None,
        originator: str | None = None,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> Channel:
        """POST /channels: dial `endpoint` (e.g. "PJSIP/sipp") into a Stasis app or the dialplan.

        Into the app: StasisStart arrives on answer; ChannelStateChange, Dial and
        ChannelDestroyed arrive before it. `timeout` is seconds to wait for an answer.
        """
        into_dialplan = context is not None or extension is not None or priority is not None or label is not None
        if (app is None) == (not into_dialplan):
            raise ValueError("originate goes either to app= or to context/extension/priority/label")
        if app is None and app_args is not None:
            raise ValueError("app_args needs app")
        params: Params = {
            "endpoint": endpoint,
            "app": app,
            "appArgs": _join(app_args),
            "context": context,
            "extension": extension,
            "priority": priority,
            "label": label,
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "callerId": caller_id,
            "timeout": timeout,
            "formats": _join(formats),
            "originator": originator,
        }
        body = {"variables": dict(variables)} if variables else None
        return Channel.from_json(await self.request("POST", "/channels", params=params, body=body))

    async def external_media(
        self,
        app: str,
        external_host: str,
        format: str = "ulaw",
        *,
        channel_id: str | None = None,
        encapsulation: str = "rtp",
        transport: str = "udp",
        connection_type: str = "client",
        direction: str = "both",
        variables: Mapping[str, str] | None = None,
        data: str | None = None,
    ) -> Channel:
        """POST /channels/externalMedia: a channel that sends its audio as RTP to external_host.

        The returned channel's `rtp_source()` is the address:port Asterisk sends from
        (UNICASTRTP_LOCAL_ADDRESS/PORT), known before the first packet. The channel enters
        `app` just after this returns: wait for its StasisStart before add_to_bridge (seen in
        the lab: addChannel before it is a 422 "Channel not in Stasis application").
        """
        params: Params = {
            "app": app,
            "external_host": external_host,
            "format": format,
            "channelId": channel_id,
            "encapsulation": encapsulation,
            "transport": transport,
            "connection_type": connection_type,
            "direction": direction,
            "data": data,
        }
        body = {"variables": dict(variables)} if variables else None
        return Channel.from_json(await self.request("POST", "/channels/externalMedia", params=params, body=body))

    async def snoop(
        self,
        channel_id: str,
        app: str,
        spy: str = "in",
        *,
        whisper: str = "none",
        snoop_id: str | None = None,
        app_args: str | Sequence[str] | None = None,
    ) -> Channel:
        """POST /channels/{id}/snoop: a channel carrying what channel_id hears or says.

        spy="in" is the audio coming from the channel (the callee's voice). As with
        external_media, wait for the snoop channel's StasisStart before bridging it.
        """
        params: Params = {"app": app, "spy": spy, "whisper": whisper, "snoopId": snoop_id, "appArgs": _join(app_args)}
        return Channel.from_json(await self.request("POST", f"/channels/{_q(channel_id)}/snoop", params=params))

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{_q(channel_id)}/answer")

    async def hangup(self, channel_id: str, reason: str | None = None, *, reason_code: int | None = None) -> bool:
        """DELETE /channels/{id}. False (no error) when the channel was already gone.

        reason: normal, busy, congestion, no_answer, timeout, rejected, unallocated, ...
        """
        try:
            await self.request(
                "DELETE", f"/channels/{_q(channel_id)}", params={"reason": reason, "reason_code": reason_code}
            )
        except AriError as e:
            if e.not_found:
                return False
            raise
        return True

    async def set_variable(self, channel_id: str, variable: str, value: str) -> None:
        await self.request(
            "POST", f"/channels/{_q(channel_id)}/variable", params={"variable": variable, "value": value}
        )

    async def get_variable(self, channel_id: str, variable: str) -> str | None:
        """A channel variable or dialplan function (e.g. "CHANNEL(name)"); None when unset.

        Asterisk answers 404 both for an unset variable ("Provided variable was not found") and
        for a missing channel ("Provided channel was not found"): only the first is None.
        """
        try:
            result = await self.request(
                "GET", f"/channels/{_q(channel_id)}/variable", params={"variable": variable}
            )
        except AriError as e:
            if e.not_found and "variable" in e.message.lower():
                return None
            raise
        value = result.get("value") if isinstance(result, dict) else None
        return "" if value is None else str(value)

    async def continue_in_dialplan(
        self,
        channel_id: str,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        """POST /channels/{id}/continue: leave Stasis; with no arguments, the next priority."""
        params: Params = {"context": context, "extension": extension, "priority": priority, "label": label}
        await self.request("POST", f"/channels/{_q(channel_id)}/continue", params=params)

    # -- bridges -------------------------------------------------------------------------------
    async def list_bridges(self) -> list[Bridge]:
        result = await self.request("GET", "/bridges")
        return [Bridge.from_json(b) for b in result] if isinstance(result, list) else []

    async def create_bridge(
        self, type: str | Sequence[str] = "mixing", bridge_id: str | None = None, name: str | None = None
    ) -> Bridge:
        params: Params = {"type": _join(type), "bridgeId": bridge_id, "name": name}
        return Bridge.from_json(await self.request("POST", "/bridges", params=params))

    async def add_to_bridge(self, bridge_id: str, channel_ids: str | Sequence[str], *, role: str | None = None) -> None:
        params: Params = {"channel": _join(channel_ids), "role": role}
        await self.request("POST", f"/bridges/{_q(bridge_id)}/addChannel", params=params)

    async def remove_from_bridge(self, bridge_id: str, channel_ids: str | Sequence[str]) -> None:
        await self.request("POST", f"/bridges/{_q(bridge_id)}/removeChannel", params={"channel": _join(channel_ids)})

    async def destroy_bridge(self, bridge_id: str) -> bool:
        """DELETE /bridges/{id}. False (no error) when the bridge was already gone."""
        try:
            await self.request("DELETE", f"/bridges/{_q(bridge_id)}")
        except AriError as e:
            if e.not_found:
                return False
            raise
        return True

    # -- media ---------------------------------------------------------------------------------
    async def play(
        self, channel_id: str, media: str | Sequence[str], *, playback_id: str | None = None
    ) -> dict[str, Any]:
        """POST /channels/{id}/play: e.g. media="sound:hello-world"; -> the Playback object."""
        params: Params = {"media": _join(media), "playbackId": playback_id}
        result = await self.request("POST", f"/channels/{_q(channel_id)}/play", params=params)
        return result if isinstance(result, dict) else {}

    async def get_playback(self, playback_id: str) -> dict[str, Any] | None:
        """The playback while it exists (queued or playing); None once it is done."""
        try:
            result = await self.request("GET", f"/playbacks/{_q(playback_id)}")
        except AriError as e:
            if e.not_found:
                return None
            raise
        return result if isinstance(result, dict) else {}

    async def stop_playback(self, playback_id: str) -> bool:
        try:
            await self.request("DELETE", f"/playbacks/{_q(playback_id)}")
        except AriError as e:
            if e.not_found:
                return False
            raise
        return True

    # -- two-step originate: a channel in the app first, dialled after -------------------------
    async def create_channel(
        self,
        endpoint: str,
        app: str,
        app_args: str | Sequence[str] | None = None,
        *,
        channel_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        formats: str | Sequence[str] | None = None,
    ) -> Channel:
        """POST /channels/create: the channel enters `app` at once (StasisStart, state Down),
        before it is dialled: snoop it, then `dial` it, and no audio after answer is missed."""
        params: Params = {
            "endpoint": endpoint,
            "app": app,
            "appArgs": _join(app_args),
            "channelId": channel_id,
            "formats": _join(formats),
        }
        body = {"variables": dict(variables)} if variables else None
        return Channel.from_json(await self.request("POST", "/channels/create", params=params, body=body))

    async def dial(self, channel_id: str, *, caller: str | None = None, timeout: int | None = None) -> None:
        """POST /channels/{id}/dial: dial a channel made by create_channel (timeout: seconds)."""
        await self.request("POST", f"/channels/{_q(channel_id)}/dial", params={"caller": caller, "timeout": timeout})

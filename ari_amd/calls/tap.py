"""The media tap of one call: snoop (spy=in) + externalMedia, bridged, feeding an RtpReceiver.

Snoop rather than bridging the callee: the callee stays free to run dialplan or TwiML while we
listen (async AMD), and both modes get one media path. Every resource is named after the call
(ari_amd.ari.naming) so a sweep after a restart can find it; `close` removes all of them and is
safe to call in any state, any number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from ari_amd.ari import AriClient, AriError, ChannelEvents, EventStream, StasisStart, naming
from ari_amd.media import AudioCallback, G711Callback, PortPool, RtpReceiver
from ari_amd.media.hub import RtpHub

STASIS_WAIT_S = 5.0  # a snoop/externalMedia channel enters the app within milliseconds
TAP_ARG = "tap"  # appArgs of our own channels: StasisStart handlers skip them

log = structlog.get_logger(__name__)


class TapError(Exception):
    pass


class MediaTap:
    def __init__(
        self,
        ari: AriClient,
        events: EventStream,
        pool: PortPool,
        call_id: str,
        channel_id: str,
        fmt: str,
        hub: RtpHub | None = None,
    ) -> None:
        """hub: the shared RTP socket, if the service uses one; else the receiver binds a port of `pool`."""
        self.ari = ari
        self.events = events
        self.pool = pool
        self.hub = hub
        self.call_id = call_id
        self.channel_id = channel_id
        self.format = fmt
        self.snoop_id = naming.snoop_id(call_id)
        self.media_id = naming.media_id(call_id)
        self.bridge_id = naming.bridge_id(call_id)
        self.receiver: RtpReceiver | None = None
        self.snooped_at: float | None = None  # time.monotonic() when the snoop's audiohook attached
        self._claims: list[ChannelEvents] = []
        self._created: set[str] = set()  # what exists in Asterisk and must go
        self._closed = False
        self._log = log.bind(call_id=call_id)

    async def open(self, on_audio: AudioCallback, on_g711: G711Callback | None = None) -> None:
        """Create the tap; RTP starts flowing into `on_audio` (and `on_g711`, see RtpReceiver)
        once this returns."""
        hub = self.hub
        receiver = None
        if hub is None:
            receiver = await RtpReceiver.open(self.pool, self.format, on_audio, on_g711=on_g711)
        self.receiver = receiver
        snoop_events = self.events.claim(self.snoop_id)
        media_events = self.events.claim(self.media_id)
        self._claims += [snoop_events, media_events]
        await self.ari.snoop(self.channel_id, self.events.app, "in", snoop_id=self.snoop_id, app_args=TAP_ARG)
        self.snooped_at = time.monotonic()
        self._created.add(self.snoop_id)
        if receiver is not None:
            target = receiver.external_host
        else:
            assert hub is not None
            target = hub.external_host
        em = await self.ari.external_media(self.events.app, target, self.format, channel_id=self.media_id)
        self._created.add(self.media_id)
        source = em.rtp_source()
        if hub is not None:
            # On the shared socket a call's packets are known by their source alone.
            if source is None:
                raise TapError(
                    "externalMedia did not say where it sends from (UNICASTRTP_LOCAL_ADDRESS/PORT): "
                    "this Asterisk needs rtp.socket = \"per_call\""
                )
            try:
                receiver = self.receiver = RtpReceiver.attach(hub, self.format, on_audio, source, on_g711=on_g711)
            except ValueError as e:
                raise TapError(str(e)) from None
        elif source is not None and receiver is not None:
            receiver.expect_source(*source)
        await asyncio.gather(self._entered(snoop_events), self._entered(media_events))
        await self.ari.create_bridge("mixing", bridge_id=self.bridge_id, name=self.events.app)
        self._created.add(self.bridge_id)
        await self.ari.add_to_bridge(self.bridge_id, [self.snoop_id, self.media_id])
        self._log.debug("tap_open", rtp_target=target, rtp_source=source)

    async def _entered(self, events: ChannelEvents) -> None:
        async def first_start() -> None:
            async for ev in events:
                if isinstance(ev, StasisStart):
                    return
            raise TapError(f"{events.channel_id} went away before entering the application")

        try:
            await asyncio.wait_for(first_start(), STASIS_WAIT_S)
        except TimeoutError:
            raise TapError(f"{events.channel_id} did not enter the application within {STASIS_WAIT_S} s") from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for claim in self._claims:
            claim.release()
        for resource in (self.snoop_id, self.media_id):
            if resource in self._created:
                with contextlib.suppress(AriError):
                    await self.ari.hangup(resource)
        if self.bridge_id in self._created:
            with contextlib.suppress(AriError):
                await self.ari.destroy_bridge(self.bridge_id)
        if self.receiver is not None:
            self.receiver.flush()
            await self.receiver.aclose()
            self._log.debug("tap_closed", **self.receiver.stats.as_dict())

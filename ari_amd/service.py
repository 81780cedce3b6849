"""`ari-amd serve`: the call engine, the carriers' HTTP APIs and /healthz, until SIGTERM.

Callbacks of every kind (Twilio/Plivo/Telnyx webhooks, the dialplan's async `callback=`) go
through one durable outbox, written before the first attempt and resumed after a restart.

SIGTERM or SIGINT: stop taking calls, resolve those in flight (`unknown`, cause shutdown: a
dialplan waiting in Stasis() goes on with its variables set), free their resources, exit 0.
"""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from ari_amd.api import create_app, outbox_for
from ari_amd.calls.config import Settings
from ari_amd.calls.engine import CallEngine
from ari_amd.calls.outbox import Outbox
from ari_amd.calls.webhooks import OutboxSender
from ari_amd.media import PortPoolExhausted
from ari_amd.metrics import render

log = structlog.get_logger(__name__)


def health_routes(engine: CallEngine) -> list[web.RouteDef]:
    """/healthz: 200 while ARI is connected (503 otherwise); /metrics: Prometheus' text format."""

    async def healthz(request: web.Request) -> web.Response:
        body = {"ari_connected": engine.connected, "app": engine.app, "calls_in_flight": engine.in_flight}
        return web.json_response(body, status=200 if engine.connected else 503)

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = render(engine.metrics, request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    return [web.get("/healthz", healthz), web.get("/metrics", metrics)]


def build_http_app(engine: CallEngine, settings: Settings, outbox: Outbox) -> web.Application:
    app = create_app(engine, settings, outbox=outbox)
    app.add_routes(health_routes(engine))
    return app


async def serve(settings: Settings) -> int:
    outbox = outbox_for(settings)
    engine = CallEngine(settings, sender=OutboxSender(outbox))
    engine.metrics.callback_backlog.set_function(outbox.pending)
    outbox.on_attempt = lambda outcome: engine.metrics.callback_attempts.labels(outcome).inc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(build_http_app(engine, settings, outbox), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    try:
        await site.start()
    except OSError as e:
        log.error("http_bind_failed", host=settings.http_host, port=settings.http_port, error=str(e))
        await runner.cleanup()
        await outbox.close()
        return 1
    try:
        engine.open_media()
    except (OSError, PortPoolExhausted) as e:
        log.error("rtp_bind_failed", host=settings.rtp_host,
                  ports=f"{settings.rtp_port_first}-{settings.rtp_port_last}", error=str(e))
        await runner.cleanup()
        await outbox.close()
        return 1
    log.info("serving", app=engine.app, ari=settings.ari_url, http=f"{settings.http_host}:{settings.http_port}")
    try:
        await engine.start(ready_timeout=0.01)
    except Exception:
        # Asterisk not there yet: the event stream keeps reconnecting with backoff.
        log.warning("ari_not_ready_yet", ari=settings.ari_url, error=engine.events.last_error)
    await stop.wait()
    log.info("shutting_down", calls_in_flight=engine.in_flight)
    await engine.close()  # the last verdicts reach the outbox before it closes
    await runner.cleanup()
    await outbox.close()
    log.info("stopped")
    return 0

"""`ari-amd serve`: the call engine, and the HTTP server in front of it, until SIGTERM.

SIGTERM or SIGINT: stop taking calls, resolve those in flight (`unknown`, cause shutdown: a
dialplan waiting in Stasis() goes on with its variables set), free their resources, exit 0.
"""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from ari_amd.calls.config import Settings
from ari_amd.calls.engine import CallEngine

log = structlog.get_logger(__name__)


def health_routes(engine: CallEngine) -> list[web.RouteDef]:
    async def healthz(request: web.Request) -> web.Response:
        body = {"ari_connected": engine.connected, "app": engine.app, "calls_in_flight": engine.in_flight}
        return web.json_response(body, status=200 if engine.connected else 503)

    return [web.get("/healthz", healthz)]


def build_http_app(engine: CallEngine, settings: Settings) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app.add_routes(health_routes(engine))
    return app


async def serve(settings: Settings) -> int:
    engine = CallEngine(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(build_http_app(engine, settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    try:
        await site.start()
    except OSError as e:
        log.error("http_bind_failed", host=settings.http_host, port=settings.http_port, error=str(e))
        await runner.cleanup()
        return 1
    log.info("serving", app=engine.app, ari=settings.ari_url, http=f"{settings.http_host}:{settings.http_port}")
    try:
        await engine.start(ready_timeout=0.01)
    except Exception:
        # Asterisk not there yet: the event stream keeps reconnecting with backoff.
        log.warning("ari_not_ready_yet", ari=settings.ari_url, error=engine.events.last_error)
    await stop.wait()
    log.info("shutting_down", calls_in_flight=engine.in_flight)
    await engine.close()
    await runner.cleanup()
    log.info("stopped")
    return 0

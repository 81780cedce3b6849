"""The HTTP application: every dialect's routes over one engine, one outbox."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from ari_amd.api import openapi, plivo, telnyx, twilio
from ari_amd.api.context import CONTEXT, ApiContext
from ari_amd.api.errors import error_middleware
from ari_amd.api.settings import ApiSettings
from ari_amd.calls import telnyx_signing
from ari_amd.calls.model import Engine
from ari_amd.calls.outbox import Outbox
from ari_amd.calls.webhooks import Webhooks

log = structlog.get_logger(__name__)


def outbox_for(settings: ApiSettings | Any) -> Outbox:
    """The durable outbox the settings name. Build it before the engine when the engine's own
    callbacks (dialplan Stasis() calls) should go through it too:

        outbox = outbox_for(settings)
        engine = CallEngine(settings, sender=OutboxSender(outbox))
        app = create_app(engine, settings, outbox=outbox)
    """
    s = ApiSettings.coerce(settings)
    box = Outbox(s.outbox_path, attempt_timeout_s=s.webhook_timeout_s, horizon_s=s.retry_horizon_s, policy=s.url_policy)
    add_telnyx_signer(box, s)
    return box


def add_telnyx_signer(box: Outbox, settings: ApiSettings) -> None:
    """The Telnyx dialect's Ed25519 signer, with the configured key or the one kept beside the
    outbox (made on first use)."""
    if telnyx_signing.SIGNER in box.signers:
        return
    signer = telnyx_signing.load_signer(settings.telnyx_signing_key, settings.telnyx_key_path)
    box.add_signer(telnyx_signing.SIGNER, signer.headers)
    log.info("telnyx_webhook_public_key", public_key=signer.public_key)  # the public half only


def create_app(engine: Engine, settings: ApiSettings | Any, *, outbox: Outbox | None = None) -> web.Application:
    """The app; its startup opens the outbox and starts its worker, its cleanup stops them.
    Pass `outbox` to share one (e.g. with the engine's OutboxSender): it is started here but
    closed only if the app created it. `settings`: ApiSettings, or the service's Settings."""
    settings = ApiSettings.coerce(settings)
    owns_outbox = outbox is None
    box = outbox or outbox_for(settings)
    add_telnyx_signer(box, settings)
    context = ApiContext(
        engine=engine,
        settings=settings,
        outbox=box,
        webhooks=Webhooks(
            box,
            timeout_s=settings.webhook_timeout_s,
            max_document_bytes=settings.max_twiml_bytes,
            policy=settings.url_policy,
        ),
    )
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    app[CONTEXT] = context
    app.add_routes(twilio.routes() + plivo.routes() + telnyx.routes() + openapi.routes())

    async def startup(_: web.Application) -> None:
        await box.start()
        log.info("api_ready", accounts=len(settings.accounts), pending_callbacks=box.pending())

    async def cleanup(_: web.Application) -> None:
        await context.webhooks.close()
        if owns_outbox:
            await box.close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app


async def serve(engine: Engine, settings: ApiSettings | Any) -> web.AppRunner:
    """Start serving on settings.host:port; `await runner.cleanup()` stops it."""
    settings = ApiSettings.coerce(settings)
    runner = web.AppRunner(create_app(engine, settings))
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    log.info("api_listening", host=settings.host, port=settings.port)
    return runner

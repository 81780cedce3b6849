"""What every dialect's handlers share: the engine, settings, webhooks, the calls they follow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from ari_amd.api import forms
from ari_amd.api.settings import ApiSettings
from ari_amd.calls.model import Engine
from ari_amd.calls.outbox import Outbox
from ari_amd.calls.webhooks import Webhooks

if TYPE_CHECKING:
    from ari_amd.api.driver import CallDriver


@dataclass
class ApiContext:
    engine: Engine
    settings: ApiSettings
    outbox: Outbox
    webhooks: Webhooks
    drivers: dict[str, CallDriver] = field(default_factory=dict)

    def endpoint_for(self, target: str, name: str = "To") -> str:
        return forms.endpoint(target, self.settings.endpoint_template, self.settings.sip_endpoint, name=name)

    def token(self, account: str) -> str:
        return self.settings.accounts[account]


CONTEXT = web.AppKey("ari_amd_api", ApiContext)


def ctx(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]

"""What every dialect's handlers share: the engine, settings, webhooks, the calls they follow."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from ari_amd.api import forms
from ari_amd.api.errors import INVALID_URL, TOO_MANY_REQUESTS, ApiError, bad_param
from ari_amd.api.settings import ApiSettings
from ari_amd.calls.model import Engine
from ari_amd.calls.outbox import Outbox
from ari_amd.calls.webhooks import Webhooks

if TYPE_CHECKING:
    from ari_amd.api.driver import CallDriver


# Sent with a 429: calls in flight end within seconds to minutes, and a client that honours
# Retry-After tries again no sooner than this.
RETRY_AFTER_S = 1


@dataclass
class ApiContext:
    engine: Engine
    settings: ApiSettings
    outbox: Outbox
    webhooks: Webhooks
    drivers: dict[str, CallDriver] = field(default_factory=dict)
    placing: dict[str, int] = field(default_factory=dict)  # account -> place() calls not yet returned

    def calls_in_flight(self, account: str) -> int:
        live = sum(
            1 for d in self.drivers.values() if not d.call.ended and d.call.request.meta.get("account_sid") == account
        )
        return live + self.placing.get(account, 0)

    @contextlib.contextmanager
    def admit(self, account: str) -> Iterator[None]:
        """Around place() and attach(): a 429 when the account already has its limit of calls in
        flight. Calls being placed count too, so a burst of requests cannot all slip past."""
        limit = self.settings.max_calls_per_account
        if self.calls_in_flight(account) >= limit:
            raise ApiError(
                429,
                f"too many calls in flight for account {account}: at most {limit} at once "
                "(http.max_calls_per_account); place more as calls end",
                code=TOO_MANY_REQUESTS,
                retry_after=RETRY_AFTER_S,
            )
        self.placing[account] = self.placing.get(account, 0) + 1
        try:
            yield
        finally:
            self.placing[account] -= 1
            if not self.placing[account]:
                del self.placing[account]

    def endpoint_for(self, target: str, name: str = "To") -> str:
        return forms.endpoint(target, self.settings.endpoint_template, self.settings.sip_endpoint, name=name)

    def url(self, name: str, value: str | None, *, required: bool = False) -> str | None:
        """A URL ari-amd will request: absolute http(s), and a host the URL policy allows
        (its resolved addresses are checked again when it is requested)."""
        v = forms.url(name, value, required=required)
        if v is not None:
            reason = self.settings.url_policy.reason(v)
            if reason is not None:
                raise bad_param(name, f"{name} is not allowed: {reason}", INVALID_URL)
        return v

    def token(self, account: str) -> str:
        return self.settings.accounts[account]


CONTEXT = web.AppKey("ari_amd_api", ApiContext)


def ctx(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]

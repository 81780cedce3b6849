"""What the HTTP surface needs to know: accounts, how a number becomes an endpoint, limits."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ari_amd.calls import telnyx_signing
from ari_amd.calls.model import DialplanTarget
from ari_amd.calls.urlpolicy import UrlPolicy


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class ApiSettings:
    """accounts: AccountSid (Plivo auth_id) -> AuthToken; a Telnyx caller presents the token as
    its Bearer API key. endpoint_template turns a number into a dial string ({number} is the To
    value); sip_endpoint is the PJSIP endpoint `sip:` URIs are sent through."""

    accounts: Mapping[str, str] = field(default_factory=dict, repr=False)  # tokens: never in logs
    host: str = "127.0.0.1"
    port: int = 8080
    endpoint_template: str = "PJSIP/{number}@trunk"
    sip_endpoint: str = "trunk"
    dialplan: DialplanTarget | None = None  # where CONTINUE goes (None: the engine's default)
    max_body_bytes: int = 64 * 1024
    outbox_path: str = "ari-amd-outbox.db"
    webhook_timeout_s: float = 10.0  # one TwiML fetch / one callback attempt
    retry_horizon_s: float = 4 * 3600.0  # callbacks are retried this long after they were due
    max_twiml_bytes: int = 256 * 1024
    max_calls_per_account: int = 100  # calls in flight (placed, not ended) per account: one more is a 429
    url_policy: UrlPolicy = field(default_factory=UrlPolicy)  # where callbacks and documents may go
    # Telnyx webhooks' Ed25519 key: base64 of a 32-byte seed; empty: kept in telnyx_key_file,
    # made on first use (empty: beside the outbox).
    telnyx_signing_key: str = field(default="", repr=False)
    telnyx_key_file: str = ""

    @property
    def telnyx_key_path(self) -> Path:
        if self.telnyx_key_file:
            return Path(self.telnyx_key_file)
        return Path(self.outbox_path).with_name(telnyx_signing.KEY_FILE)

    @classmethod
    def coerce(cls, settings: Any) -> ApiSettings:
        """ApiSettings as they are, or derived from the service's ari_amd.calls.config.Settings
        (read by attribute, so either can change without the other breaking at import)."""
        if isinstance(settings, ApiSettings):
            return settings
        template = getattr(settings, "endpoints_template", cls.endpoint_template)
        m = re.match(r"^PJSIP/\{number\}@([^/]+)$", template)
        context = getattr(settings, "dialplan_context", "")
        return cls(
            accounts=dict(getattr(settings, "accounts", {}) or {}),
            host=getattr(settings, "http_host", cls.host),
            port=getattr(settings, "http_port", cls.port),
            endpoint_template=template,
            # sip: URIs go out through the template's endpoint (PJSIP/{number}@sipp -> sipp)
            sip_endpoint=getattr(settings, "endpoints_sip", "") or (m.group(1) if m else cls.sip_endpoint),
            dialplan=DialplanTarget(
                context, getattr(settings, "dialplan_extension", "s"), getattr(settings, "dialplan_priority", 1)
            )
            if context
            else None,
            outbox_path=getattr(settings, "callbacks_outbox", cls.outbox_path),
            webhook_timeout_s=getattr(settings, "callbacks_timeout_s", cls.webhook_timeout_s),
            retry_horizon_s=getattr(settings, "callbacks_horizon_s", cls.retry_horizon_s),
            max_body_bytes=getattr(settings, "http_max_body_bytes", cls.max_body_bytes),
            max_calls_per_account=getattr(settings, "http_max_calls_per_account", cls.max_calls_per_account),
            url_policy=UrlPolicy(
                tuple(getattr(settings, "callbacks_allow", ())), tuple(getattr(settings, "callbacks_deny", ()))
            ),
            telnyx_signing_key=getattr(settings, "telnyx_signing_key", ""),
            telnyx_key_file=getattr(settings, "telnyx_key_file", ""),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, path: str | None = None) -> ApiSettings:
        """From the service's settings (TOML file, then ARI_AMD_* variables): one set of names."""
        from ari_amd.calls.config import ConfigError, load_settings

        try:
            return cls.coerce(load_settings(path, env))
        except ConfigError as e:
            raise SettingsError(str(e)) from None

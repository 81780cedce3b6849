"""ari-amd's settings: defaults fit the lab; a TOML file and then the environment override them.

    [ari]        url, user, password, app
    [rtp]        host, advertise_host, port_first, port_last, format, socket ("shared" or "per_call")
    [dialplan]   context, extension, priority      (where CONTINUE sends originated calls)
    [endpoints]  template                          ("PJSIP/{number}@trunk": how a number is dialled)
    [http]       host, port, max_body_bytes, max_calls_per_account
    [callbacks]  account_sid, timeout_s, horizon_s, outbox, allow, deny   (allow/deny: lists; see urlpolicy)
    [accounts]   AC... = "auth token"              (the HTTP API's credentials)
    [detection]  media_timeout_s, record_dir
    [telnyx]     signing_key, key_file             (the Ed25519 key Telnyx webhooks are signed with)

Each key has an environment variable ARI_AMD_<SECTION>_<KEY> (ARI_AMD_ARI_PASSWORD...), and
ARI_AMD_ACCOUNTS=SID:TOKEN[,SID:TOKEN] sets the accounts; a list (callbacks.allow) is a comma list there.
A bad value is a ConfigError naming the key and where it came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ari_amd.calls.telnyx_signing import TelnyxSigner
from ari_amd.calls.urlpolicy import UrlPolicy
from ari_amd.media.receiver import FORMATS

RTP_SOCKETS = ("shared", "per_call")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    ari_url: str = "http://127.0.0.1:8088"
    ari_user: str = "ari-amd"
    ari_password: str = field(default="ari-amd", repr=False)
    ari_app: str = "ari-amd"
    rtp_host: str = "127.0.0.1"
    rtp_advertise_host: str = ""
    rtp_port_first: int = 40000
    rtp_port_last: int = 40999
    rtp_format: str = "ulaw"
    # shared: every call's externalMedia sends to one socket (the first free port of the range),
    # told apart by the source Asterisk announces; per_call: a port of the range each.
    rtp_socket: str = "shared"
    dialplan_context: str = ""
    dialplan_extension: str = "s"
    dialplan_priority: int = 1
    endpoints_template: str = "PJSIP/{number}@sipp"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    http_max_body_bytes: int = 64 * 1024  # a larger request body is a 413
    http_max_calls_per_account: int = 100  # calls in flight per account; one more is a 429
    callbacks_account_sid: str = ""
    callbacks_timeout_s: float = 10.0
    callbacks_horizon_s: float = 3600.0
    callbacks_outbox: str = "ari-amd-outbox.sqlite3"
    # Hosts/CIDRs/classes callback and document URLs may (allow) or may not (deny) reach; the
    # defaults deny link-local, metadata, multicast, unspecified (ari_amd/calls/urlpolicy.py).
    callbacks_allow: tuple[str, ...] = ()
    callbacks_deny: tuple[str, ...] = ()
    # Detection ends as `unknown` when the tap has heard nothing for this long (the audio clock
    # stands still when media stops, so only the wall clock can tell).
    detection_media_timeout_s: float = 3.0
    # When set, each call's tapped audio (as the detector heard it) is kept as <call id>.wav
    # there, for `ari-amd explain` on a call that went wrong.
    detection_record_dir: str = ""
    # The Ed25519 key Telnyx-dialect webhooks are signed with (base64 of 32 bytes); empty: the
    # key in telnyx.key_file, made there on first use (empty: beside the outbox).
    telnyx_signing_key: str = field(default="", repr=False)
    telnyx_key_file: str = ""
    accounts: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.rtp_format not in FORMATS:
            raise ConfigError(f"rtp.format must be one of {', '.join(sorted(FORMATS))} (got {self.rtp_format!r})")
        if self.rtp_socket not in RTP_SOCKETS:
            raise ConfigError(f"rtp.socket must be one of {', '.join(RTP_SOCKETS)} (got {self.rtp_socket!r})")
        if not 1 <= self.rtp_port_first <= self.rtp_port_last <= 65535:
            raise ConfigError(f"rtp.port_first..port_last must be a range within 1-65535 "
                              f"(got {self.rtp_port_first}-{self.rtp_port_last})")
        if "{number}" not in self.endpoints_template:
            raise ConfigError(f"endpoints.template must contain {{number}} (got {self.endpoints_template!r})")
        if not self.ari_app or "," in self.ari_app:
            raise ConfigError(f"ari.app must be a non-empty name without commas (got {self.ari_app!r})")
        if self.detection_media_timeout_s <= 0:
            raise ConfigError("detection.media_timeout_s must be positive")
        if self.http_max_body_bytes < 1024 or self.http_max_calls_per_account < 1:
            raise ConfigError("http.max_body_bytes must be at least 1024 and http.max_calls_per_account at least 1")
        try:
            UrlPolicy(self.callbacks_allow, self.callbacks_deny)
            if self.telnyx_signing_key:
                TelnyxSigner.from_base64(self.telnyx_signing_key)
        except ValueError as e:
            raise ConfigError(str(e)) from None


_KINDS = {f.name: f.type for f in fields(Settings)}


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = _KINDS[name]
    if kind == "tuple[str, ...]":  # a TOML list, or a comma list from the environment
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{origin}: {name.replace('_', '.', 1)} must be a list of strings (got {value!r})")
    try:
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: {name.replace('_', '.', 1)} must be a number (got {value!r})") from None
    return str(value)


def parse_accounts(text: str, origin: str = "ARI_AMD_ACCOUNTS") -> dict[str, str]:
    accounts: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        sid, sep, token = item.partition(":")
        if not sep or not sid or not token:
            # Never echo the item: without its ':' it may be the token itself.
            raise ConfigError(f"{origin}: each account is SID:TOKEN (item {len(accounts) + 1} is not)")
        accounts[sid] = token
    return accounts


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults <- TOML file (path, or $ARI_AMD_CONFIG) <- environment."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = path or env.get("ARI_AMD_CONFIG") or None
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{path}: {e}") from e
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: [{section}] must be a table")
            if section == "accounts":
                values["accounts"] = {str(k): str(v) for k, v in table.items()}
                continue
            for key, value in table.items():
                name = f"{section}_{key}"
                if name not in _KINDS or name == "accounts":
                    raise ConfigError(f"{path}: unknown setting [{section}] {key}")
                values[name] = _coerce(name, value, str(path))
    for name in _KINDS:
        var = f"ARI_AMD_{name.upper()}"
        if name != "accounts" and var in env:
            values[name] = _coerce(name, env[var], var)
    if "ARI_AMD_ACCOUNTS" in env:
        values["accounts"] = parse_accounts(env["ARI_AMD_ACCOUNTS"])
    return replace(Settings(), **values)

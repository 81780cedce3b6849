"""The callback URL policy: what is refused by default, what allow/deny change, and that the
checks hold at send time (resolved addresses, redirect hops), not only on the literal URL."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from ari_amd.calls.config import ConfigError, load_settings
from ari_amd.calls.outbox import Outbox
from ari_amd.calls.urlpolicy import PolicyResolver, UrlPolicy, UrlRefused, request
from tests.test_api_fakes import free_port


@pytest.mark.parametrize(
    "url, why",
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/latest", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://169.254.10.1/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),  # IPv4-mapped IPv6
        ("http://224.0.0.251/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://0.0.0.0:8080/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://255.255.255.255/", "reserved"),
        ("http://2852039166/", "canonical"),  # 169.254.169.254 as one number
        ("http://0xa9.0xfe.0xa9.0xfe/", "canonical"),
        ("ftp://example.com/x", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:6379/_", "scheme"),
        ("http://example.com\\@169.254.169.254/", "backslash"),
    ],
)
def test_default_policy_refuses(url: str, why: str) -> None:
    reason = UrlPolicy().reason(url)
    assert reason is not None and why in reason, reason


@pytest.mark.parametrize(
    "url",
    ["https://dialer.example.com/amd", "http://127.0.0.1:9000/cb", "http://localhost/x", "http://10.1.2.3/",
     "http://192.168.1.10/", "http://[::1]:8000/", "http://user:pw@203.0.113.7/x?token=1"],
)
def test_default_policy_allows_public_loopback_and_private(url: str) -> None:
    assert UrlPolicy().reason(url) is None


def test_deny_closes_loopback_and_private_including_localhost_by_name() -> None:
    p = UrlPolicy(deny=("loopback", "private"))
    assert "loopback" in (p.reason("http://127.0.0.1/") or "")
    assert "loopback" in (p.reason("http://localhost:8080/") or "")
    assert "loopback" in (p.reason("http://api.localhost/") or "")
    assert "private" in (p.reason("http://10.0.0.5/") or "")
    assert "private" in (p.reason("http://[fd12::5]/") or "")
    assert p.reason("https://dialer.example.com/") is None


def test_deny_by_name_cidr_and_subdomain() -> None:
    p = UrlPolicy(deny=("evil.example", "*.corp.example", "203.0.113.0/24"))
    assert p.reason("http://evil.example/") and p.reason("http://a.b.corp.example/") and p.reason("http://203.0.113.9/")
    assert p.reason("http://corp.example/") is None  # *.domain: subdomains only
    assert p.reason("http://good.example/") is None


def test_a_broad_allow_does_not_open_the_defaults_but_a_named_range_does() -> None:
    assert "metadata" in (UrlPolicy(allow=("0.0.0.0/0",)).reason("http://169.254.169.254/") or "")
    assert UrlPolicy(allow=("169.254.10.0/24",)).reason("http://169.254.10.5/") is None
    assert UrlPolicy(allow=("169.254.10.0/24",)).reason("http://169.254.169.254/") is not None
    assert UrlPolicy(allow=("link-local",)).reason("http://169.254.10.5/") is None
    assert UrlPolicy(allow=("metadata.google.internal",)).reason("http://metadata.google.internal/") is None
    assert UrlPolicy(allow=("metadata",)).reason("http://169.254.169.254/") is None  # inside link-local too
    assert "metadata" in (UrlPolicy(allow=("link-local",)).reason("http://169.254.169.254/") or "")


def test_a_non_empty_allow_is_an_allowlist() -> None:
    p = UrlPolicy(allow=("dialer.example.com", "*.hooks.example.com"))
    assert p.reason("https://dialer.example.com/x") is None
    assert p.reason("https://a.hooks.example.com/x") is None
    assert "callbacks.allow" in (p.reason("https://other.example.com/x") or "")
    assert "callbacks.allow" in (p.reason("http://127.0.0.1/x") or "")


def test_deny_wins_over_allow() -> None:
    p = UrlPolicy(allow=("10.0.0.0/8",), deny=("10.9.0.0/16",))
    assert p.reason("http://10.1.0.1/") is None
    assert "callbacks.deny" in (p.reason("http://10.9.0.1/") or "")


def test_resolved_addresses_are_checked_every_one() -> None:
    p = UrlPolicy()
    p.check_resolved("ok.example.com", [ipaddress.ip_address("203.0.113.5")])
    with pytest.raises(UrlRefused, match="metadata"):
        p.check_resolved("rebind.example.com", [ipaddress.ip_address("203.0.113.5"), ipaddress.ip_address("169.254.169.254")])
    # an allowlisted CIDR admits a name that resolves into it, and nothing else
    q = UrlPolicy(allow=("10.1.0.0/16",))
    q.check_resolved("dialer.internal", [ipaddress.ip_address("10.1.2.3")])
    with pytest.raises(UrlRefused, match="callbacks.allow"):
        q.check_resolved("dialer.internal", [ipaddress.ip_address("10.2.0.1")])


def test_a_bad_entry_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="callbacks.deny.*not a hostname"):
        UrlPolicy(deny=("http://x/",))


def test_settings_read_lists_from_toml_and_comma_lists_from_env(tmp_path: Path) -> None:
    f = tmp_path / "ari-amd.toml"
    f.write_text('[callbacks]\nallow = ["dialer.example.com", "10.0.0.0/8"]\ndeny = ["loopback"]\n'
                 "[http]\nmax_calls_per_account = 7\n")
    s = load_settings(f, {})
    assert s.callbacks_allow == ("dialer.example.com", "10.0.0.0/8") and s.callbacks_deny == ("loopback",)
    assert s.http_max_calls_per_account == 7
    s = load_settings(None, {"ARI_AMD_CALLBACKS_DENY": "private, loopback", "ARI_AMD_HTTP_MAX_BODY_BYTES": "2048"})
    assert s.callbacks_deny == ("private", "loopback") and s.http_max_body_bytes == 2048
    with pytest.raises(ConfigError, match="callbacks.deny"):
        load_settings(None, {"ARI_AMD_CALLBACKS_DENY": "not a host!"})
    with pytest.raises(ConfigError, match="list of strings"):
        f.write_text("[callbacks]\nallow = 3\n")
        load_settings(f, {})


# -- at send time ------------------------------------------------------------------------------
class FixedResolver(AbstractResolver):
    """Every name resolves to one address: a DNS answer the test chooses."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [{"hostname": host, "host": self.address, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[str]]]:
    """/ok answers; /to-metadata redirects to the metadata address; /to-ok redirects to /ok."""
    hits: list[str] = []
    port = free_port()

    async def handle(r: web.Request) -> web.Response:
        hits.append(r.path)
        if r.path == "/to-metadata":
            return web.Response(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        if r.path == "/to-ok":
            return web.Response(status=307, headers={"Location": "/ok"})
        return web.Response(text="fine")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port, hits
    await runner.cleanup()


def _session(policy: UrlPolicy, address: str = "127.0.0.1") -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=PolicyResolver(policy, FixedResolver(address))))


async def test_a_name_resolving_to_a_denied_address_is_not_connected_to(server: tuple[int, list[str]]) -> None:
    port, hits = server
    policy = UrlPolicy(deny=("loopback",))
    async with _session(policy) as s:
        with pytest.raises(UrlRefused, match="loopback"):
            await request(s, policy, "GET", f"http://innocent.example.com:{port}/ok")
    assert hits == []


async def test_redirects_are_followed_only_to_allowed_hosts(server: tuple[int, list[str]]) -> None:
    port, hits = server
    policy = UrlPolicy()
    async with _session(policy) as s:
        reply = await request(s, policy, "POST", f"http://hooks.example.com:{port}/to-ok", data=b"x")
        assert reply.status == 200 and reply.body == b"fine" and reply.url.endswith("/ok")
        with pytest.raises(UrlRefused, match="metadata"):
            await request(s, policy, "GET", f"http://hooks.example.com:{port}/to-metadata")
    assert hits == ["/to-ok", "/ok", "/to-metadata"]


async def test_the_outbox_refuses_a_denied_callback_for_good_and_logs_it(tmp_path: Path, server: tuple[int, list[str]]) -> None:
    port, hits = server
    box = Outbox(tmp_path / "o.db", policy=UrlPolicy(deny=("loopback",)), base_delay_s=0.01, horizon_s=30)
    await box.start()
    try:
        with structlog.testing.capture_logs() as logs:
            key = await box.enqueue(f"http://127.0.0.1:{port}/ok?secret=s3cr3t", form={"a": "1"})
            await box.wait_idle(5)
        state, attempts = (await box.states())[key]
    finally:
        await box.close()
    assert (state, attempts) == ("failed", 1) and hits == []
    refused = [e for e in logs if e["event"] == "callback_url_refused"]
    assert refused and "loopback" in refused[0]["reason"] and "s3cr3t" not in repr(refused)


async def test_the_outbox_delivers_through_a_redirect_to_an_allowed_host(tmp_path: Path, server: tuple[int, list[str]]) -> None:
    port, hits = server
    box = Outbox(tmp_path / "o.db", base_delay_s=0.01, horizon_s=30)
    await box.start()
    try:
        key = await box.enqueue(f"http://127.0.0.1:{port}/to-ok", form={"a": "1"})
        await box.wait_idle(5)
        assert (await box.states())[key][0] == "delivered"
    finally:
        await box.close()
    assert hits == ["/to-ok", "/ok"]




def test_the_service_settings_reach_the_api() -> None:
    from ari_amd.api import ApiSettings

    s = ApiSettings.coerce(load_settings(None, {
        "ARI_AMD_CALLBACKS_ALLOW": "dialer.example.com", "ARI_AMD_CALLBACKS_DENY": "loopback",
        "ARI_AMD_HTTP_MAX_CALLS_PER_ACCOUNT": "5", "ARI_AMD_HTTP_MAX_BODY_BYTES": "4096",
    }))
    assert s.url_policy == UrlPolicy(("dialer.example.com",), ("loopback",))
    assert (s.max_calls_per_account, s.max_body_bytes) == (5, 4096)
    d = ApiSettings.coerce(load_settings(None, {}))
    assert d.url_policy == UrlPolicy() and d.max_calls_per_account == 100 and d.max_body_bytes == 64 * 1024


def test_ipv4_compatible_and_nat64_addresses_are_judged_by_their_ipv4() -> None:
    assert "metadata" in (UrlPolicy().reason("http://[::169.254.169.254]/") or "")
    assert "metadata" in (UrlPolicy().reason("http://[64:ff9b::a9fe:a9fe]/") or "")
    assert "loopback" in (UrlPolicy(deny=("loopback",)).reason("http://[::ffff:127.0.0.1]/") or "")
    assert UrlPolicy().reason("http://[::1]/") is None  # ::1 is loopback, not ::0.0.0.1


async def test_an_attempt_that_raises_something_unexpected_is_retried_not_stuck(
    tmp_path: Path, server: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ari_amd.calls.outbox as outbox_module

    port, hits = server
    real = outbox_module.request
    calls: list[int] = []

    async def flaky(*a: object, **kw: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return await real(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox_module, "request", flaky)
    box = Outbox(tmp_path / "o.db", base_delay_s=0.01, max_delay_s=0.02, horizon_s=30)
    await box.start()
    try:
        key = await box.enqueue(f"http://127.0.0.1:{port}/ok", form={"a": "1"})
        await box.wait_idle(5)
        assert (await box.states())[key] == ("delivered", 2)
    finally:
        await box.close()
    assert hits == ["/ok"]

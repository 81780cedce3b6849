"""Which URLs ari-amd may request: callbacks, TwiML documents, redirects (SSRF defence).

Anyone with an account can make ari-amd request a URL of their choosing, from the host it runs on,
which often sits next to the dialer and inside a cloud. So every URL is checked twice:

- its literal host when it is given (the API answers 400 naming the parameter), and
- at send time, every address its name resolves to (a custom aiohttp resolver, so the addresses
  checked are the ones connected to) and every redirect hop (redirects are followed here, each
  hop checked, never by aiohttp on its own).

Entries of `allow` / `deny`: a hostname (`dialer.example.com`), a domain's subdomains
(`*.example.com`), an address or CIDR (`10.1.0.0/16`, `fd00::/8`), or a class name (CLASSES).

- Always refused: schemes other than http and https.
- Refused unless allowed by name: the DEFAULT_DENY classes (link-local, cloud metadata, multicast,
  unspecified, reserved). An `allow` entry lifts one only by naming it or a range inside it, so
  `allow = ["0.0.0.0/0"]` does not open the metadata address; `allow = ["169.254.10.0/24"]` does
  open that range.
- `deny` entries are refused, whatever `allow` says. Loopback and private ranges are allowed by
  default (the dialer is often next door): `deny = ["loopback", "private"]` closes them.
- A non-empty `allow` is an allowlist: the URL's host must match a name entry, or every address it
  resolves to must match an address entry.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDictProxy
from yarl import URL

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
MAX_REDIRECTS = 10
_N = ipaddress.ip_network
CLASSES: Mapping[str, tuple[Network, ...]] = {
    "loopback": (_N("127.0.0.0/8"), _N("::1/128")),
    "private": (_N("10.0.0.0/8"), _N("172.16.0.0/12"), _N("192.168.0.0/16"), _N("100.64.0.0/10"), _N("fc00::/7")),
    "link-local": (_N("169.254.0.0/16"), _N("fe80::/10")),
    # AWS/GCP/Azure/OpenStack 169.254.169.254 (inside link-local, named for a clear message),
    # AWS's IPv6 one, Alibaba's
    "metadata": (_N("169.254.169.254/32"), _N("fd00:ec2::254/128"), _N("100.100.100.200/32")),
    "multicast": (_N("224.0.0.0/4"), _N("ff00::/8")),
    "unspecified": (_N("0.0.0.0/8"), _N("::/128")),
    "reserved": (_N("240.0.0.0/4"),),  # 255.255.255.255 among them
}
DEFAULT_DENY = ("metadata", "link-local", "multicast", "unspecified", "reserved")  # checked in this order
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data"})
LOOPBACK_NAMES = ("localhost",)
# inet_aton's forms: 2852039166, 0xa9fea9fe, 0251.0376.0251.0376, 169.254.43518
_NUMERIC_V4 = re.compile(r"^(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}$")
_NAME = re.compile(r"^(?:\*\.)?[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?)*$")


class UrlRefused(Exception):
    """A URL the policy does not let ari-amd request; str() says why (never the query)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Entries:
    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()  # ".example.com" for "*.example.com"
    networks: tuple[Network, ...] = ()
    classes: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str], setting: str) -> _Entries:
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[Network] = []
        classes: set[str] = set()
        for raw in entries:
            e = raw.strip().lower().rstrip(".")
            if not e:
                continue
            if e in CLASSES:
                classes.add(e)
                continue
            try:
                networks.append(ipaddress.ip_network(e.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if not _NAME.match(e):
                raise ValueError(
                    f"{setting}: {raw!r} is not a hostname, *.domain, address, CIDR or one of {', '.join(CLASSES)}"
                )
            if e.startswith("*."):
                suffixes.append(e[1:])
            else:
                names.add(e)
        return cls(frozenset(names), tuple(suffixes), tuple(networks), frozenset(classes))

    def __bool__(self) -> bool:
        return bool(self.names or self.suffixes or self.networks or self.classes)

    def has_name(self, host: str) -> bool:
        return host in self.names or any(host.endswith(s) for s in self.suffixes)

    def has_address(self, addr: Address) -> bool:
        return any(addr in n for n in self.networks) or any(_in_class(addr, c) for c in self.classes)

    def lifts(self, klass: str, addr: Address) -> bool:
        """An explicit exception to a default-denied class: the class by name, or a range inside it
        (an allowed class counts as its ranges: "metadata" opens 169.254.169.254 inside link-local,
        "link-local" does not open the metadata address)."""
        if klass in self.classes:
            return True
        ranges = [*self.networks, *(n for c in self.classes for n in CLASSES[c])]
        return any(
            addr in n and any(n.version == d.version and n.subnet_of(d) for d in CLASSES[klass])  # type: ignore[arg-type]
            for n in ranges
        )


def _in_class(addr: Address, klass: str) -> bool:
    return any(addr in n for n in CLASSES[klass])


def _embedded_v4(addr: Address) -> Address:
    """The IPv4 address an IPv6 one carries (::ffff:a.b.c.d, 6to4, NAT64), else itself."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.sixtofour is not None:
            return addr.sixtofour
        if addr in _N("64:ff9b::/96") or (addr in _N("::/96") and int(addr) > 1):  # NAT64; IPv4-compatible ::a.b.c.d
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


def _same_host(a: str, b: str) -> bool:
    a, b = a.lower().rstrip(".").strip("[]"), b.lower().rstrip(".").strip("[]")
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def _a(klass: str) -> str:
    return ("an " if klass[0] in "aeiou" else "a ") + klass


def _literal(host: str) -> Address | None:
    """The address a URL's host names, if it is one; UrlRefused for inet_aton's odd IPv4 forms."""
    h = host.strip("[]")
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        pass
    if _NUMERIC_V4.match(h):
        try:
            socket.inet_aton(h)
        except OSError:
            return None
        raise UrlRefused(f"host {host!r} is not a canonical IPv4 address")
    return None


@dataclass(frozen=True)
class UrlPolicy:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    _allow: _Entries = field(init=False, repr=False, compare=False)
    _deny: _Entries = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """ValueError naming the bad entry."""
        object.__setattr__(self, "_allow", _Entries.parse(self.allow, "callbacks.allow"))
        object.__setattr__(self, "_deny", _Entries.parse(self.deny, "callbacks.deny"))

    # -- the checks ------------------------------------------------------------------------------
    def check_url(self, url: str | URL) -> None:
        """The literal check: scheme and host (names are checked again once resolved)."""
        if isinstance(url, URL):
            scheme, host = url.scheme, url.raw_host or ""
        else:
            if "\\" in url or any(ord(c) < 33 or ord(c) == 127 for c in url):
                raise UrlRefused("the URL holds backslashes, spaces or control characters")
            try:
                p = urlsplit(url)
                scheme, host = p.scheme, p.hostname or ""
                y = URL(url)
            except ValueError:
                raise UrlRefused("the URL does not parse") from None
            if not _same_host(y.host or "", host):
                raise UrlRefused("the URL's host is ambiguous")  # parsers disagree: never guess which one connects
        if scheme.lower() not in SCHEMES:
            raise UrlRefused(f"scheme {scheme or '(none)'!r} is not http or https")
        if not host:
            raise UrlRefused("the URL has no host")
        self.check_host(host)

    def check_host(self, host: str) -> None:
        h = host.lower().rstrip(".").strip("[]")
        addr = _literal(h)
        if addr is not None:
            self.check_address(addr, host)
            if self._allow and not self._allow.has_address(_embedded_v4(addr)) and not self._allow.has_address(addr):
                raise UrlRefused(f"{host} is not in callbacks.allow")
            return
        if self._deny.has_name(h):
            raise UrlRefused(f"{h} is in callbacks.deny")
        if h in METADATA_NAMES and h not in self._allow.names:
            raise UrlRefused(f"{h} is a cloud metadata service")
        if h in LOOPBACK_NAMES or h.endswith(".localhost"):
            self.check_address(ipaddress.ip_address("127.0.0.1"), h)
        if self._allow and not self._allow.has_name(h) and not (self._allow.networks or self._allow.classes):
            raise UrlRefused(f"{h} is not in callbacks.allow")  # no address entry could let it in later

    def check_address(self, addr: Address, host: str = "") -> None:
        """A resolved (or literal) address against deny and the default-denied classes."""
        what = f"{host} ({addr})" if host and host.strip("[]") != str(addr) else str(addr)
        for a in {addr, _embedded_v4(addr)}:
            for n in self._deny.networks:
                if a in n:
                    raise UrlRefused(f"{what} is in callbacks.deny ({n})")
            for c in self._deny.classes:
                if _in_class(a, c):
                    raise UrlRefused(f"{what} is {_a(c)} address, denied by callbacks.deny")
            for c in DEFAULT_DENY:
                if _in_class(a, c) and not self._allow.lifts(c, a):
                    raise UrlRefused(f"{what} is {_a(c)} address, denied by default")

    def check_resolved(self, host: str, addresses: Iterable[Address]) -> None:
        """Every address a name resolved to: one denied refuses the name (a rebinding answer
        mixing a good address with a bad one gets nowhere)."""
        h = host.lower().rstrip(".")
        name_allowed = self._allow.has_name(h)
        for addr in addresses:
            self.check_address(addr, h)
            if self._allow and not name_allowed and not self._allow.has_address(_embedded_v4(addr)):
                raise UrlRefused(f"{h} ({addr}) is not in callbacks.allow")

    def reason(self, url: str) -> str | None:
        """Why the URL is refused, or None."""
        try:
            self.check_url(url)
        except UrlRefused as e:
            return e.reason
        return None


# -- at send time ------------------------------------------------------------------------------
class PolicyResolver(AbstractResolver):
    """aiohttp's resolver, with every answer checked: aiohttp connects only to what it returns."""

    def __init__(self, policy: UrlPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        try:
            addresses = [ipaddress.ip_address(r["host"]) for r in results]
        except ValueError:
            raise UrlRefused(f"{host} resolved to something that is not an address") from None
        self.policy.check_resolved(host, addresses)
        return results

    async def close(self) -> None:
        await self.inner.close()


def client_session(policy: UrlPolicy, timeout_s: float) -> aiohttp.ClientSession:
    """A session whose connections go only where the policy lets them."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=PolicyResolver(policy)),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    )


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str  # the last hop's
    charset: str | None


async def request(
    session: aiohttp.ClientSession,
    policy: UrlPolicy,
    method: str,
    url: str,
    *,
    data: Any = None,
    headers: Mapping[str, str] | None = None,
    max_body: int | None = None,
    max_redirects: int = MAX_REDIRECTS,
) -> Reply:
    """One exchange, following redirects ourselves so each hop is checked (the session's
    resolver checks the addresses). max_body: read at most that + 1 bytes of the body.
    UrlRefused when a hop is refused; aiohttp's errors as they are."""
    try:
        target = URL(url, encoded=True)
    except ValueError:
        raise UrlRefused("the URL does not parse") from None  # ValueError's text may hold the URL's userinfo
    method = method.upper()
    for _ in range(max_redirects + 1):
        policy.check_url(target)
        async with session.request(method, target, data=data, headers=headers, allow_redirects=False) as resp:
            location = resp.headers.get("Location")
            if resp.status in (301, 302, 303, 307, 308) and location:
                try:
                    nxt = target.join(URL(location))
                except ValueError:
                    raise UrlRefused("a redirect's Location does not parse") from None
                if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                    method, data = "GET", None  # as browsers and aiohttp do
                target = nxt
                continue
            body = await (resp.content.read(max_body + 1) if max_body is not None else resp.read())
            return Reply(resp.status, resp.headers, body, str(resp.url), resp.charset)
    raise aiohttp.ClientError(f"more than {max_redirects} redirects")

"""Fuzz the HTTP API from its own /openapi.json (schemathesis): no 500, and every answer is one
the document lists (status, content type, body schema). The app runs with the fake engine on a
real local port, in a thread with its own event loop (schemathesis's test is synchronous)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from ari_amd.api import create_app
from ari_amd.api.openapi import document
from ari_amd.calls import urlpolicy
from ari_amd.calls.outbox import Outbox
from ari_amd.calls.urlpolicy import UrlPolicy
from tests.test_api_fakes import SID, TOKEN, FakeEngine, Script, free_port, settings_for

# schemathesis's own strategies use `random` (its issue, not ours): keep the report readable
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
# per operation: the module stays well under a minute; ARI_AMD_FUZZ_EXAMPLES=500 for a deeper run
MAX_EXAMPLES = int(os.environ.get("ARI_AMD_FUZZ_EXAMPLES", "60"))


class Served:
    """The app on 127.0.0.1:<port> in a background thread, until stop()."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._tmp = tmp
        self._thread = threading.Thread(target=self._run, name="api-under-fuzz", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the app did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.engine = FakeEngine()
        self.engine.script = Script(hold_s=0.05)  # calls end on their own: the account's limit is not the test
        # Only 127.0.0.1 by address, and no DNS (NoDns): generated callbacks never leave this machine
        s = settings_for(self._tmp, url_policy=UrlPolicy(allow=("127.0.0.1",)))
        self.outbox = Outbox(
            s.outbox_path, attempt_timeout_s=0.5, horizon_s=1.0, base_delay_s=0.05, max_delay_s=0.1, policy=s.url_policy
        )
        self.runner = web.AppRunner(create_app(self.engine, s, outbox=self.outbox))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        await self.engine.close()
        await self.runner.cleanup()
        await self.outbox.close()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class NoDns(AbstractResolver):
    """Generated callback names are never looked up, let alone requested: the test stays on this
    machine whatever its network (a name fails like an unreachable host, 127.0.0.1 stays reachable)."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        raise OSError(f"no DNS under fuzzing ({len(host)} characters)")

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(urlpolicy.aiohttp, "ThreadedResolver", NoDns)  # what PolicyResolver wraps
        s = Served(Path(tmp))
        try:
            yield s
        finally:
            s.stop()


# Callback URLs as an attacker writes them, not only RFC 3986's: every scheme, host spelling and
# port that has fooled a URL parser or an SSRF filter somewhere.
HOSTILE_URLS = st.builds(
    "{}{}{}{}{}".format,
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "file://", "gopher://", "http:/", "//", ""]),
    st.sampled_from(["", "u:p@", "@", "user@evil.example@", "a%40b@"]),
    st.sampled_from([
        "127.0.0.1", "localhost", "169.254.169.254", "metadata.google.internal", "[::1]", "[fe80::1%25eth0]",
        "[::ffff:169.254.169.254]", "[fd00:ec2::254]", "2852039166", "0x7f.1", "0.0.0.0", "[::]", "224.0.0.1",
        "ü.example", "xn--nxasmq6b.example", "", "[", "[::1", "a b", "a\\b", "10.0.0.1", "example.com.",
    ]),
    st.sampled_from(["", ":0", ":80", ":65535", ":65536", ":99999", ":x", ":"]),
    st.sampled_from(["", "/", "/twiml?x=1", "/%00", "/..%2f..", "#frag", "?a=b&a=c", "/\u202e"]),
)
schemathesis.openapi.format("uri", st.one_of(HOSTILE_URLS, st.text(max_size=40)))
schema = schemathesis.openapi.from_dict(document())


def credentials(path: str) -> dict[str, str]:
    if path.startswith("/v2/"):
        return {"Authorization": f"Bearer {TOKEN}"}
    return {"Authorization": "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_every_generated_request_as_documented(case: schemathesis.Case, served: Served) -> None:
    # the account in the path is the authenticated one, so requests get past 401 to the validators
    for name in ("AccountSid", "auth_id"):
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = SID
    case.call_and_validate(
        base_url=served.base,
        headers=credentials(case.path),
        timeout=10,
        # Every other check runs (no 5xx, documented status / content type / body / headers, auth
        # not ignored, Allow on 405). These two hold the API to the schema's exact accept set, which
        # it does not mean to match: an empty field is an absent one and unknown fields are
        # ignored (as Twilio does), while URL policy, Url-xor-Twiml and per-account limits refuse
        # what a schema cannot describe. The dialect tests pin those rules.
        excluded_checks=[negative_data_rejection, positive_data_acceptance],
    )


def raw_post(port: int, path: str, authorization: bytes, body: bytes, content_type: bytes) -> int:
    """One POST written byte for byte (no client library would send these headers); its status."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + authorization
            + b"\r\nContent-Type: " + content_type + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n" + body
        )
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


_HEADER_BYTES = st.binary(max_size=80).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00"))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from([f"/2010-04-01/Accounts/{SID}/Calls.json", f"/v1/Account/{SID}/Call/", "/v2/calls"]),
    scheme=st.sampled_from([b"Basic ", b"Bearer ", b"basic ", b"", b"Digest "]),
    credential=st.one_of(_HEADER_BYTES, _HEADER_BYTES.map(base64.b64encode), st.just(base64.b64encode(f"{SID}:".encode()))),
    body=st.one_of(st.binary(max_size=200), st.just(b"{}"), st.just(b"To=1&From=2")),
    content_type=st.sampled_from([b"application/json", b"application/x-www-form-urlencoded", b"text/plain", b"multipart/form-data"]),
)
def test_any_authorization_bytes_are_refused_cleanly(
    served: Served, path: str, scheme: bytes, credential: bytes, body: bytes, content_type: bytes
) -> None:
    """Credentials are checked before the body is read: whatever the bytes, a 401 (or aiohttp's
    own 400 for a header it cannot parse), never a 500."""
    assert raw_post(served.port, path, scheme + credential, body, content_type) in (400, 401)

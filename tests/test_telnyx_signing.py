"""Telnyx-dialect webhooks are signed Ed25519 as Telnyx signs them, at each attempt; Telnyx's own
SDK (telnyx.Telnyx().webhooks.unwrap) is the judge."""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import telnyx
from aiohttp import web

from ari_amd.calls.config import ConfigError, load_settings
from ari_amd.calls.outbox import Outbox
from ari_amd.calls.telnyx_signing import SIGNATURE_HEADER, SIGNER, TIMESTAMP_HEADER, TelnyxSigner, load_signer
from ari_amd.cli import main
from tests.test_outbox import free_port

SEED = bytes(range(32))
EVENT = {"data": {"event_type": "call.machine.detection.ended", "id": "e1", "occurred_at": "2026-12-01T09:00:00.000000Z",
                  "payload": {"call_control_id": "v3:x", "result": "human"}, "record_type": "event"}}


def verify(public_key: str, body: bytes, headers: dict[str, str]) -> object:
    client = telnyx.Telnyx(api_key="KEY-unused", public_key=public_key)
    return client.webhooks.unwrap(body.decode(), headers=headers)


def test_telnyxs_sdk_accepts_the_signature_and_refuses_a_changed_body_or_another_key() -> None:
    signer = TelnyxSigner(SEED)
    body = json.dumps(EVENT).encode()
    headers = signer.headers(body)
    assert set(headers) == {SIGNATURE_HEADER, TIMESTAMP_HEADER}
    event = verify(signer.public_key, body, headers)
    assert event.data.event_type == "call.machine.detection.ended"
    with pytest.raises(ValueError, match="does not match"):
        verify(signer.public_key, body.replace(b"human", b"machine"), headers)
    with pytest.raises(ValueError, match="does not match"):
        verify(TelnyxSigner(bytes(32)).public_key, body, headers)


def test_a_signature_made_long_ago_is_refused_so_each_attempt_signs_anew() -> None:
    old = TelnyxSigner(SEED, clock=lambda: 1_000_000_000.0)
    body = json.dumps(EVENT).encode()
    with pytest.raises(ValueError, match="too old"):
        verify(old.public_key, body, old.headers(body))


def test_the_key_is_made_once_owner_only_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    first = load_signer("", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_signer("", path).public_key == first.public_key
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]  # no temporary left behind
    configured = TelnyxSigner(SEED)
    assert load_signer(base64.b64encode(SEED).decode(), path).public_key == configured.public_key


def test_a_bad_configured_key_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="telnyx.signing_key must be base64 of 32 bytes"):
        load_settings(env={"ARI_AMD_TELNYX_SIGNING_KEY": "c2hvcnQ="})
    with pytest.raises(ConfigError, match="telnyx.signing_key must be base64"):
        load_settings(env={"ARI_AMD_TELNYX_SIGNING_KEY": "not base64!"})


def test_the_cli_prints_the_public_key_verifiers_take(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARI_AMD_CALLBACKS_OUTBOX", str(tmp_path / "outbox.sqlite3"))
    assert main(["telnyx-public-key"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == load_signer("", tmp_path / "ari-amd-telnyx-ed25519.key").public_key


class RawReceiver:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.hits: list[tuple[bytes, dict[str, str]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append((await request.read(), dict(request.headers)))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def raw_receiver() -> AsyncIterator[tuple[RawReceiver, str]]:
    r = RawReceiver([503])
    app = web.Application()
    app.router.add_post("/tx", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield r, f"http://127.0.0.1:{port}/tx"
    await runner.cleanup()


async def test_the_outbox_signs_every_attempt_even_after_a_restart(
    tmp_path: Path, raw_receiver: tuple[RawReceiver, str]
) -> None:
    receiver, url = raw_receiver
    now = [1_800_000_000.0]

    def clock() -> float:  # ten seconds pass between any two signatures
        now[0] += 10
        return now[0]

    signer = TelnyxSigner(SEED, clock=clock)
    body = json.dumps(EVENT).encode()
    db = tmp_path / "o.db"
    box = Outbox(db, base_delay_s=0.01, max_delay_s=0.02, horizon_s=30)
    box.add_signer(SIGNER, signer.headers)
    with pytest.raises(ValueError, match="no signer 'other'"):
        await box.enqueue(url, body=body, signer="other")
    await box.enqueue(url, body=body, headers={"Content-Type": "application/json"}, signer=SIGNER)
    await box.close()  # enqueued, never sent: the next process signs it
    now[0] += 3600
    box = Outbox(db, base_delay_s=0.01, max_delay_s=0.02, horizon_s=7200)
    box.add_signer(SIGNER, signer.headers)
    await box.start()
    await box.wait_idle(5)
    await box.close()
    (b1, h1), (b2, h2) = receiver.hits  # a 503, then delivered
    assert b1 == b2 == body
    # Signed when sent, an hour after the enqueue, and again for the retry: never at enqueue.
    assert (int(h1[TIMESTAMP_HEADER]), int(h2[TIMESTAMP_HEADER])) == (1_800_003_610, 1_800_003_620)
    assert h1[SIGNATURE_HEADER] != h2[SIGNATURE_HEADER]
    live = TelnyxSigner(SEED)  # and what the signer makes now, the SDK takes
    verify(live.public_key, body, live.headers(body))


async def test_an_outbox_file_from_before_signers_opens_and_delivers(
    tmp_path: Path, raw_receiver: tuple[RawReceiver, str]
) -> None:
    receiver, url = raw_receiver
    receiver.statuses.clear()
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as c:
        c.executescript(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, url TEXT NOT NULL,"
            " method TEXT NOT NULL, headers TEXT NOT NULL, body BLOB, created REAL NOT NULL, next_at REAL NOT NULL,"
            " attempts INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'pending', last_error TEXT);"
        )
        c.execute("INSERT INTO outbox (key, url, method, headers, body, created, next_at) VALUES (?,?,?,?,?,?,?)",
                  ("k1", url, "POST", "{}", b"old", 0.0, 0.0))
    box = Outbox(db, base_delay_s=0.01, horizon_s=1e12)
    await box.start()
    await box.wait_idle(5)
    await box.close()
    assert [b for b, _ in receiver.hits] == [b"old"]

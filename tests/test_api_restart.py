"""The issue's durability promise at the API level: ari-amd (the app, over the fake engine) sends
verdicts to a callback server that is down, is killed -9, and a restarted ari-amd delivers every
one of them once, signed, to the server now up."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import aiohttp
from twilio.request_validator import RequestValidator

from ari_amd.calls.outbox import IDEMPOTENCY_HEADER
from tests.test_api_fakes import SID, TOKEN, Receiver, free_port

REPO = Path(__file__).resolve().parent.parent

SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from aiohttp import web
    from ari_amd.api import ApiSettings, create_app
    from ari_amd.calls.outbox import Outbox
    from tests.test_api_fakes import SID, TOKEN, FakeEngine

    async def main(db, port):
        settings = ApiSettings(accounts={SID: TOKEN}, endpoint_template="PJSIP/{number}@sipp", outbox_path=db)
        outbox = Outbox(db, attempt_timeout_s=1.0, base_delay_s=0.05, max_delay_s=0.2, horizon_s=120)
        runner = web.AppRunner(create_app(FakeEngine(), settings, outbox=outbox))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", file=sys.stderr, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def start_server(db: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(db), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.strip() == "ready", line
    return proc


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def pending(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return int(c.execute("SELECT COUNT(*) FROM outbox WHERE state='pending'").fetchone()[0])


async def test_verdicts_survive_a_kill_9_while_the_callback_server_is_down(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    api_port = free_port()
    receiver = Receiver()  # its port is chosen; nothing listens there yet
    proc = await asyncio.to_thread(start_server, db, api_port)
    sids = []
    try:
        auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        async with aiohttp.ClientSession(headers={"Authorization": auth}) as s:
            for n in range(4):
                form = {
                    "To": f"+1555010{n}",
                    "From": "+15550199",
                    "MachineDetection": "Enable",
                    "AsyncAmd": "true",
                    "AsyncAmdStatusCallback": receiver.base + "/amd",
                    "StatusCallback": receiver.base + "/status",
                }
                async with s.post(f"http://127.0.0.1:{api_port}/2010-04-01/Accounts/{SID}/Calls.json", data=form) as r:
                    assert r.status == 201
                    sids.append((await r.json())["sid"])
        deadline = time.monotonic() + 10
        while pending(db) < 8:  # 4 verdicts and 4 completed statuses, written before any attempt
            assert time.monotonic() < deadline, f"only {pending(db)} callbacks pending"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a few failed attempts against the dead receiver
    finally:
        kill9(proc)
    await receiver.start()
    proc = await asyncio.to_thread(start_server, db, free_port())
    try:
        hits = await receiver.wait_for("/amd", 4, timeout=10)
        await receiver.wait_for("/status", 4, timeout=10)
        await asyncio.sleep(0.5)  # room for a duplicate to show up
    finally:
        kill9(proc)
        await receiver.stop()
    assert sorted(h.form["CallSid"] for h in hits) == sorted(sids)
    assert {h.form["AnsweredBy"] for h in hits} == {"human"}
    tokens = Counter(h.headers[IDEMPOTENCY_HEADER] for h in receiver.hits)
    assert len(tokens) == 8 and set(tokens.values()) == {1}, tokens
    for h in receiver.hits:
        assert RequestValidator(TOKEN).validate(h.url, h.form, h.headers["X-Twilio-Signature"])
    assert pending(db) == 0

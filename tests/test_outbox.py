"""The outbox against a real local HTTP receiver: retries, final refusals, the horizon, and a real
kill -9 of a process holding pending callbacks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
from aiohttp import web

from ari_amd.calls.outbox import IDEMPOTENCY_HEADER, Outbox, redact_url

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A callback endpoint that records every request and answers from a script of statuses."""

    def __init__(self, port: int, statuses: list[int] | None = None, delay_s: float = 0.0) -> None:
        self.port = port
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        self.requests: list[dict[str, object]] = []
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.post() if request.method == "POST" else {}
        self.requests.append(
            {"method": request.method, "path": request.path_qs, "headers": dict(request.headers), "form": dict(body)}
        )
        if self.delay_s:
            delay, self.delay_s = self.delay_s, 0.0  # only the first request is slow
            await asyncio.sleep(delay)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def tokens(self) -> Counter[str]:
        return Counter(str(r["headers"][IDEMPOTENCY_HEADER]) for r in self.requests)  # type: ignore[index]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(free_port())
    await r.start()
    yield r
    await r.stop()


def fast_outbox(path: Path, **kw: float) -> Outbox:
    opts: dict[str, float] = {"attempt_timeout_s": 2.0, "base_delay_s": 0.02, "max_delay_s": 0.1, "horizon_s": 30.0}
    opts.update(kw)
    return Outbox(path, **opts)  # type: ignore[arg-type]


async def test_a_form_callback_arrives_with_its_headers_and_token(tmp_path: Path, receiver: Receiver) -> None:
    box = fast_outbox(tmp_path / "o.db")
    await box.start()
    key = await box.enqueue(
        receiver.url + "/amd?x=1", form={"CallSid": "CA1", "AnsweredBy": "human"}, headers={"X-Twilio-Signature": "s"}
    )
    await box.wait_idle(5)
    await box.close()
    [req] = receiver.requests
    assert req["path"] == "/amd?x=1"
    assert req["form"] == {"CallSid": "CA1", "AnsweredBy": "human"}
    headers = req["headers"]
    assert isinstance(headers, dict)
    assert headers[IDEMPOTENCY_HEADER] == key and headers["X-Twilio-Signature"] == "s"
    assert box.pending() == 0


async def test_get_carries_the_form_in_the_query(tmp_path: Path, receiver: Receiver) -> None:
    box = fast_outbox(tmp_path / "o.db")
    await box.start()
    await box.enqueue(receiver.url + "/cb?a=b", method="GET", form=[("CallSid", "CA1"), ("Ev", "x y")])
    await box.wait_idle(5)
    await box.close()
    assert receiver.requests[0]["method"] == "GET"
    assert receiver.requests[0]["path"] == "/cb?a=b&CallSid=CA1&Ev=x+y"


async def test_5xx_429_and_408_are_retried_until_delivered(tmp_path: Path, receiver: Receiver) -> None:
    receiver.statuses = [500, 503, 429, 408, 200]
    box = fast_outbox(tmp_path / "o.db")
    await box.start()
    key = await box.enqueue(receiver.url + "/cb", json={"a": 1})
    await box.wait_idle(10)
    states = await box.states()
    await box.close()
    assert len(receiver.requests) == 5
    assert receiver.tokens() == Counter({key: 5})  # the same token on every attempt
    assert states[key] == ("delivered", 5)


async def test_a_4xx_is_final_and_not_retried(tmp_path: Path, receiver: Receiver) -> None:
    receiver.statuses = [404, 200]
    box = fast_outbox(tmp_path / "o.db")
    await box.start()
    key = await box.enqueue(receiver.url + "/cb", form={"a": "1"})
    await box.wait_idle(5)
    await asyncio.sleep(0.2)  # room for a wrong retry to happen
    states = await box.states()
    await box.close()
    assert len(receiver.requests) == 1
    assert states[key] == ("failed", 1)


async def test_an_attempt_that_times_out_is_retried(tmp_path: Path, receiver: Receiver) -> None:
    receiver.delay_s = 2.0
    box = fast_outbox(tmp_path / "o.db", attempt_timeout_s=0.3)
    await box.start()
    key = await box.enqueue(receiver.url + "/cb", form={"a": "1"})
    await box.wait_idle(10)
    states = await box.states()
    await box.close()
    assert states[key] == ("delivered", 2)


async def test_it_gives_up_at_the_horizon(tmp_path: Path, receiver: Receiver) -> None:
    receiver.statuses = [500] * 1000
    box = fast_outbox(tmp_path / "o.db", horizon_s=0.3)
    await box.start()
    key = await box.enqueue(receiver.url + "/cb", form={"a": "1"})
    await box.wait_idle(5)
    states = await box.states()
    await box.close()
    assert states[key][0] == "failed"
    assert 1 < len(receiver.requests) < 100
    assert box.pending() == 0


async def test_the_same_key_twice_is_one_callback(tmp_path: Path, receiver: Receiver) -> None:
    box = fast_outbox(tmp_path / "o.db")
    await box.enqueue(receiver.url + "/cb", form={"a": "1"}, key="k1")
    await box.enqueue(receiver.url + "/cb", form={"a": "1"}, key="k1")
    assert box.pending() == 1
    await box.start()
    await box.wait_idle(5)
    await box.close()
    assert receiver.tokens() == Counter({"k1": 1})


async def test_no_credentials_reach_the_logs(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: connection refused, logged as a retry
    box = fast_outbox(tmp_path / "o.db", horizon_s=0.2)
    with structlog.testing.capture_logs() as logs:
        await box.start()
        await box.enqueue(f"http://user:s3cret@127.0.0.1:{port}/cb?token=t0ken", form={"a": "1"})
        await box.wait_idle(5)
        await box.close()
    text = repr(logs)
    assert "callback_retry" in text and "callback_abandoned" in text
    assert "s3cret" not in text and "t0ken" not in text
    assert redact_url("https://u:p@h.example:8443/a/b?x=1") == "https://h.example:8443/a/b"


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from ari_amd.calls.outbox import Outbox

    async def main(db, url, n):
        box = Outbox(db, attempt_timeout_s=1.0, base_delay_s=0.05, max_delay_s=0.2, horizon_s=60)
        await box.start()
        for i in range(n):
            await box.enqueue(url, form={"CallSid": f"CA{i}", "AnsweredBy": "human"}, key=f"verdict-{i}")
        print("enqueued", file=sys.stderr, flush=True)
        await asyncio.sleep(3600)  # retrying against a dead receiver until killed

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_receiver_down_then_up_across_a_kill_9_delivers_everything_once(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    receiver = Receiver(free_port())
    await receiver.start()
    # Phase 1: a first process delivers three verdicts while the receiver is up.
    box = fast_outbox(db)
    await box.start()
    for i in range(3):
        await box.enqueue(receiver.url + "/amd", form={"CallSid": f"CA-early-{i}"}, key=f"early-{i}")
    await box.wait_idle(5)
    await box.close()
    await receiver.stop()
    # Phase 2: the receiver is down; another process enqueues five more, retries, and is killed -9.
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), receiver.url + "/amd", "5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 30)
        assert line.strip() == "enqueued"
        await asyncio.sleep(0.5)  # a few failed attempts
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # Phase 3: the receiver is back; a new process on the same database sends what was pending.
    await receiver.start()
    box = fast_outbox(db)
    await box.open()
    assert box.pending() == 5
    await box.start()
    await box.wait_idle(10)
    states = await box.states()
    await box.close()
    await receiver.stop()
    expected = {f"early-{i}" for i in range(3)} | {f"verdict-{i}" for i in range(5)}
    assert set(receiver.tokens()) == expected
    assert all(n == 1 for n in receiver.tokens().values()), receiver.tokens()
    assert all(state == "delivered" for state, _ in states.values())
    assert min(states[f"verdict-{i}"][1] for i in range(5)) >= 2  # they were tried while the receiver was down


async def test_the_engines_sender_goes_through_the_outbox_signed(tmp_path: Path, receiver: Receiver) -> None:
    from twilio.request_validator import RequestValidator

    from ari_amd.calls.webhooks import OutboxSender

    box = fast_outbox(tmp_path / "o.db")
    await box.start()
    sender = OutboxSender(box)
    fields = {"CallSid": "CA1", "AccountSid": "AC1", "AnsweredBy": "human", "MachineDetectionDuration": "800"}
    url = receiver.url + "/amd?t=1"
    await sender.send(url, "POST", fields, call_id="CA1", auth_token="tok")
    await sender.send(url, "POST", fields, call_id="CA1", auth_token="tok")  # the same callback again: one delivery
    await sender.send(receiver.url + "/get", "GET", fields, call_id="CA1")
    await box.wait_idle(5)
    await box.close()
    post = [r for r in receiver.requests if r["method"] == "POST"]
    get = [r for r in receiver.requests if r["method"] == "GET"]
    assert len(post) == 1 and len(get) == 1
    headers = post[0]["headers"]
    assert isinstance(headers, dict)
    assert RequestValidator("tok").validate(url, post[0]["form"], headers["X-Twilio-Signature"])
    assert str(get[0]["path"]).startswith("/get?CallSid=CA1")


async def test_finished_rows_are_purged_after_the_retention_but_pending_ones_stay(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(tmp_path / "o.db", retention_s=60, clock=lambda: now[0])
    await box.enqueue("http://127.0.0.1:9/a", form={"a": "1"}, key="done")
    await box.enqueue("http://127.0.0.1:9/b", form={"a": "1"}, key="waiting")
    await box._db(lambda c: c.execute("UPDATE outbox SET state='delivered' WHERE key='done'"))
    now[0] += 61
    assert await box.purge() == 1
    assert set(await box.states()) == {"waiting"}
    await box.close()

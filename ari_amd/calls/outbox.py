"""Durable webhook delivery: a SQLite outbox and a worker that sends what it holds.

A callback is written to the database before the first attempt, so a crash (kill -9) between
enqueue and delivery loses nothing: the next Outbox opened on the same file sends it. Delivery is
at-least-once (a crash during an attempt the receiver already got means one more send), so every
row carries an idempotency token, sent in a header on every attempt, for receivers to dedupe on.

SQLite runs on one dedicated thread (all statements in order, none on the event loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json as jsonlib
import random
import sqlite3
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import structlog

from ari_amd.calls.urlpolicy import UrlPolicy, UrlRefused, client_session, request

log = structlog.get_logger(__name__)

T = TypeVar("T")

IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"  # Twilio's name; receivers of every dialect get it
RETRY_STATUSES = frozenset({408, 429})  # and every 5xx; any other 4xx is final
PURGE_EVERY_S = 3600.0
MAX_REPLY_BYTES = 64 * 1024  # what a receiver answers is not used: never read more than this of it

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    method TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB,
    created REAL NOT NULL,
    next_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    signer TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_at);
"""
# Columns added since the first schema: (name, declaration), added to an older file when opened.
_ADDED_COLUMNS = (("signer", "TEXT"),)

# A signer adds headers at each attempt, from the body: for signatures that carry a timestamp
# the receiver checks (Telnyx's), which a retry long after the enqueue would fail.
Signer = Callable[[bytes | None], Mapping[str, str]]

Form = Mapping[str, "str | Sequence[str]"] | Sequence[tuple[str, str]]


def form_pairs(form: Form) -> list[tuple[str, str]]:
    """A form as ordered (name, value) pairs; a repeated name is a sequence of values."""
    if isinstance(form, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, value in form.items():
            if isinstance(value, str):
                pairs.append((name, value))
            else:
                pairs.extend((name, v) for v in value)
        return pairs
    return [(str(n), str(v)) for n, v in form]


def redact_url(url: str) -> str:
    """scheme://host/path: the userinfo and the query may hold credentials."""
    p = urllib.parse.urlsplit(url)
    host = p.hostname or ""
    if p.port:
        host += f":{p.port}"
    return f"{p.scheme}://{host}{p.path}"


@dataclass(frozen=True, slots=True)
class Delivery:
    key: str
    url: str
    method: str
    headers: dict[str, str]
    body: bytes | None
    created: float
    attempts: int
    signer: str | None = None


class Outbox:
    """enqueue() persists a request; start() runs the worker that delivers it.

    attempt_timeout_s bounds one attempt; retries back off exponentially (base_delay_s doubling,
    capped at max_delay_s) with full jitter, until horizon_s after the enqueue, then give up.
    Finished rows older than retention_s are deleted (at open, then hourly).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        attempt_timeout_s: float = 10.0,
        horizon_s: float = 4 * 3600.0,
        base_delay_s: float = 1.0,
        max_delay_s: float = 300.0,
        concurrency: int = 32,
        retention_s: float = 7 * 86400.0,
        idempotency_header: str = IDEMPOTENCY_HEADER,
        clock: Callable[[], float] = time.time,
        policy: UrlPolicy | None = None,
    ) -> None:
        self.path = str(path)
        self.signers: dict[str, Signer] = {}  # name (given to enqueue) -> Signer: see add_signer
        self.attempt_timeout_s = attempt_timeout_s
        self.horizon_s = horizon_s
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.concurrency = concurrency
        self.retention_s = retention_s  # delivered / given-up rows are kept this long, for inspection
        self._purged_at = 0.0
        self.idempotency_header = idempotency_header
        self._clock = clock
        self.policy = policy or UrlPolicy()  # checked on every attempt: each redirect hop, each resolved address
        self._db_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-db")
        self._conn: sqlite3.Connection | None = None
        self._pending = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._inflight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._opened = False
        # Called with each attempt's outcome (delivered, http_error, network_error, timeout,
        # gave_up): the service counts them for /metrics.
        self.on_attempt: Callable[[str], None] | None = None

    # -- database (always on the db thread) ----------------------------------------------------
    async def _db(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            if self._conn is None:
                conn = sqlite3.connect(self.path, isolation_level=None)  # autocommit; one write per statement
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process kill
                conn.executescript(_SCHEMA)
                have = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
                for name, decl in _ADDED_COLUMNS:
                    if name not in have:
                        conn.execute(f"ALTER TABLE outbox ADD COLUMN {name} {decl}")
                self._conn = conn
            return fn(self._conn)

        return await asyncio.get_running_loop().run_in_executor(self._db_thread, run)

    async def open(self) -> Outbox:
        """Create or reopen the database; what a previous process left pending is due at once."""
        if not self._opened:
            now = self._clock()
            self._pending = await self._db(
                lambda c: (
                    c.execute("UPDATE outbox SET next_at=? WHERE state='pending' AND next_at>?", (now, now)),
                    c.execute("SELECT COUNT(*) FROM outbox WHERE state='pending'").fetchone()[0],
                )[1]
            )
            self._opened = True
            await self.purge()
            if self._pending:
                log.info("outbox_resumed", pending=self._pending)
        return self

    # -- the public surface ----------------------------------------------------------------------
    def add_signer(self, name: str, signer: Signer) -> None:
        """Make `name` a signer enqueue() accepts. Add it before start(): rows a previous process
        left with that name are signed by it when they are sent."""
        self.signers[name] = signer

    def pending(self) -> int:
        """Callbacks enqueued and not yet delivered or given up (for a metrics gauge)."""
        return self._pending

    async def enqueue(
        self,
        url: str,
        *,
        method: str = "POST",
        form: Form | None = None,
        json: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
        signer: str | None = None,
    ) -> str:
        """Persist one request and wake the worker; returns its idempotency key.

        Give one of form (GET carries it in the query string), json, or body (bytes sent as
        they are, Content-Type in `headers`: what a signature over the body needs). Enqueueing
        a key already present is a no-op, so a caller that retries its enqueue does not
        duplicate the callback. signer: one of `signers`, applied at every attempt.
        """
        if signer is not None and signer not in self.signers:
            have = ", ".join(sorted(self.signers)) or "none"
            raise ValueError(f"no signer {signer!r} in this outbox (it has: {have})")
        await self.open()
        method = method.upper()
        key = key or uuid.uuid4().hex
        hdrs = dict(headers or {})
        if form is not None:
            encoded = urllib.parse.urlencode(form_pairs(form))
            if method == "GET":
                if encoded:
                    url += ("&" if urllib.parse.urlsplit(url).query else "?") + encoded
            else:
                body = encoded.encode()
                hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif json is not None:
            body = jsonlib.dumps(json, separators=(",", ":")).encode()
            hdrs.setdefault("Content-Type", "application/json")
        hdrs[self.idempotency_header] = key
        now = self._clock()

        def insert(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT OR IGNORE INTO outbox (key, url, method, headers, body, created, next_at, signer)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, url, method, jsonlib.dumps(hdrs), body, now, now, signer),
            )
            return cur.rowcount == 1

        if await self._db(insert):
            self._pending += 1
            self._idle.clear()
            self._wake.set()
        return key

    async def start(self) -> None:
        """Run the delivery worker (idempotent)."""
        await self.open()
        if self._session is None:
            self._session = client_session(self.policy, self.attempt_timeout_s)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="outbox-worker")

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Until nothing is pending (tests, graceful shutdown)."""
        if self._pending == 0:
            return
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        """Stop the worker; attempts in flight are abandoned (still pending, sent again later)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

        def shut(c: sqlite3.Connection) -> None:
            c.close()
            self._conn = None

        if self._conn is not None:
            await self._db(shut)
        self._db_thread.shutdown(wait=False)

    async def purge(self) -> int:
        """Delete delivered and given-up rows older than retention_s; how many went."""
        cutoff = self._clock() - self.retention_s
        self._purged_at = self._clock()
        return await self._db(
            lambda c: c.execute("DELETE FROM outbox WHERE state!='pending' AND created<?", (cutoff,)).rowcount
        )

    async def states(self) -> dict[str, tuple[str, int]]:
        """key -> (state, attempts), for tests and inspection."""
        rows = await self._db(lambda c: c.execute("SELECT key, state, attempts FROM outbox").fetchall())
        return {k: (s, a) for k, s, a in rows}

    # -- the worker -------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database error: keep the worker alive, try again shortly
                log.error("outbox_worker_error", exception=traceback.format_exc())  # text: see plain_traceback
                await asyncio.sleep(1.0)

    async def _step(self) -> None:
        self._wake.clear()
        if self._clock() - self._purged_at > PURGE_EVERY_S:
            await self.purge()
        free = self.concurrency - len(self._inflight)
        if free > 0:
            for d in await self._db(functools.partial(self._due, limit=free)):
                self._inflight.add(d.key)
                task = asyncio.create_task(self._attempt(d))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        timeout: float | None = None  # full, or nothing pending: an attempt's end or enqueue wakes us
        if len(self._inflight) < self.concurrency:
            nxt = await self._db(self._next_at)
            if nxt is not None:
                timeout = max(0.0, nxt - self._clock())
                if timeout == 0.0:
                    return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _due(self, c: sqlite3.Connection, limit: int) -> list[Delivery]:
        skip = tuple(self._inflight)
        marks = ",".join("?" * len(skip))
        sql = (
            "SELECT key, url, method, headers, body, created, attempts, signer FROM outbox"
            " WHERE state='pending' AND next_at<=?"
        )
        if skip:
            sql += f" AND key NOT IN ({marks})"
        sql += " ORDER BY next_at, id LIMIT ?"
        rows = c.execute(sql, (self._clock(), *skip, limit)).fetchall()
        return [Delivery(k, u, m, jsonlib.loads(h), b, cr, a, sg) for k, u, m, h, b, cr, a, sg in rows]

    def _next_at(self, c: sqlite3.Connection) -> float | None:
        skip = tuple(self._inflight)
        sql = "SELECT MIN(next_at) FROM outbox WHERE state='pending'"
        if skip:
            sql += f" AND key NOT IN ({','.join('?' * len(skip))})"
        row = c.execute(sql, skip).fetchone()
        return row[0] if row else None

    async def _attempt(self, d: Delivery) -> None:
        assert self._session is not None
        attempt = d.attempts + 1
        target = redact_url(d.url)
        retry_after: float | None = None
        try:
            reply = await request(
                self._session, self.policy, d.method, d.url,
                data=d.body, headers=self._headers(d), max_body=MAX_REPLY_BYTES,
            )
            status = reply.status
            retry_after = _retry_after(reply.headers.get("Retry-After"))
            error = None if status < 400 else f"HTTP {status}"
            retry = status >= 500 or status in RETRY_STATUSES
        except UrlRefused as e:  # not sent, and never will be: the policy will say the same next time
            status, error, retry = 0, f"refused: {e.reason}", False
            log.warning("callback_url_refused", key=d.key, url=target, reason=e.reason)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            status, error, retry = 0, type(e).__name__, True
        except asyncio.CancelledError:
            self._inflight.discard(d.key)
            raise
        except Exception:  # a bug (ours or aiohttp's): retried like a network error, never stuck in flight
            status, error, retry = 0, "unexpected error", True
            log.error("callback_attempt_failed", key=d.key, url=target, exception=traceback.format_exc())
        if self.on_attempt is not None:
            self.on_attempt(attempt_outcome(status, error))
        try:
            await self._record(d, attempt, status, error, retry, retry_after, target)
        except Exception:  # the row stays pending: sent again later (at least once)
            log.error("outbox_update_failed", url=target, exception=traceback.format_exc())
        finally:
            self._inflight.discard(d.key)
            self._wake.set()

    def _headers(self, d: Delivery) -> dict[str, str]:
        if d.signer is None:
            return d.headers
        sign = self.signers.get(d.signer)
        if sign is None:  # enqueued by a process configured otherwise: sent as it is, and said
            log.warning("callback_signer_missing", key=d.key, signer=d.signer)
            return d.headers
        return {**d.headers, **sign(d.body)}

    async def _record(
        self, d: Delivery, attempt: int, status: int, error: str | None, retry: bool, retry_after: float | None,
        target: str,
    ) -> None:
        """Delivered, refused for good, or due again after a backoff (given up past the horizon)."""
        if error is None:
            await self._finish(d, attempt, "delivered", None)
            log.info("callback_sent", key=d.key, url=target, status=status, attempts=attempt)
        elif not retry:
            await self._finish(d, attempt, "failed", error)
            log.warning("callback_refused", key=d.key, url=target, status=status, attempts=attempt)
        else:
            delay = random.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.max_delay_s))
            at = self._clock() + delay
            if at > d.created + self.horizon_s:
                await self._finish(d, attempt, "failed", error)
                if self.on_attempt is not None:
                    self.on_attempt("gave_up")
                log.error("callback_abandoned", key=d.key, url=target, error=error, attempts=attempt)
            else:
                await self._db(
                    lambda c: c.execute(
                        "UPDATE outbox SET attempts=?, next_at=?, last_error=? WHERE key=?",
                        (attempt, at, error, d.key),
                    )
                )
                log.info(
                    "callback_retry", key=d.key, url=target, error=error, attempts=attempt, delay_s=round(delay, 3)
                )

    async def _finish(self, d: Delivery, attempt: int, state: str, error: str | None) -> None:
        await self._db(
            lambda c: c.execute(
                "UPDATE outbox SET attempts=?, state=?, last_error=? WHERE key=?", (attempt, state, error, d.key)
            )
        )
        self._pending = max(0, self._pending - 1)
        if self._pending == 0:
            self._idle.set()


def attempt_outcome(status: int, error: str | None) -> str:
    """One attempt, as /metrics counts it (ari_amd.metrics.CALLBACK_OUTCOMES)."""
    if error is None:
        return "delivered"
    if error.startswith("refused:"):
        return "refused"
    if error == "TimeoutError":
        return "timeout"
    return "network_error" if status == 0 else "http_error"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


"""The lab itself (scripts/lab): a real Asterisk 22 and SIPp callees on loopback.

These tests prove what everyone else's lab tests stand on: `scripts/lab up` gives an ARI that
answers; a SIPp callee streams a WAV so that the RTP Asterisk receives is the clip's samples
from the first one on (no WAV header played as audio); a snoop + externalMedia tap hears that
audio with the clip's envelope; `--dir` gives every concurrent call its own clip; busy and
no-answer callees fail calls the way a carrier would; the `ari-amd-test` dialplan reports what
it sees; and nothing stays behind. They talk to ARI directly (aiohttp), not through ari_amd.ari,
so a bug there cannot hide a broken lab.

Root is needed (scripts/lab mounts and chroots; the tests sniff loopback to see what Asterisk
receives). They skip, saying why, when not root or when `scripts/lab up` fails. Each test runs
its own callee on a SIP port of its own (5500-5899, by process), so a callee someone else runs on
5070, or a concurrent run of these tests, is left alone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile as sf

from tests.labkit import callee, callee_port, endpoint, stop_callee

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "scripts" / "lab"
ARI = "http://127.0.0.1:8088/ari"
USER = PASSWORD = "ari-amd"
RATE = 8000
FRAME = 160  # 20 ms of 8 kHz mu-law


# ------------------------------------------------------------------------------ helpers


def lab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LAB), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def lab_up() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (scripts/lab mounts, chroots and sniffs loopback)")
    if not LAB.exists():
        pytest.skip("scripts/lab is not in this checkout")
    try:
        r = lab("up", timeout=600)  # a cold start builds the Asterisk root (about a minute)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"scripts/lab up could not run: {e}")
    if r.returncode != 0:
        pytest.skip(f"scripts/lab up failed (exit {r.returncode}): {(r.stdout + r.stderr).strip()}")


def callee_media_port() -> int:
    """Where the current callee's SIPp sends its RTP from (scripts/lab's rule)."""
    return 6000 + 4 * (callee_port() % 1000)


def callee_running() -> bool:
    return f"127.0.0.1:{callee_port()} " in lab("status").stdout


_ULAW_TABLE: np.ndarray | None = None


def ulaw_decode(data: bytes) -> np.ndarray:
    """G.711 mu-law bytes -> int16 samples (the standard table, computed once)."""
    global _ULAW_TABLE
    if _ULAW_TABLE is None:
        u = ~np.arange(256, dtype=np.int32) & 0xFF
        t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
        _ULAW_TABLE = np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)
    return _ULAW_TABLE[np.frombuffer(data, dtype=np.uint8)]


def write_ulaw_wav(path: Path, x: np.ndarray) -> bytes:
    """Write float audio (-1..1) as an 8 kHz mu-law WAV; return its sample bytes (mu-law)."""
    sf.write(path, x, RATE, subtype="ULAW", format="WAV")
    raw = path.with_suffix(".raw")
    sf.write(raw, x, RATE, subtype="ULAW", format="RAW")
    data = raw.read_bytes()
    raw.unlink()
    return data


def envelope(x: np.ndarray, hop: int) -> np.ndarray:
    n = len(x) // hop
    return np.sqrt(np.mean(x[: n * hop].astype(float).reshape(n, hop) ** 2, axis=1))


class LoopbackSniffer:
    """UDP datagrams on `lo` from 127.0.0.1:`src_port` as the receiver gets them (AF_PACKET)."""

    def __init__(self, src_port: int) -> None:
        self.src_port = src_port
        self.packets: list[tuple[float, int, bytes]] = []  # (time, destination port, payload)
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        # SO_RCVBUFFORCE (33; root may exceed rmem_max): every loopback packet passes through here.
        self._sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 16 << 20)
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if addr[2] == socket.PACKET_OUTGOING or data[12:14] != b"\x08\x00":
                continue  # each loopback packet shows up twice; keep the receiving side's copy
            ip = data[14:]
            if ip[9] != 17 or ip[12:16] != b"\x7f\x00\x00\x01":
                continue
            ihl = (ip[0] & 0x0F) * 4
            sport, dport = struct.unpack(">HH", ip[ihl : ihl + 4])
            if sport == self.src_port:
                self.packets.append((time.monotonic(), dport, ip[ihl + 8 :]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def streams(self) -> dict[int, list[bytes]]:
        """RTP packets (whole) per destination port, in arrival order."""
        out: dict[int, list[bytes]] = {}
        for _, port, payload in self.packets:
            out.setdefault(port, []).append(payload)
        return out


class RtpSink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes, tuple[str, int]]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append((time.monotonic(), data, addr))


def rtp_payloads(packets: list[bytes]) -> tuple[bytes, set[int]]:
    """Concatenated payloads ordered by sequence number, and the payload types seen."""
    parsed = []
    types = set()
    for p in packets:
        assert len(p) >= 12 and p[0] >> 6 == 2, "not RTP version 2"
        cc = p[0] & 0x0F
        seq = struct.unpack(">H", p[2:4])[0]
        types.add(p[1] & 0x7F)
        parsed.append((seq, p[12 + 4 * cc :]))
    # Unwrap the 16-bit sequence relative to the first packet.
    base = parsed[0][0] if parsed else 0
    parsed.sort(key=lambda sp: (sp[0] - base) & 0xFFFF)
    return b"".join(pl for _, pl in parsed), types


class Ari:
    """Just enough ARI: REST calls and one app's events."""

    def __init__(self, session: aiohttp.ClientSession, app: str) -> None:
        self.session = session
        self.app = app
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        q = urllib.parse.urlencode({"app": self.app, "api_key": f"{USER}:{PASSWORD}"})
        self._ws = await self.session.ws_connect(f"ws://127.0.0.1:8088/ari/events?{q}")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                async with self._changed:
                    self.events.append(json.loads(msg.data))
                    self._changed.notify_all()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader

    async def call(self, method: str, path: str, expect: tuple[int, ...] = (200, 204),
                   json_body: Any = None, **params: str) -> Any:
        async with self.session.request(method, ARI + path, params=params, json=json_body) as r:
            body = await r.text()
            assert r.status in expect, f"{method} {path} {params} -> {r.status} {body}"
            return json.loads(body) if body else None

    async def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            async with self._changed:
                seen = 0
                while True:
                    for ev in self.events[seen:]:
                        if pred(ev):
                            return ev
                    seen = len(self.events)
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            kinds = [(e.get("type"), e.get("channel", {}).get("id")) for e in self.events[-15:]]
            raise AssertionError(f"no such event within {timeout} s; last events: {kinds}") from None


def is_event(kind: str, channel_id: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda ev: ev.get("type") == kind and (
        channel_id is None or ev.get("channel", {}).get("id") == channel_id
    )


@pytest.fixture
async def ari(lab_up: None) -> AsyncIterator[Ari]:
    app = f"ari-amd-labtest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:
        client = Ari(session, app)
        await client.connect()
        try:
            yield client
        finally:
            await client.close()
            stop_callee()


async def assert_nothing_left(ari: Ari, channel_ids: set[str], bridge_ids: set[str]) -> None:
    deadline = time.monotonic() + 5
    while True:
        channels = {c["id"] for c in await ari.call("GET", "/channels")}
        bridges = {b["id"] for b in await ari.call("GET", "/bridges")}
        left = (channels & channel_ids) | (bridges & bridge_ids)
        if not left:
            return
        assert time.monotonic() < deadline, f"still there after hangup: {sorted(left)}"
        await asyncio.sleep(0.1)


async def wait_callee_exit() -> None:
    deadline = time.monotonic() + 10
    while callee_running():
        assert time.monotonic() < deadline, "the SIPp callee did not exit after its calls"
        await asyncio.sleep(0.2)


# ------------------------------------------------------------------------------ tests


def ari_get_sync(path: str) -> Any:
    req = urllib.request.Request(ARI + path)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_lab_up_is_idempotent_and_ari_answers(lab_up: None) -> None:
    r = lab("up")
    assert r.returncode == 0 and "already up" in r.stdout, r.stdout + r.stderr
    r = lab("status")
    assert r.returncode == 0 and "ARI answers" in r.stdout, r.stdout + r.stderr
    info = ari_get_sync("/asterisk/info")
    assert int(info["system"]["version"].split(".")[0]) >= 22, info["system"]
    modules = {m["name"] for m in ari_get_sync("/asterisk/modules")}
    for needed in ("res_ari.so", "app_stasis.so", "chan_pjsip.so", "chan_rtp.so",
                   "res_stasis_snoop.so", "app_amd.so", "app_userevent.so", "res_ari_channels.so"):
        assert needed in modules, f"{needed} not loaded"


def greeting() -> np.ndarray:
    """300 ms of digital silence, then tone bursts of uneven lengths, gaps and levels (so the
    envelope has one clear alignment), then 300 ms of silence."""
    rng = np.random.default_rng(7)
    parts = [np.zeros(int(0.3 * RATE))]
    for on_ms, off_ms, hz, level in [(180, 120, 700, 0.5), (90, 260, 1100, 0.2),
                                     (320, 90, 500, 0.35), (140, 200, 1500, 0.6),
                                     (420, 150, 900, 0.25), (60, 240, 1300, 0.45),
                                     (260, 0, 600, 0.3)]:
        t = np.arange(int(on_ms * RATE / 1000)) / RATE
        ramp = np.minimum(1, np.minimum(np.arange(len(t)), np.arange(len(t))[::-1]) / 40)
        parts.append(level * np.sin(2 * np.pi * hz * t) * ramp + rng.normal(0, 0.003, len(t)))
        parts.append(np.zeros(int(off_ms * RATE / 1000)))
    parts.append(np.zeros(int(0.3 * RATE)))
    return np.concatenate(parts)


async def test_lab_call_streams_the_clip_from_its_first_sample_and_leaves_nothing(
    ari: Ari, tmp_path: Path
) -> None:
    wav = tmp_path / "greeting.wav"
    clip = write_ulaw_wav(wav, greeting())
    assert wav.read_bytes()[:4] == b"RIFF"
    clip_padded = clip + b"\xff" * (-len(clip) % FRAME)
    delay_ms = 500  # the callee answers, then sends nothing for 500 ms: the tap is ready by then

    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(RtpSink, local_addr=("127.0.0.1", 0))
    sink_port = transport.get_extra_info("sockname")[1]
    callee(str(wav), "--count", "1", "--delay", str(delay_ms), "--max-time", "30")
    sniffer = LoopbackSniffer(callee_media_port())
    tag = uuid.uuid4().hex[:8]
    call_id, snoop_id, em_id, bridge_id = (f"labtest-{tag}-{k}" for k in ("call", "snoop", "em", "br"))
    try:
        await ari.call("POST", "/channels", endpoint=endpoint("greeting"), app=ari.app,
                       channelId=call_id, timeout="10")
        await ari.wait(is_event("StasisStart", call_id))
        answered = time.monotonic()
        await ari.call("POST", f"/channels/{call_id}/snoop", spy="in", app=ari.app,
                       appArgs="snoop", snoopId=snoop_id)
        em = await ari.call("POST", "/channels/externalMedia", app=ari.app, channelId=em_id,
                            external_host=f"127.0.0.1:{sink_port}", format="ulaw")
        await ari.call("POST", "/bridges", type="mixing", bridgeId=bridge_id)
        # Both enter the app just after their create returns; addChannel before that is a 422.
        for cid in (snoop_id, em_id):
            await ari.wait(is_event("StasisStart", cid))
        await ari.call("POST", f"/bridges/{bridge_id}/addChannel", channel=f"{snoop_id},{em_id}")
        tapped = time.monotonic()
        await asyncio.sleep(delay_ms / 1000 + len(clip) / RATE + 0.6)
    finally:
        for cid in (call_id, snoop_id, em_id):
            await ari.call("DELETE", f"/channels/{cid}", expect=(204, 404))
        await ari.call("DELETE", f"/bridges/{bridge_id}", expect=(204, 404))
        transport.close()
        sniffer.close()
    await ari.wait(is_event("ChannelDestroyed", call_id))
    await assert_nothing_left(ari, {call_id, snoop_id, em_id}, {bridge_id})
    await wait_callee_exit()

    # 1. What Asterisk received from SIPp: exactly the clip's samples, from the first packet on.
    streams = sniffer.streams()
    assert len(streams) == 1, f"RTP from SIPp went to {sorted(streams)}"
    (asterisk_port, sent), = streams.items()
    sent_audio, types = rtp_payloads(sent)
    assert types == {0}, f"payload types {types}"
    assert sent[0][12:12 + FRAME] == clip[:FRAME], "the first packet is not the clip's first 20 ms"
    assert b"RIFF" not in sent_audio[:FRAME] and b"WAVE" not in sent_audio[:FRAME]
    assert sent_audio == clip_padded, "SIPp did not stream the clip bit for bit"
    first_sent = sniffer.packets[0][0]
    assert first_sent >= tapped, "the tap was set up after the audio began (raise delay_ms)"
    assert 0.9 * delay_ms / 1000 < first_sent - answered < delay_ms / 1000 + 0.3

    # 2. What the tap heard: the clip's envelope, aligned, no click before it.
    assert sink.packets, "no RTP from the externalMedia channel"
    sources = {addr for _, _, addr in sink.packets}
    assert sources == {(em["channelvars"]["UNICASTRTP_LOCAL_ADDRESS"],
                        int(em["channelvars"]["UNICASTRTP_LOCAL_PORT"]))}
    heard_bytes, types = rtp_payloads([p for _, p, _ in sink.packets])
    assert types == {0}
    heard = ulaw_decode(heard_bytes).astype(float)
    ref = ulaw_decode(clip).astype(float)
    # The clip's start in what was heard: cross-correlate 1 ms envelopes.
    he, re_ = envelope(heard, 8), envelope(ref, 8)
    assert len(he) > len(re_), "heard less audio than the clip"
    scores = np.correlate(he - he.mean(), re_ - re_.mean(), mode="valid")
    lag_ms = int(np.argmax(scores))
    start = lag_ms * 8
    seg = heard[start : start + len(ref)]
    corr = float(np.corrcoef(envelope(seg, FRAME), envelope(ref, FRAME))[0, 1])
    assert corr > 0.9, f"envelope correlation {corr:.3f}"
    # Everything heard before the clip's first sound is digital silence: no header click at t=0
    # (58 bytes of RIFF header played as mu-law would be loud noise right where the clip starts).
    first_sound = int(np.argmax(ref != 0))
    assert first_sound >= 0.29 * RATE
    assert np.abs(heard[: start + first_sound]).max(initial=0) == 0, "noise before the clip's first sound"
    onset_ref = int(np.argmax(np.abs(ref) > 300))
    onset_heard = int(np.argmax(np.abs(heard) > 300))
    assert abs(onset_heard - (start + onset_ref)) <= 8, (
        f"first audio at sample {onset_heard}, expected {start + onset_ref} (+-1 ms)")
    # The tap's timing: the clip's first sample heard where the callee started sending it.
    first_heard_time = sink.packets[0][0] + start / RATE
    print(f"bit-exact={np.array_equal(seg, ref)} "
          f"envelope r={corr:.4f}; sample r={np.corrcoef(seg, ref)[0, 1]:.4f}; "
          f"clip starts {start / RATE * 1000:.0f} ms into the tap; tap vs wire "
          f"{(first_heard_time - first_sent) * 1000:+.0f} ms; Asterisk port {asterisk_port}")


async def test_lab_callee_dir_gives_each_concurrent_call_its_own_clip(ari: Ari, tmp_path: Path) -> None:
    n = 30
    folder = tmp_path / "clips"
    folder.mkdir()
    rng = np.random.default_rng(11)
    clips = {}
    for i in range(n):
        name = f"clip-{i:02d}"
        x = 0.3 * np.sin(2 * np.pi * (300 + 60 * i) * np.arange(RATE) / RATE) + rng.normal(0, 0.05, RATE)
        clips[name] = write_ulaw_wav(folder / f"{name}.wav", np.clip(x, -1, 1))
    callee("--dir", str(folder), "--count", str(n + 1), "--max-time", "30")
    sniffer = LoopbackSniffer(callee_media_port())
    tag = uuid.uuid4().hex[:8]
    ids = {name: f"labtest-{tag}-{name}" for name in clips}
    try:
        await asyncio.gather(*(
            ari.call("POST", "/channels", endpoint=endpoint(name), app=ari.app, channelId=cid,
                     timeout="10")
            for name, cid in ids.items()
        ))
        await asyncio.gather(*(ari.wait(is_event("StasisStart", cid), 15) for cid in ids.values()))
        ports = {}
        for name, cid in ids.items():
            v = await ari.call("GET", f"/channels/{cid}/variable", variable="CHANNEL(rtp,src)")
            ports[int(v["value"].rsplit(":", 1)[1])] = name
        # A name with no clip is refused (404 -> the channel is destroyed, never answered).
        await ari.call("POST", "/channels", endpoint=endpoint("no-such-clip"), app=ari.app,
                       channelId=f"labtest-{tag}-missing", timeout="10")
        missing = await ari.wait(is_event("ChannelDestroyed", f"labtest-{tag}-missing"))
        assert missing["cause"] in (1, 3), missing  # unallocated number / no route
        await asyncio.sleep(1.4)
    finally:
        for cid in ids.values():
            await ari.call("DELETE", f"/channels/{cid}", expect=(204, 404))
        sniffer.close()
    await assert_nothing_left(ari, set(ids.values()), set())
    await wait_callee_exit()
    streams = sniffer.streams()
    assert set(streams) == set(ports), "RTP did not go to the calls' ports"
    for port, packets in streams.items():
        audio, types = rtp_payloads(packets)
        want = clips[ports[port]]
        assert types == {0}
        assert audio == want, f"{ports[port]} heard something other than its clip"


async def test_lab_busy_and_no_answer_callees(ari: Ari) -> None:
    callee("--reject", "486", "--count", "1")
    busy = f"labtest-{uuid.uuid4().hex[:8]}-busy"
    await ari.call("POST", "/channels", endpoint=endpoint("busy"), app=ari.app, channelId=busy)
    dial = await ari.wait(lambda ev: ev.get("type") == "Dial" and ev.get("peer", {}).get("id") == busy
                          and ev.get("dialstatus") not in ("", None))
    assert dial["dialstatus"] == "BUSY"
    gone = await ari.wait(is_event("ChannelDestroyed", busy))
    assert gone["cause"] == 17, gone
    await wait_callee_exit()

    callee("--no-answer", "--count", "1")
    ringing = f"labtest-{uuid.uuid4().hex[:8]}-ring"
    t0 = time.monotonic()
    await ari.call("POST", "/channels", endpoint=endpoint("nobody"), app=ari.app,
                   channelId=ringing, timeout="2")
    await ari.wait(lambda ev: ev.get("type") == "ChannelStateChange"
                   and ev["channel"]["id"] == ringing and ev["channel"]["state"] == "Ringing")
    # Originate's own timeout ends it: no Dial NOANSWER event, the channel goes with cause 19.
    gone = await ari.wait(is_event("ChannelDestroyed", ringing))
    assert gone["cause"] == 19, gone
    assert 1.8 < time.monotonic() - t0 < 5
    await wait_callee_exit()  # it took the CANCEL, answered 487 and got the ACK
    await assert_nothing_left(ari, {busy, ringing}, set())


async def test_lab_dialplan_reports_what_stasis_left(ari: Ari, tmp_path: Path) -> None:
    wav = tmp_path / "hello.wav"
    write_ulaw_wav(wav, 0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE))
    callee(str(wav), "--count", "1", "--max-time", "30")
    cid = f"labtest-{uuid.uuid4().hex[:8]}-dp"
    # The callee's channel runs [ari-amd-test] once answered: Stasis(<our app>,sync,<args>).
    await ari.call("POST", "/channels", endpoint=endpoint("hello"), context="ari-amd-test",
                   extension=ari.app, priority="1", channelId=cid,
                   json_body={"variables": {"ARI_AMD_ARGS": "mode=DetectMessageEnd,timeout=30"}})
    start = await ari.wait(is_event("StasisStart", cid))
    assert start["args"] == ["sync", "mode=DetectMessageEnd", "timeout=30"]
    for var, value in {"AMDSTATUS": "MACHINE", "AMDCAUSE": "LONGGREETING-2400-2400",
                       "ANSWEREDBY": "machine_start", "AMDDURATION": "2410"}.items():
        await ari.call("POST", f"/channels/{cid}/variable", variable=var, value=value)
    await ari.call("POST", f"/applications/{ari.app}/subscription", eventSource=f"channel:{cid}")
    await ari.call("POST", f"/channels/{cid}/continue")
    ev = await ari.wait(lambda e: e.get("type") == "ChannelUserevent" and e.get("eventname") == "AMDResult"
                        and e.get("channel", {}).get("id") == cid)
    want = {"STASISSTATUS": "SUCCESS", "AMDSTATUS": "MACHINE", "AMDCAUSE": "LONGGREETING-2400-2400",
            "ANSWEREDBY": "machine_start", "AMDDURATION": "2410"}
    assert {k: ev["userevent"].get(k) for k in want} == want, ev["userevent"]
    await ari.wait(is_event("ChannelDestroyed", cid))  # the dialplan hangs up after reporting
    await assert_nothing_left(ari, {cid}, set())
    await wait_callee_exit()

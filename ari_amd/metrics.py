"""Prometheus metrics the service exports at /metrics.

Each app instance gets its own `CollectorRegistry` from `create_metrics()`, never the
process-global one: tests and several apps in one process (or one test run) then never collide
with "Duplicated timeseries", and /metrics shows only ari-amd's own series.

    metrics = create_metrics()
    metrics.calls_in_flight.inc()
    record_verdict(metrics, "human", "Enable", 3140)
    record_receiver_stats(metrics, receiver.stats)         # once, at the call's end
    FrameBatch(on_tick=lambda *tick: record_tick(metrics, *tick))  # every detector tick
    body, content_type = render(metrics, request.headers.get("Accept", ""))  # /metrics
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from ari_amd.detect.params import Mode
from ari_amd.detect.verdict import AnsweredBy
from ari_amd.media.receiver import ReceiverStats

NAMESPACE = "ari_amd"
# Time to verdict in ms, like MachineDetectionDuration and ${AMDDURATION}: a person is known at
# ~1-4 s, a greeting at SpeechThreshold (1-6 s), a beep up to ~20 s, the timeout at 3-59 s.
TIME_TO_VERDICT_BUCKETS_MS = (
    500, 1_000, 1_500, 2_000, 2_500, 3_000, 3_500, 4_000, 5_000, 6_000, 8_000,
    10_000, 12_500, 15_000, 20_000, 25_000, 30_000, 45_000, 60_000,
)  # fmt: skip
# ReceiverStats counters that are packets given up, by the reason label they are exported under.
# Reorder-buffer discards (duplicate, late, out_of_range) were first counted as received.
DROP_REASONS: dict[str, str] = {
    "dropped_foreign_source": "foreign_source",
    "dropped_malformed": "malformed",
    "dropped_payload_type": "payload_type",
    "dropped_oversized": "oversized",
    "dropped_empty": "empty",
    "dropped_after_close": "after_close",
    "duplicates": "duplicate",
    "late": "late",
    "out_of_range": "out_of_range",
}
# Datagrams the shared RTP socket (ari_amd.media.hub) gave to no call, by reason.
HUB_DROP_REASONS = ("unknown_source", "oversized", "socket_overflow")
# One detector tick's work, in seconds: under a millisecond for a few calls; near the tick
# (10 ms) and beyond, the media process is saturated and frames start to wait.
BATCH_TICK_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5)
BATCH_STEPS = ("vector", "scalar")
# What one callback (webhook) attempt can come to; pre-created so a rate() has a series from the start.
CALLBACK_OUTCOMES = ("delivered", "http_error", "network_error", "timeout", "refused", "gave_up")


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    calls: Counter  # answered_by, mode: final verdicts
    time_to_verdict: Histogram  # answered_by; ms on the audio clock
    rtp_packets_received: Counter
    rtp_packets_lost: Counter  # gaps the reorder buffer filled with silence
    rtp_packets_dropped: Counter  # reason
    callback_attempts: Counter  # outcome
    callback_backlog: Gauge  # callbacks in the outbox not yet delivered
    ari_reconnects: Counter
    calls_in_flight: Gauge
    batch_tick_seconds: Histogram  # wall time of a detector tick's work
    batch_frames: Counter  # step: frames decided in the vector pass, or by a call's own scalar step


def create_metrics(namespace: str = NAMESPACE) -> Metrics:
    """A fresh registry holding every ari-amd metric, label sets pre-created at zero."""
    registry = CollectorRegistry(auto_describe=True)
    m = Metrics(
        registry=registry,
        calls=Counter(
            "calls", "Calls that got a final AMD verdict, by verdict and mode",
            ["answered_by", "mode"], namespace=namespace, registry=registry,
        ),
        time_to_verdict=Histogram(
            "time_to_verdict_ms", "Audio time from answer to the final verdict (MachineDetectionDuration), ms",
            ["answered_by"], namespace=namespace, registry=registry, buckets=TIME_TO_VERDICT_BUCKETS_MS,
        ),
        rtp_packets_received=Counter(
            "rtp_packets_received", "RTP packets accepted from the pinned source",
            namespace=namespace, registry=registry,
        ),
        rtp_packets_lost=Counter(
            "rtp_packets_lost", "RTP packets never received, filled with silence",
            namespace=namespace, registry=registry,
        ),
        rtp_packets_dropped=Counter(
            "rtp_packets_dropped", "Datagrams and packets given up, by reason",
            ["reason"], namespace=namespace, registry=registry,
        ),
        callback_attempts=Counter(
            "callback_attempts", "Status callback (webhook) attempts, by outcome",
            ["outcome"], namespace=namespace, registry=registry,
        ),
        callback_backlog=Gauge(
            "callback_backlog", "Status callbacks waiting in the outbox",
            namespace=namespace, registry=registry,
        ),
        ari_reconnects=Counter(
            "ari_reconnects", "Reconnections of the ARI events websocket",
            namespace=namespace, registry=registry,
        ),
        calls_in_flight=Gauge(
            "calls_in_flight", "Calls being set up, detected or delivered",
            namespace=namespace, registry=registry,
        ),
        batch_tick_seconds=Histogram(
            "batch_tick_seconds", "Wall time of one detector tick's work (every call's queued frames), s",
            namespace=namespace, registry=registry, buckets=BATCH_TICK_BUCKETS_S,
        ),
        batch_frames=Counter(
            "batch_frames", "Frames decided by the detector batch, by step (the vector pass, or a call's own)",
            ["step"], namespace=namespace, registry=registry,
        ),
    )  # fmt: skip
    for answered_by in AnsweredBy:
        m.time_to_verdict.labels(answered_by.value)
        for mode in Mode:
            m.calls.labels(answered_by.value, mode.value)
    for reason in (*DROP_REASONS.values(), *HUB_DROP_REASONS):
        m.rtp_packets_dropped.labels(reason)
    for outcome in CALLBACK_OUTCOMES:
        m.callback_attempts.labels(outcome)
    for step in BATCH_STEPS:
        m.batch_frames.labels(step)
    return m


def _label(value: str | Enum) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


def record_verdict(metrics: Metrics, answered_by: AnsweredBy | str, mode: Mode | str, duration_ms: int) -> None:
    """A call's final verdict: counted by verdict and mode, its time observed."""
    kind = _label(answered_by)
    metrics.calls.labels(kind, _label(mode)).inc()
    metrics.time_to_verdict.labels(kind).observe(max(0, duration_ms))


def record_receiver_stats(metrics: Metrics, stats: ReceiverStats, previous: ReceiverStats | None = None) -> None:
    """Add a receiver's counters: its final snapshot at the call's end, or, for a running call, the
    growth since `previous` (the snapshot recorded last time). A counter that went down (a new
    receiver's snapshot passed as `stats`) adds nothing rather than failing."""

    def grew(field: str) -> int:
        before = getattr(previous, field) if previous is not None else 0
        return max(0, int(getattr(stats, field)) - int(before))

    if n := grew("received"):
        metrics.rtp_packets_received.inc(n)
    if n := grew("lost"):
        metrics.rtp_packets_lost.inc(n)
    for field, reason in DROP_REASONS.items():
        if n := grew(field):
            metrics.rtp_packets_dropped.labels(reason).inc(n)


def record_tick(metrics: Metrics, seconds: float, vector_frames: int, scalar_frames: int) -> None:
    """One detector tick (FrameBatch's on_tick): its wall time, and the frames each step decided."""
    metrics.batch_tick_seconds.observe(max(0.0, seconds))
    if vector_frames:
        metrics.batch_frames.labels("vector").inc(vector_frames)
    if scalar_frames:
        metrics.batch_frames.labels("scalar").inc(scalar_frames)


def render(metrics: Metrics, accept: str = "") -> tuple[bytes, str]:
    """The /metrics response, body and Content-Type, in the format the scraper's Accept header asks
    for: OpenMetrics when asked, else the text format 0.0.4 every Prometheus reads."""
    encode, content_type = choose_encoder(accept)
    return encode(metrics.registry), content_type

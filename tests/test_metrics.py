"""ari_amd.metrics: a registry per app, the series /metrics shows, and ReceiverStats recorded once."""

from __future__ import annotations

import asyncio

import numpy as np
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from ari_amd.detect import AnsweredBy, Mode
from ari_amd.detect.features import FRAME
from ari_amd.media import ReceiverStats
from ari_amd.media.batch import FrameBatch
from ari_amd.metrics import (
    CALLBACK_OUTCOMES,
    DROP_REASONS,
    TIME_TO_VERDICT_BUCKETS_MS,
    create_metrics,
    record_receiver_stats,
    record_tick,
    record_verdict,
    render,
)


def value(metrics, name: str, **labels: str) -> float | None:  # type: ignore[no-untyped-def]
    return metrics.registry.get_sample_value(name, labels)


def test_two_apps_in_one_process_have_separate_registries_and_leave_the_global_one_alone() -> None:
    before = {m.name for m in REGISTRY.collect()}
    a, b = create_metrics(), create_metrics()  # a second create must not raise "Duplicated timeseries"
    a.ari_reconnects.inc()
    assert value(a, "ari_amd_ari_reconnects_total") == 1
    assert value(b, "ari_amd_ari_reconnects_total") == 0
    assert {m.name for m in REGISTRY.collect()} == before


def test_a_verdict_counts_the_call_by_kind_and_mode_and_lands_in_its_bucket() -> None:
    m = create_metrics()
    record_verdict(m, AnsweredBy.HUMAN, Mode.ENABLE, 3140)
    record_verdict(m, "machine_end_beep", "DetectMessageEnd", 11_900)
    assert value(m, "ari_amd_calls_total", answered_by="human", mode="Enable") == 1
    assert value(m, "ari_amd_calls_total", answered_by="machine_end_beep", mode="DetectMessageEnd") == 1
    assert value(m, "ari_amd_calls_total", answered_by="human", mode="DetectMessageEnd") == 0
    h = "ari_amd_time_to_verdict_ms_bucket"
    assert value(m, h, answered_by="human", le="3000.0") == 0
    assert value(m, h, answered_by="human", le="3500.0") == 1
    assert value(m, h, answered_by="machine_end_beep", le="12500.0") == 1
    assert value(m, "ari_amd_time_to_verdict_ms_sum", answered_by="human") == 3140


def test_buckets_span_half_a_second_to_thirty_seconds() -> None:
    assert TIME_TO_VERDICT_BUCKETS_MS[0] == 500
    assert 30_000 in TIME_TO_VERDICT_BUCKETS_MS
    assert list(TIME_TO_VERDICT_BUCKETS_MS) == sorted(set(TIME_TO_VERDICT_BUCKETS_MS))
    # Steps no coarser than 500 ms where verdicts crowd (1-4 s), so a p50 shift there shows.
    crowded = [b for b in TIME_TO_VERDICT_BUCKETS_MS if 1_000 <= b <= 4_000]
    assert all(b - a <= 500 for a, b in zip(crowded, crowded[1:]))


def test_every_label_set_exists_at_zero_before_anything_happens() -> None:
    m = create_metrics()
    for kind in AnsweredBy:
        for mode in Mode:
            assert value(m, "ari_amd_calls_total", answered_by=kind.value, mode=mode.value) == 0
    for reason in DROP_REASONS.values():
        assert value(m, "ari_amd_rtp_packets_dropped_total", reason=reason) == 0
    for outcome in CALLBACK_OUTCOMES:
        assert value(m, "ari_amd_callback_attempts_total", outcome=outcome) == 0


def test_receiver_stats_at_a_calls_end_add_received_lost_and_drops_by_reason() -> None:
    m = create_metrics()
    record_receiver_stats(m, ReceiverStats(received=500, lost=3, dropped_foreign_source=40, duplicates=2))
    record_receiver_stats(m, ReceiverStats(received=100, dropped_malformed=1, late=1))
    assert value(m, "ari_amd_rtp_packets_received_total") == 600
    assert value(m, "ari_amd_rtp_packets_lost_total") == 3
    assert value(m, "ari_amd_rtp_packets_dropped_total", reason="foreign_source") == 40
    assert value(m, "ari_amd_rtp_packets_dropped_total", reason="duplicate") == 2
    assert value(m, "ari_amd_rtp_packets_dropped_total", reason="malformed") == 1
    assert value(m, "ari_amd_rtp_packets_dropped_total", reason="late") == 1
    assert value(m, "ari_amd_rtp_packets_dropped_total", reason="oversized") == 0


def test_a_running_call_records_only_the_growth_since_its_last_snapshot() -> None:
    m = create_metrics()
    first = ReceiverStats(received=50, dropped_payload_type=2)
    record_receiver_stats(m, first)
    second = ReceiverStats(received=120, dropped_payload_type=2, lost=1)
    record_receiver_stats(m, second, previous=first)
    assert value(m, "ari_amd_rtp_packets_received_total") == 120
    assert value(m, "ari_amd_rtp_packets_dropped_total", reason="payload_type") == 2
    assert value(m, "ari_amd_rtp_packets_lost_total") == 1
    record_receiver_stats(m, ReceiverStats(received=10), previous=second)  # went down: adds nothing
    assert value(m, "ari_amd_rtp_packets_received_total") == 120


def test_gauges_follow_the_calls_and_the_outbox() -> None:
    m = create_metrics()
    m.calls_in_flight.inc()
    m.calls_in_flight.inc()
    m.calls_in_flight.dec()
    m.callback_backlog.set(7)
    m.callback_attempts.labels("network_error").inc()
    assert value(m, "ari_amd_calls_in_flight") == 1
    assert value(m, "ari_amd_callback_backlog") == 7
    assert value(m, "ari_amd_callback_attempts_total", outcome="network_error") == 1


def test_render_is_prometheus_text_with_every_family() -> None:
    m = create_metrics()
    record_verdict(m, "fax", "Enable", 900)
    body, content_type = render(m)
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert set(families) >= {
        "ari_amd_calls", "ari_amd_time_to_verdict_ms", "ari_amd_rtp_packets_received", "ari_amd_rtp_packets_lost",
        "ari_amd_rtp_packets_dropped", "ari_amd_callback_attempts", "ari_amd_callback_backlog",
        "ari_amd_ari_reconnects", "ari_amd_calls_in_flight", "ari_amd_batch_tick_seconds", "ari_amd_batch_frames",
    }  # fmt: skip
    assert families["ari_amd_time_to_verdict_ms"].type == "histogram"
    assert families["ari_amd_calls_in_flight"].type == "gauge"
    assert 'ari_amd_calls_total{answered_by="fax",mode="Enable"} 1.0' in body.decode()


def test_an_openmetrics_scraper_gets_openmetrics() -> None:
    m = create_metrics()
    body, content_type = render(m, "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert content_type.startswith("application/openmetrics-text")
    assert body.decode().rstrip().endswith("# EOF")


def test_a_tick_records_its_time_and_the_frames_each_step_decided() -> None:
    m = create_metrics()
    assert value(m, "ari_amd_batch_frames_total", step="vector") == 0
    record_tick(m, 0.003, 120, 4)
    record_tick(m, 0.0004, 0, 2)
    assert value(m, "ari_amd_batch_frames_total", step="vector") == 120
    assert value(m, "ari_amd_batch_frames_total", step="scalar") == 6
    assert value(m, "ari_amd_batch_tick_seconds_count") == 2
    assert value(m, "ari_amd_batch_tick_seconds_bucket", le="0.0005") == 1
    assert value(m, "ari_amd_batch_tick_seconds_bucket", le="0.005") == 2


async def test_the_running_batch_reports_every_busy_tick_and_survives_a_failing_hook() -> None:
    m = create_metrics()
    calls: list[tuple[float, int, int]] = []

    def on_tick(seconds: float, vector: int, scalar: int) -> None:
        calls.append((seconds, vector, scalar))
        record_tick(m, seconds, vector, scalar)
        if len(calls) == 1:
            raise RuntimeError("a broken metrics hook")

    batch = FrameBatch(tick_ms=5, min_vector_rows=4, on_tick=on_tick)
    sessions = [batch.add() for _ in range(6)]
    noise = (np.random.default_rng(1).normal(0, 2000, FRAME * 10)).astype(np.int16)
    ticker = asyncio.create_task(batch.run())
    try:
        for k in range(10):
            for s in sessions:
                s(noise[k * FRAME : (k + 1) * FRAME], 8000)
            await asyncio.sleep(0.012)
        for _ in range(200):  # the last frames' tick, however slow the machine
            if not batch.queued:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)  # and its hook
    finally:
        ticker.cancel()
    decided = sum(v + c for _, v, c in calls)
    assert len(calls) >= 2 and decided == batch.frames_processed == 60  # every frame, in busy ticks only
    assert all(seconds > 0 for seconds, _, _ in calls) and batch.callback_errors == 1
    assert value(m, "ari_amd_batch_frames_total", step="vector") + value(m, "ari_amd_batch_frames_total",
                                                                          step="scalar") == decided


async def test_the_shared_rtp_socket_counts_what_no_call_takes() -> None:
    import socket
    import time

    from ari_amd.calls.config import Settings
    from ari_amd.calls.engine import CallEngine
    from ari_amd.media import build_packet

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        first = probe.getsockname()[1]
    engine = CallEngine(Settings(rtp_port_first=first, rtp_port_last=min(first + 9, 65535)))
    engine.open_media()  # what start() and `serve` do before anything else
    assert engine.hub is not None and engine.ctx.hub is engine.hub
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            for seq in range(3):
                stranger.sendto(build_packet(bytes(160), sequence=seq, timestamp=0, ssrc=1), ("127.0.0.1", engine.hub.port))
            time.sleep(0.01)
            engine.hub.drain()
        assert value(engine.metrics, "ari_amd_rtp_packets_dropped_total", reason="unknown_source") == 3
    finally:
        engine.hub.close()
        await engine.ari.close()

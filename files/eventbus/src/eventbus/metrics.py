"""Prometheus metrics: events by topic and outcome, request latency, requests in flight.

With several workers the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before starting them, so whichever worker answers ``/metrics`` reports the sum
over all of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

EVENTS = Counter("eventbus_events", "Events by Kafka topic and outcome", ["topic", "outcome"])
REQUESTS = Histogram(
    "eventbus_request_duration_seconds",
    "HTTP request latency by route and status",
    ["method", "route", "status"],
    buckets=(0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1, 2, 5, 10),
)
FAILED_EVENTS_LOGGED = Counter(
    "eventbus_failed_events_logged", "Lines written to the failed-events log"
)
FAILED_EVENTS_LOG_WRITE_ERRORS = Counter(
    "eventbus_failed_events_log_write_errors",
    "Events that could not be written to the failed-events log (disk full, permissions)",
)
CONNECTIONS_REFUSED = Counter(
    "eventbus_connections_refused", "Connections refused over a worker's max_connections"
)
IN_FLIGHT = Gauge(
    "eventbus_requests_in_flight", "Requests being handled", multiprocess_mode="livesum"
)


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)

"""Prometheus metrics: events by topic and outcome (every answer counts, hasty and 413 too),
request latency, produce latency and errors by kind, the failed-events log's lines and write
errors, requests and hasty events in flight, the build's version, and each worker's process
metrics.

With several workers the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before starting them, so whichever worker answers ``/metrics`` reports the sum
over all of them; process metrics (which prometheus_client leaves out in multi-process
mode) are read from /proc for every worker, labelled by pid.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict

from eventbus import __version__

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
BUSY_REFUSALS = Counter(
    "eventbus_busy_refusals",
    "Requests answered 503 before their body was read: over the worker's max_in_flight_body_bytes",
)
IN_FLIGHT = Gauge(
    "eventbus_requests_in_flight", "Requests being handled", multiprocess_mode="livesum"
)
PRODUCE_DURATION = Histogram(
    "eventbus_produce_duration_seconds",
    "From handing a request's events to the producer to Kafka's last acknowledgement",
    buckets=(0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1, 2, 5, 10, 30),
)
PRODUCE_ERRORS = Counter(
    "eventbus_produce_errors",
    "Events Kafka did not take, by kind (unavailable, deadline, unknown_topic, unexpected)",
    ["kind"],
)
HASTY_IN_FLIGHT = Gauge(
    "eventbus_hasty_events_in_flight",
    "hasty=true events answered 202 and not yet acknowledged by Kafka",
    multiprocess_mode="livesum",
)
BUILD_INFO = Gauge(
    "eventbus_build_info", "The service's version", ["version"], multiprocess_mode="max"
)
BUILD_INFO.labels(__version__).set(1)
_PID_FILE = re.compile(r"_(\d+)\.db$")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class WorkerProcesses:
    """process_* metrics of every worker, by pid: prometheus_client's process collector
    covers only the process that answers, and none in multi-process mode."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def pids(self) -> list[int]:
        found = set()
        for path in self.directory.glob("*.db"):
            match = _PID_FILE.search(path.name)
            if match:
                found.add(int(match.group(1)))
        return sorted(found)

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "process_cpu_seconds", "User and system CPU time of each worker", labels=["pid"]
        )
        rss = GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory of each worker", labels=["pid"]
        )
        fds = GaugeMetricFamily("process_open_fds", "Open files of each worker", labels=["pid"])
        for pid in self.pids():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
                open_fds = len(os.listdir(f"/proc/{pid}/fd"))
            except (OSError, IndexError, ValueError):
                continue  # gone, or not ours to read
            cpu.add_metric([str(pid)], (int(stat[11]) + int(stat[12])) / _CLOCK_TICKS)
            rss.add_metric([str(pid)], pages * _PAGE_SIZE)
            fds.add_metric([str(pid)], open_fds)
        yield cpu
        yield rss
        yield fds


class WorkerFiles(multiprocess.MultiProcessCollector):
    """prometheus_client's multi-process collector, reading only the files that read whole.

    A worker creates its file on its first metric write: open (empty), then sized. A scrape
    between the two, a file removed meanwhile (a worker marked dead), or a worker killed
    between them (an empty file left for good) made every ``/metrics`` a 500 - for good in
    the last case, until the service restarted. Such a file is left out of the scrape."""

    def collect(self) -> Iterator[Metric]:
        files = []
        for path in sorted(Path(self._path).glob("*.db")):
            try:
                list(MmapedDict.read_all_values_from_file(str(path)))
            except (OSError, struct.error, ValueError, UnicodeDecodeError):
                continue  # empty, half-made or gone
            files.append(str(path))
        try:
            return self.merge(files, accumulate=True)
        except (OSError, struct.error, ValueError):  # removed between the check and the merge
            return self.merge([f for f in files if os.path.exists(f)], accumulate=True)


def render() -> tuple[bytes, str]:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        WorkerFiles(registry, path=directory)
        registry.register(WorkerProcesses(directory))  # type: ignore[arg-type]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)

"""/metrics counts everything the service answered (hasty and 413 too) and follows
Prometheus' conventions, as ``promtool check metrics`` reads them; with several workers it
carries each worker's process metrics."""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
from eventbus import __version__

from tests.service.conftest import Service, make_event


def value(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry these labels (in whatever order)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def test_every_answer_is_counted_and_promtool_accepts_the_metrics(two_workers: Service) -> None:
    service = two_workers
    assert service.post(make_event()).status == 201
    assert service.post(make_event(), "?hasty=true").status == 202
    assert service.post(make_event(count="NaN")).status == 400
    too_many = b"[" + b",".join([b"1"] * 10_001) + b"]"
    assert service.request("POST", "/v1/events", too_many).status == 413
    text = service.request("GET", "/metrics").body.decode()

    accepted = value(text, "eventbus_events_total", topic="eqiad.test.event", outcome="accepted")
    assert accepted >= 2  # the 201 and the hasty 202
    assert value(text, "eventbus_events_total", topic="-", outcome="invalid") >= 2  # 400, 413
    assert f'eventbus_build_info{{version="{__version__}"}} 1.0' in text
    assert value(text, "eventbus_produce_duration_seconds_count") >= 1
    assert "eventbus_hasty_events_in_flight" in text
    assert "eventbus_failed_events_logged_total" in text
    pids = set(re.findall(r'^process_resident_memory_bytes\{pid="(\d+)"\}', text, re.M))
    assert len(pids) == 2  # one per worker

    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: sudo make prerequisites installs it")
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_scrape_does_not_hold_a_connection(two_workers: Service) -> None:
    """Prometheus keeps its connections alive; the runbook's idle check waits until a depooled
    host has no established connection. /metrics closes its connection, the API keeps it."""
    url = urlsplit(two_workers.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        conn.request("GET", "/healthz")
        health = conn.getresponse()
        health.read()
        assert health.getheader("Connection", "keep-alive").lower() != "close"
        conn.request("GET", "/metrics")
        scrape = conn.getresponse()
        scrape.read()
        assert scrape.status == 200
        assert (scrape.getheader("Connection") or "").lower() == "close"
        assert scrape.will_close
    finally:
        conn.close()

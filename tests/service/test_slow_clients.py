"""Slow clients cannot hold the service: a body that trickles in is cut at body_timeout
(408), a connection that sends no request at idle_timeout, and a worker takes at most
max_connections (one more is answered 503 at once) - while normal clients keep getting 201
at normal latency."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness._net import LOOPBACK
from tests.harness.kafka import KafkaCluster
from tests.harness.load import BackgroundLoad
from tests.service.conftest import Service, make_event, own_service

SLOW_HEADERS = (
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n{"
)


@pytest.fixture
def guarded(
    kafka_cluster: KafkaCluster, eventbus_topics: list[str], tmp_path: Path
) -> Iterator[Service]:
    with own_service(
        tmp_path,
        kafka_cluster.bootstrap_servers,
        body_timeout=2,
        idle_timeout=3,
        max_connections=60,
    ) as service:
        yield service


def port_of(service: Service) -> int:
    return int(service.url.rsplit(":", 1)[1])


def test_trickling_bodies_are_cut_while_normal_clients_get_201(guarded: Service) -> None:
    slow: list[socket.socket] = []
    try:
        with BackgroundLoad(guarded.url.removeprefix("http://"), rate=50, clients=4) as load:
            time.sleep(2)
            baseline = list(load.load.latencies)
            for _client in range(40):  # 40 clients sending a byte now and then
                sock = socket.create_connection((LOOPBACK, port_of(guarded)))
                sock.sendall(SLOW_HEADERS)
                slow.append(sock)
            started = time.monotonic()
            for _tick in range(4):
                time.sleep(0.5)
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.sendall(b" ")
            time.sleep(2)
            during = load.load.latencies[len(baseline) :]
        answers = []
        for sock in slow:
            sock.settimeout(5)
            try:
                answers.append(sock.recv(200))
            except OSError:
                answers.append(b"")
        cut_after = time.monotonic() - started
    finally:
        for sock in slow:
            sock.close()
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:3]
    assert cut_after < 2 + 10  # body_timeout, with seconds of margin
    assert load.load.failures == []
    assert len(during) > 100
    during.sort()
    assert during[int(len(during) * 0.99)] < 1.0  # normal clients kept normal latency


def test_a_connection_that_sends_no_request_is_closed(guarded: Service) -> None:
    with socket.create_connection((LOOPBACK, port_of(guarded))) as sock:
        sock.settimeout(15)
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")  # headers never finish
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed by the service
        assert time.monotonic() - started < 3 + 8  # idle_timeout, with margin
    assert guarded.post(make_event()).status == 201


def test_over_max_connections_a_connection_is_answered_503(guarded: Service) -> None:
    held = []
    try:
        for _client in range(60):
            held.append(socket.create_connection((LOOPBACK, port_of(guarded))))
        time.sleep(0.5)
        with socket.create_connection((LOOPBACK, port_of(guarded))) as extra:
            extra.settimeout(5)
            assert extra.recv(100).startswith(b"HTTP/1.1 503")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    assert guarded.post(make_event()).status == 201
    metrics = guarded.request("GET", "/metrics").body.decode()
    assert "eventbus_connections_refused_total 1.0" in metrics

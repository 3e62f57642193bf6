"""A worker's memory budgets in bytes, on a real service: request bodies read and handled at
once (max_in_flight_body_bytes: over it, 503 with Retry-After before the body is read, and a
bounded line in the failed-events log), and hasty events in flight (hasty_max_in_flight_bytes:
over it, a hasty request is handled as a guaranteed one). librdkafka's queue budget and the
configuration checks: tests/unit/eventbus/test_config.py and test_producer.py."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness._net import LOOPBACK, wait_until
from tests.harness.kafka import KafkaCluster
from tests.service.conftest import Service, make_event, own_service

MAX_BODY = 65536
BUDGET = 100_000  # one body of 60,000 bytes, and room for small ones beside it
HASTY_BUDGET = 3000


@pytest.fixture
def budgeted(
    kafka_cluster: KafkaCluster, eventbus_topics: list[str], tmp_path: Path
) -> Iterator[Service]:
    with own_service(
        tmp_path,
        kafka_cluster.bootstrap_servers,
        max_body_bytes=MAX_BODY,
        max_in_flight_body_bytes=BUDGET,
        hasty_max_in_flight_bytes=HASTY_BUDGET,
    ) as service:
        yield service


def events_body(size: int) -> bytes:
    """A JSON array of valid events, exactly ``size`` bytes."""
    events = [make_event(test="y" * 1000) for _event in range(size // 1300)]
    body = json.dumps(events).encode()
    body = body[:-1] + b" " * (size - len(body)) + b"]"
    assert len(body) == size
    return body


def headers(length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"{framing}\r\nConnection: close\r\n\r\n"
    ).encode()


def exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=30) as sock:
        sock.sendall(payload)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def in_flight(service: Service) -> float:
    metrics = service.request("GET", "/metrics").body.decode()
    found = re.search(r"^eventbus_requests_in_flight (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_bodies_over_the_budget_wait_for_room_and_lose_nothing(budgeted: Service) -> None:
    port = int(budgeted.url.rsplit(":", 1)[1])
    held = events_body(60_000)
    with socket.create_connection((LOOPBACK, port), timeout=30) as holder:
        # a large body that arrives slowly holds its 60,000 bytes of the budget
        holder.sendall(headers(len(held)) + held[:10])
        # its handler has run up to the body (and reserved): two requests in flight, it and
        # the /metrics request asking
        wait_until(lambda: in_flight(budgeted) >= 2, 20, "the held request to be in flight")

        over = exchange(port, headers(60_000) + events_body(60_000))
        assert status_of(over) == 503, over[:300]
        assert b"\r\nRetry-After: 1\r\n" in over
        assert b"too many bodies in flight" in over
        # a body of unknown size reserves max_body_bytes: over the budget too
        chunked = exchange(port, headers(None) + b"2\r\n[]\r\n0\r\n\r\n")
        assert status_of(chunked) == 503, chunked[:300]
        # a body of another content type is read too (its events are logged): within the budget
        text = headers(60_000).replace(b"application/json", b"text/plain")
        assert status_of(exchange(port, text + events_body(60_000))) == 503
        # a small one fits beside the held body
        assert budgeted.post(make_event()).status == 201

        holder.sendall(held[10:])
        assert status_of(read_all(holder)) == 201  # the held body was served whole
    # its bytes are given back: the same large body now goes in
    assert status_of(exchange(port, headers(60_000) + events_body(60_000))) == 201

    refusals = [
        r for r in budgeted.failed_records() if "max_in_flight_body_bytes" in r["event"]["message"]
    ]
    assert len(refusals) == 3  # one bounded line per refused request, the body never read
    assert all(r["event"]["rawEvent"] == "" for r in refusals)
    assert "exceed max_in_flight_body_bytes (100000)" in refusals[0]["event"]["message"]
    metrics = budgeted.request("GET", "/metrics").body.decode()
    assert "eventbus_busy_refusals_total 3.0" in metrics
    assert "Traceback" not in budgeted.log()


def test_hasty_events_over_their_byte_budget_are_handled_as_guaranteed(
    budgeted: Service,
) -> None:
    small = [make_event(test="z" * 100)]
    assert budgeted.post(small, "?hasty=true").status == 202
    large = [make_event(test="z" * 1000) for _event in range(4)]  # over 3000 bytes of values
    assert budgeted.post(large, "?hasty=true").status == 201  # waited for Kafka instead

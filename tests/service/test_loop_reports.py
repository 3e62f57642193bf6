"""Delivery reports served on the event loop (eventbus.loop_reports), against real Kafka: the
route is taken with the pinned confluent-kafka, requests are woken on the loop's thread with
no poller thread, the guard refuses every other offset into the producer object (in a child
process, so that a guard that let a wrong pointer through and crashed fails the test instead
of the run), and when the guard refuses, the poller thread serves as before."""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import confluent_kafka
import eventbus.producer as producer_module
import pytest
import uvloop
from eventbus.config import KafkaSettings
from eventbus.loop_reports import (
    PROBED_BYTES,
    LayoutError,
    LoopReports,
    confirmed,
    library,
    producer_handle,
)
from eventbus.producer import EventProducer

from tests.harness.kafka import KafkaCluster
from tests.service.conftest import make_event, wait_for_ids

TOPIC = "eqiad.test.event"
RUNNERS: dict[str, Callable[[Coroutine[Any, Any, Any]], Any]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


def batch(count: int) -> tuple[list[tuple[str, bytes, bytes | None]], set[str]]:
    events = [make_event() for _i in range(count)]
    return [(TOPIC, json.dumps(e).encode(), None) for e in events], {
        e["meta"]["id"] for e in events
    }


def pollers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("kafka-poller")]


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_reports_wake_requests_on_the_loop_thread(
    runner: str, kafka_cluster: KafkaCluster, eventbus_topics: list[str]
) -> None:
    records, ids = batch(50)

    async def scenario() -> tuple[bool, list[str], list[list[Any]], int]:
        producer = EventProducer(KafkaSettings(kafka_cluster.bootstrap_servers.split(",")))
        try:
            loop = asyncio.get_running_loop()
            on_loop, threads = producer.reports_on_loop, pollers()
            results = [await producer.produce_many(records[:1], loop.time() + 30)]
            results.append(await producer.produce_many(records[1:], loop.time() + 30))
            assert producer._reports is not None
            return on_loop, threads, results, producer._reports.wakeups
        finally:
            await producer.close(timeout=10)

    on_loop, threads, results, wakeups = RUNNERS[runner](scenario())
    assert on_loop, "the pinned confluent-kafka should pass the guard"
    assert threads == []
    assert results == [[True], [True] * 49]
    assert wakeups >= 2  # librdkafka's pipe woke the loop (the tick alone is once a second)
    wait_for_ids(kafka_cluster, TOPIC, ids)


GUARD_PROBE = textwrap.dedent(
    """
    import json, logging, sys
    import confluent_kafka
    from eventbus.loop_reports import LayoutError, library, producer_handle

    def callback(*args):
        pass

    # every callback set, so that the struct's fields after the pointer hold pointers too
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": sys.argv[1],
            "client.id": "eventbus",
            "error_cb": callback,
            "throttle_cb": callback,
            "stats_cb": callback,
            "statistics.interval.ms": 60000,
        },
        logger=logging.getLogger("probe"),
    )
    outcome = {}
    for offset in range(0, type(producer).__basicsize__ - 7, 8):
        try:
            producer_handle(library(), producer, "eventbus", offset)
            outcome[offset] = "accepted"
        except LayoutError as err:
            outcome[offset] = str(err)
    print(json.dumps(outcome))
    """
)


def test_the_guard_accepts_only_the_handle_offset(kafka_cluster: KafkaCluster) -> None:
    """Every 8-byte offset of the producer object is tried as where the rd_kafka_t pointer
    might be: only the one after the object header passes (in a child process: a check that
    let a wrong pointer reach librdkafka could crash it)."""
    done = subprocess.run(
        [sys.executable, "-c", GUARD_PROBE, kafka_cluster.bootstrap_servers],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"the probe died ({done.returncode}): {done.stderr[-2000:]}"
    outcome = {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    accepted = [offset for offset, said in outcome.items() if said == "accepted"]
    assert accepted == [object.__basicsize__], outcome
    assert len(outcome) >= 10  # the Handle struct's fields after the header were all tried
    # the callbacks' pointers lead to readable memory: the deeper checks refused them
    assert sum("does not name the producer" in said for said in outcome.values()) >= 3, outcome


def test_a_forged_handle_that_names_the_producer_is_refused(kafka_cluster: KafkaCluster) -> None:
    """Memory that holds the producer's address everywhere passes the fingerprint and the
    opaque checks; librdkafka's type and name checks still refuse it (the forgery is a
    readable buffer, so nothing can crash)."""
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": kafka_cluster.bootstrap_servers, "client.id": "eventbus"}
    )
    forged = ctypes.create_string_buffer(
        struct.pack("@P", id(producer)) * (PROBED_BYTES // 8 + 1024)
    )
    with pytest.raises(LayoutError, match=r"not a producer|names the handle"):
        confirmed(library(), producer, ctypes.addressof(forged), "eventbus")
    with pytest.raises(LayoutError, match="does not name the producer"):
        confirmed(
            library(),
            producer,
            ctypes.addressof(ctypes.create_string_buffer(PROBED_BYTES)),
            "eventbus",
        )
    producer.flush(0)


def test_the_guard_refuses_what_is_not_a_producer(kafka_cluster: KafkaCluster) -> None:
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": kafka_cluster.bootstrap_servers, "group.id": "guard"}
    )
    try:
        for thing in (consumer, object(), b"x" * 64):
            with pytest.raises(LayoutError, match="not confluent-kafka's own Producer"):
                producer_handle(library(), thing, "eventbus")
    finally:
        consumer.close()
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": kafka_cluster.bootstrap_servers, "client.id": "someone-else"}
    )
    with pytest.raises(LayoutError, match="names the handle 'someone-else#producer-"):
        producer_handle(library(), producer, "eventbus")


def test_a_refused_layout_falls_back_to_the_poller_thread(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kafka_cluster: KafkaCluster,
    eventbus_topics: list[str],
) -> None:
    def refuse(self: LoopReports) -> None:
        raise LayoutError("a layout this test made up")

    monkeypatch.setattr(producer_module.LoopReports, "start", refuse)
    records, ids = batch(20)

    async def scenario() -> tuple[bool, list[str], list[Any]]:
        producer = EventProducer(KafkaSettings(kafka_cluster.bootstrap_servers.split(",")))
        try:
            loop = asyncio.get_running_loop()
            return (
                producer.reports_on_loop,
                pollers(),
                await producer.produce_many(records, loop.time() + 30),
            )
        finally:
            await producer.close(timeout=10)

    with caplog.at_level(logging.WARNING, logger="eventbus.producer"):
        on_loop, threads, results = uvloop.run(scenario())
    assert not on_loop
    assert threads == ["kafka-poller"]
    assert results == [True] * 20
    assert "served by a poller thread: a layout this test made up" in caplog.text
    wait_for_ids(kafka_cluster, TOPIC, ids)

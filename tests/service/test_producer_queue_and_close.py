"""The producer against real Kafka: a request whose records do not fit librdkafka's queue at
once still has every record acknowledged (the queue makes room only as delivery reports are
served), closing waits for what is in flight, and a producer that hit a fatal error is
replaced by a fresh one."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import confluent_kafka
import eventbus.producer as producer_module
import pytest
from eventbus.config import KafkaSettings
from eventbus.producer import EventProducer

from tests.harness.kafka import KafkaCluster
from tests.service.conftest import make_event, wait_for_ids

TOPIC = "eqiad.test.event"


def records(count: int) -> tuple[list[tuple[str, bytes, bytes | None]], set[str]]:
    events = [make_event() for _i in range(count)]
    return [(TOPIC, json.dumps(e).encode(), None) for e in events], {
        e["meta"]["id"] for e in events
    }


@pytest.fixture
def small_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """librdkafka's queue holds 20 records (its default is 100,000)."""
    real = producer_module.librdkafka_config

    def config(settings: KafkaSettings) -> dict[str, Any]:
        return {**real(settings), "queue.buffering.max.messages": 20}

    monkeypatch.setattr(producer_module, "librdkafka_config", config)


def test_a_request_larger_than_the_queue_is_acknowledged_whole(
    small_queue: None, kafka_cluster: KafkaCluster, eventbus_topics: list[str]
) -> None:
    batch, ids = records(500)

    async def scenario() -> list[Any]:
        producer = EventProducer(KafkaSettings(kafka_cluster.bootstrap_servers.split(",")))
        try:
            loop = asyncio.get_running_loop()
            return await producer.produce_many(batch, loop.time() + 30)
        finally:
            await producer.close(timeout=10)

    results = asyncio.run(scenario())
    assert results == [True] * len(batch)
    wait_for_ids(kafka_cluster, TOPIC, ids)


def test_close_waits_for_the_records_in_flight(
    kafka_cluster: KafkaCluster, eventbus_topics: list[str]
) -> None:
    batch, ids = records(200)

    async def scenario() -> list[Any]:
        producer = EventProducer(KafkaSettings(kafka_cluster.bootstrap_servers.split(",")))
        loop = asyncio.get_running_loop()
        # the topic listed once (the first request), then the records are handed over at once
        assert await producer.produce_many(batch[:1], loop.time() + 30) == [True]
        request = asyncio.create_task(producer.produce_many(batch[1:], loop.time() + 30))
        await asyncio.sleep(0)
        assert len(producer._producer) > 0  # in flight, not yet acknowledged
        await producer.close(timeout=20)
        return await asyncio.wait_for(request, 1)

    results = asyncio.run(scenario())
    assert results == [True] * (len(batch) - 1)
    wait_for_ids(kafka_cluster, TOPIC, ids)


def test_a_fatal_error_replaces_the_producer(
    kafka_cluster: KafkaCluster, eventbus_topics: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """librdkafka reports a fatal error (an idempotent producer whose state the brokers lost)
    through its error callback, after which that producer refuses everything: the next
    request starts a fresh producer, and its records are acknowledged."""
    first, first_ids = records(5)
    second, second_ids = records(5)

    async def scenario() -> tuple[list[Any], list[Any], bool]:
        producer = EventProducer(KafkaSettings(kafka_cluster.bootstrap_servers.split(",")))
        try:
            loop = asyncio.get_running_loop()
            before = await producer.produce_many(first, loop.time() + 30)
            old = producer._producer
            fatal = confluent_kafka.KafkaError(
                confluent_kafka.KafkaError._FATAL, "test: producer fenced", fatal=True
            )
            producer._on_error(fatal)  # as librdkafka's callback would, on the poller thread
            after = await producer.produce_many(second, loop.time() + 30)
            return before, after, producer._producer is not old
        finally:
            await producer.close(timeout=10)

    with caplog.at_level(logging.ERROR, logger="eventbus.producer"):
        before, after, replaced = asyncio.run(scenario())
    assert before == [True] * 5
    assert replaced
    assert after == [True] * 5
    assert "fatal error (" in caplog.text
    assert "replaced by a new one (1 so far)" in caplog.text
    wait_for_ids(kafka_cluster, TOPIC, first_ids | second_ids)

"""The producer's pieces that need no Kafka: its librdkafka configuration and how a
request's delivery reports, arriving on the loop's thread or another, finish the
request exactly once."""

from __future__ import annotations

import asyncio
import random
import threading
from typing import ClassVar

import confluent_kafka
import eventbus.producer as producer_module
import pytest
from eventbus.config import KafkaSettings
from eventbus.producer import (
    KafkaUnavailableError,
    TopicCatalog,
    _Delivery,
    librdkafka_config,
)
from kafka import errors as kafka_errors

POLLER = 0  # a thread ident no thread has: the reports come from a thread not the loop's


def test_settings_become_librdkafka_names() -> None:
    settings = KafkaSettings(
        ["k1:9092", "k2:9092"],
        producer={"acks": "all", "linger_ms": 3, "compression_type": None},
        security={
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": "eventbus",
            "sasl_plain_password": "secret",
            "ssl_cafile": "/etc/ssl/ca.pem",
            "ssl_check_hostname": False,
        },
        produce_timeout=7.5,
    )
    config = librdkafka_config(settings)
    assert config["bootstrap.servers"] == "k1:9092,k2:9092"
    assert config["acks"] == "all"
    assert config["linger.ms"] == 3
    assert config["compression.type"] == "none"
    assert config["security.protocol"] == "sasl_ssl"
    assert config["sasl.username"] == "eventbus"
    assert config["ssl.ca.location"] == "/etc/ssl/ca.pem"
    assert config["ssl.endpoint.identification.algorithm"] == "none"
    assert config["message.timeout.ms"] == 7500
    assert config["request.timeout.ms"] == 7500
    assert config["enable.idempotence"] is True  # a retried batch is never written twice
    confluent_kafka.Producer(
        {**config, "ssl.ca.location": "probe"} | {"security.protocol": "plaintext"}
    ).flush(0)  # librdkafka itself takes every name


@pytest.mark.parametrize(
    ("acks", "idempotent"), [("all", True), (-1, True), (1, False), (0, False)]
)
def test_idempotence_follows_acks(acks: object, idempotent: bool) -> None:
    """librdkafka refuses idempotence with acks 0 or 1 (allowed only by kafka.allow_weak_acks)."""
    config = librdkafka_config(KafkaSettings(["k:9092"], producer={"acks": acks}))
    assert config["enable.idempotence"] is idempotent
    confluent_kafka.Producer(config).flush(0)  # librdkafka takes the combination


def test_the_queue_holds_the_configured_bytes() -> None:
    """librdkafka's own default is 1 GiB per producer: the worker's budget replaces it."""
    assert librdkafka_config(KafkaSettings(["k:9092"]))["queue.buffering.max.kbytes"] == 65536
    odd = KafkaSettings(["k:9092"], queue_max_bytes=1_500_000)
    assert librdkafka_config(odd)["queue.buffering.max.kbytes"] == 1465  # rounded up


def test_linger_defaults_to_one_millisecond() -> None:
    assert librdkafka_config(KafkaSettings(["k:9092"]))["linger.ms"] == 1


class Message:
    """What confluent-kafka passes a delivery callback, as _Delivery reads it."""

    def __init__(self, record: tuple[str, bytes, bytes | None]) -> None:
        self._record = record

    def topic(self) -> str:
        return self._record[0]

    def value(self) -> bytes:
        return self._record[1]

    def key(self) -> bytes | None:
        return self._record[2]


def records_of(count: int, topic: str = "eqiad.test") -> list[tuple[str, bytes, bytes | None]]:
    return [(topic, b'{"n": %d}' % i, None) for i in range(count)]


def test_early_acknowledgements_do_not_finish_the_request() -> None:
    async def scenario() -> None:
        records = records_of(3)
        results: list[object] = [None] * 3
        delivery = _Delivery(asyncio.get_running_loop(), POLLER)
        delivery.report(None, Message(records[0]))  # before the next is handed over
        await asyncio.sleep(0.01)
        assert not delivery.future.done()
        results[2] = KafkaUnavailableError("queue full")  # never handed over
        delivery.handed_over(2)
        assert not delivery.future.done()
        thread = threading.Thread(target=delivery.report, args=("broker down", Message(records[1])))
        thread.start()
        thread.join()
        await asyncio.wait_for(delivery.future, 5)
        delivery.outcomes(records, results, [0, 1])
        assert results[0] is True
        assert isinstance(results[1], KafkaUnavailableError)
        assert "broker down" in str(results[1])
        assert isinstance(results[2], KafkaUnavailableError)

    asyncio.run(scenario())


def test_reports_racing_the_hand_over_finish_the_request_once() -> None:
    """The last report and the end of the hand-over race from two threads: the request is
    woken however they interleave, and never before every report is in."""

    async def scenario(size: int) -> None:
        records = records_of(size)
        delivery = _Delivery(asyncio.get_running_loop(), POLLER)
        barrier = threading.Barrier(2)

        def reports() -> None:
            barrier.wait()
            for record in records:
                delivery.report(None, Message(record))

        thread = threading.Thread(target=reports)
        thread.start()
        barrier.wait()
        delivery.handed_over(size)
        await asyncio.wait_for(delivery.future, 5)
        thread.join()
        assert delivery.reported == size
        results: list[object] = [None] * size
        delivery.outcomes(records, results, list(range(size)))
        assert results == [True] * size

    for size in (1, 2, 100, 5000):
        for _attempt in range(20):
            asyncio.run(scenario(size))


def test_a_report_on_the_loop_thread_wakes_the_request_at_once() -> None:
    """Served on the loop's thread (loop_reports.py), the last report resolves the request's
    future in the same call, with no trip through call_soon_threadsafe."""

    async def scenario() -> None:
        records = records_of(2)
        delivery = _Delivery(asyncio.get_running_loop(), threading.get_ident())
        delivery.handed_over(2)
        delivery.report(None, Message(records[1]))
        assert not delivery.future.done()
        delivery.report(None, Message(records[0]))
        assert delivery.future.done()

    asyncio.run(scenario())


def test_a_request_with_nothing_handed_over_finishes_at_once() -> None:
    async def scenario() -> None:
        delivery = _Delivery(asyncio.get_running_loop(), POLLER)
        delivery.handed_over(0)
        assert delivery.future.done()
        results: list[object] = [KafkaUnavailableError("unknown topic")]
        delivery.outcomes(records_of(1), results, [])
        assert isinstance(results[0], KafkaUnavailableError)

    asyncio.run(scenario())


def test_one_callback_per_request_gives_each_record_its_own_outcome() -> None:
    """The request's one callback is told neither record nor index: its reports, in any
    order, from another thread, some failed, some never coming before the deadline, across
    two topics and with records of the same bytes, still give each record its outcome (of
    two records with the same bytes and different outcomes, either may get either: they are
    the same event)."""

    async def scenario(seed: int) -> None:
        rng = random.Random(seed)
        records = records_of(300, "eqiad.a") + records_of(200, "eqiad.b")
        records += [records[7], records[7], records[350]]  # the same events again
        size = len(records)
        fate = [rng.choice(["acked", "acked", "failed", "late"]) for _record in records]
        delivery = _Delivery(asyncio.get_running_loop(), POLLER)
        order = list(range(size))
        rng.shuffle(order)

        def reports() -> None:
            for index in order:
                if fate[index] == "acked":
                    delivery.report(None, Message(records[index]))
                elif fate[index] == "failed":
                    delivery.report("broker down", Message(records[index]))

        thread = threading.Thread(target=reports)
        thread.start()
        delivery.handed_over(size)
        thread.join()
        assert not delivery.future.done()  # the late ones have not reported
        results: list[object] = [None] * size
        delivery.outcomes(records, results, list(range(size)))

        def kind(result: object) -> str:
            if result is True:
                return "acked"
            assert isinstance(result, KafkaUnavailableError), result
            return "late" if "deadline" in str(result) else "failed"

        # the same bytes: the same multiset of outcomes; every other record its own
        by_bytes: dict[tuple, list[str]] = {}
        for index, record in enumerate(records):
            by_bytes.setdefault(record, []).append(index)
        for indexes in by_bytes.values():
            assert sorted(kind(results[i]) for i in indexes) == sorted(fate[i] for i in indexes)
        assert sum(r is True for r in results) == fate.count("acked")

    for seed in range(10):
        asyncio.run(scenario(seed))


class FakeAdmin:
    """kafka-python's admin client as the catalog uses it; ``answers`` is shared by every
    client made, a list of topic lists or errors, taken in turn."""

    answers: ClassVar[list] = []
    made = 0
    closed = 0

    def __init__(self, **_settings: object) -> None:
        FakeAdmin.made += 1

    def list_topics(self) -> list[str]:
        answer = FakeAdmin.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        FakeAdmin.closed += 1


def fake_catalog(monkeypatch: pytest.MonkeyPatch, answers: list) -> TopicCatalog:
    monkeypatch.setattr(producer_module, "KafkaAdminClient", FakeAdmin)
    monkeypatch.setattr(producer_module, "CATALOG_RETRY_PAUSE", 0.01)
    FakeAdmin.answers, FakeAdmin.made, FakeAdmin.closed = list(answers), 0, 0
    # a refresh that fails gives up after 0.5 s (min(produce_timeout, 5)), well inside the 5 s
    # in which a list is trusted to say a topic is missing: with the default 5 s budget, a
    # loaded machine (CI7) ended the failed refresh just past that window
    return TopicCatalog(
        KafkaSettings(["k1:9092", "k2:9092"], produce_timeout=0.5, topic_trust_seconds=0.0)
    )


def test_a_failed_list_is_retried_with_a_fresh_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client left with every broker in its reconnect backoff (CI12) is not asked again:
    the next attempt bootstraps a new one."""
    catalog = fake_catalog(
        monkeypatch, [kafka_errors.NodeNotReadyError("No node_id provided"), ["eqiad.test"]]
    )
    assert catalog.refresh() == frozenset({"eqiad.test"})
    assert (FakeAdmin.made, FakeAdmin.closed) == (2, 1)


def test_a_topic_listed_before_is_produced_to_while_kafka_cannot_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = fake_catalog(monkeypatch, [["eqiad.test"]])
    catalog.refresh()
    FakeAdmin.answers = [kafka_errors.KafkaConnectionError("refused")] * 1000
    assert catalog.known("eqiad.test") is None  # stale (trust window 0): ask Kafka first
    with pytest.raises(KafkaUnavailableError):
        catalog.refresh()
    # Kafka was just asked in vain: a topic it listed is produced to (delivered or 503); one
    # missing from the list it gave seconds ago is unknown (4xx) until the next list
    assert catalog.known("eqiad.test") is True
    assert catalog.known("eqiad.other") is False
    assert catalog.listed_before("eqiad.test")
    assert not catalog.listed_before("eqiad.other")

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
    ReportSlots,
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


def test_early_acknowledgements_do_not_finish_the_request() -> None:
    async def scenario() -> None:
        delivery = _Delivery(asyncio.get_running_loop(), POLLER, 3)
        delivery.delivered(0, None, None)  # acknowledged before the next is handed over
        await asyncio.sleep(0.01)
        assert not delivery.future.done()
        delivery.results[2] = KafkaUnavailableError("queue full")  # never handed over
        delivery.handed_over(2)
        assert not delivery.future.done()
        thread = threading.Thread(target=delivery.delivered, args=(1, "broker down", None))
        thread.start()
        thread.join()
        await asyncio.wait_for(delivery.future, 5)
        assert delivery.results[0] is True
        assert isinstance(delivery.results[1], KafkaUnavailableError)
        assert "broker down" in str(delivery.results[1])
        assert isinstance(delivery.results[2], KafkaUnavailableError)

    asyncio.run(scenario())


def test_reports_racing_the_hand_over_finish_the_request_once() -> None:
    """The last report and the end of the hand-over race from two threads: the request is
    woken however they interleave, and never before every report is in."""

    async def scenario(size: int) -> None:
        delivery = _Delivery(asyncio.get_running_loop(), POLLER, size)
        barrier = threading.Barrier(2)

        def reports() -> None:
            barrier.wait()
            for index in range(size):
                delivery.delivered(index, None, None)

        thread = threading.Thread(target=reports)
        thread.start()
        barrier.wait()
        delivery.handed_over(size)
        await asyncio.wait_for(delivery.future, 5)
        thread.join()
        assert delivery.acked == size
        assert delivery.results == [True] * size

    for size in (1, 2, 100, 5000):
        for _attempt in range(20):
            asyncio.run(scenario(size))


def test_a_report_on_the_loop_thread_wakes_the_request_at_once() -> None:
    """Served on the loop's thread (loop_reports.py), the last report resolves the request's
    future in the same call, with no trip through call_soon_threadsafe."""

    async def scenario() -> None:
        delivery = _Delivery(asyncio.get_running_loop(), threading.get_ident(), 2)
        delivery.handed_over(2)
        delivery.delivered(1, None, None)
        assert not delivery.future.done()
        delivery.delivered(0, None, None)
        assert delivery.future.done()
        assert delivery.results == [True, True]

    asyncio.run(scenario())


def test_a_request_with_nothing_handed_over_finishes_at_once() -> None:
    async def scenario() -> None:
        delivery = _Delivery(asyncio.get_running_loop(), POLLER, 1)
        delivery.results[0] = KafkaUnavailableError("unknown topic")
        delivery.handed_over(0)
        assert delivery.future.done()

    asyncio.run(scenario())


def test_report_slots_reach_their_request_and_record_and_are_reused() -> None:
    """Two requests' records share the slots; each report reaches its own request and index
    however the reports interleave (from the poller's thread); a slot serves record after
    record instead of a new callable per record."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        slots = ReportSlots()
        for round_ in range(3):
            first, second = _Delivery(loop, POLLER, 500), _Delivery(loop, POLLER, 700)
            taken = [(first, i, *slots.take(first, i)) for i in range(500)]
            taken += [(second, i, *slots.take(second, i)) for i in range(700)]
            assert len({slot for _d, _i, slot, _cb in taken}) == 1200  # one slot per record
            random.Random(round_).shuffle(taken)
            first.handed_over(500)
            second.handed_over(700)

            def reports(taken: list = taken, failing: _Delivery = second) -> None:
                for delivery, index, _slot, callback in taken:
                    failed = delivery is failing and index % 7 == 0
                    callback("broker down" if failed else None, None)

            thread = threading.Thread(target=reports)
            thread.start()
            await asyncio.wait_for(asyncio.gather(first.future, second.future), 10)
            thread.join()
            assert first.results == [True] * 500
            for index, result in enumerate(second.results):
                if index % 7 == 0:
                    assert isinstance(result, KafkaUnavailableError), index
                else:
                    assert result is True, index
        assert slots.made == 1200  # the second and third rounds made no callable

    asyncio.run(scenario())


def test_a_slot_not_handed_over_is_given_back_and_a_full_set_falls_back() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        slots = ReportSlots(limit=2)
        delivery = _Delivery(loop, POLLER, 3)
        first, _callback = slots.take(delivery, 0)
        slots.give_back(first)  # the producer refused it: no report will come
        again, callback0 = slots.take(delivery, 0)
        assert again == first
        slot1, callback1 = slots.take(delivery, 1)
        slot2, callback2 = slots.take(delivery, 2)  # past the limit: a callable of its own
        assert (slot1, slot2) == (1, -1)
        assert slots.made == 2
        delivery.handed_over(3)
        for callback in (callback2, callback0, callback1):
            callback(None, None)
        await asyncio.wait_for(delivery.future, 5)
        assert delivery.results == [True, True, True]
        slots.give_back(-1)  # a partial's slot: nothing to give back
        assert sorted(slots._free) == [0, 1]

    asyncio.run(scenario())


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

"""Producing to Kafka with aiokafka, awaited until Kafka acknowledges.

aiokafka is asyncio-native: measured side by side (docs/benchmarks.md) it acknowledged
acks=all sends 2.5 times as fast as kafka-python, whose network thread adds a hand-off to
every acknowledgement. kafka-python stays for the topic catalog (an admin call, rare).

The producer's request timeout is the configured produce timeout, after which aiokafka
expires a batch it could not deliver, and the request waits a little longer: when a request
answers 503 the producer has given up on the record, so an event logged as failed is never
delivered behind the log's back and a replay does not duplicate it. That needs idempotence
off: an idempotent aiokafka producer never expires a batch and retries it until Kafka is
back (aiokafka/producer/sender.py, _can_retry), which delivered events already answered 503
and logged for replay (caught by tests/service/test_outage_and_replay.py).

``TopicCatalog`` knows which topics exist, so that an event for a topic Kafka does not have
is refused as invalid (4xx), while Kafka being unreachable is an error (503).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka import errors as aiokafka_errors
from aiokafka.helpers import create_ssl_context
from kafka import KafkaAdminClient
from kafka import errors as kafka_errors

from eventbus.config import KafkaSettings

log = logging.getLogger(__name__)
CATALOG_MISS_REFRESH = 5.0  # an unknown topic triggers a refresh at most this often


class KafkaUnavailableError(Exception):
    """Kafka could not be reached or did not acknowledge in time."""


class UnknownTopicError(Exception):
    """Kafka is reachable and does not have the topic."""


def _client_settings(settings: KafkaSettings) -> dict[str, Any]:
    return {"bootstrap_servers": settings.bootstrap_servers, **settings.security}


class TopicCatalog:
    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._topics: frozenset[str] = frozenset()
        self._refreshed_at = 0.0
        self._lock = threading.Lock()
        self._admin: KafkaAdminClient | None = None

    @property
    def age(self) -> float:
        return time.monotonic() - self._refreshed_at

    def refresh(self) -> frozenset[str]:
        """List the topics (blocking); KafkaUnavailableError when Kafka does not answer."""
        timeout_ms = int(min(self._settings.produce_timeout, 5.0) * 1000)
        with self._lock:
            try:
                if self._admin is None:
                    self._admin = KafkaAdminClient(
                        **_client_settings(self._settings),
                        client_id="eventbus-catalog",
                        request_timeout_ms=timeout_ms,
                        bootstrap_timeout_ms=timeout_ms,  # not 30 s with Kafka down
                    )
                topics = frozenset(self._admin.list_topics())
            except kafka_errors.KafkaError as err:
                if self._admin is not None:
                    self._admin.close()
                    self._admin = None
                raise KafkaUnavailableError(f"listing topics failed: {err}") from err
            self._topics, self._refreshed_at = topics, time.monotonic()
            return topics

    def known(self, topic: str) -> bool | None:
        """True/False from the cached list; None when the list should be refreshed first."""
        if topic in self._topics and self.age < self._settings.topic_trust_seconds:
            return True
        if self._refreshed_at and self.age < CATALOG_MISS_REFRESH:
            return False
        return None

    def close(self) -> None:
        with self._lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None


def _aiokafka_settings(settings: KafkaSettings) -> dict[str, Any]:
    security = dict(settings.security)
    ssl = {k: security.pop(k) for k in list(security) if k.startswith("ssl_")}
    config: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers, **security}
    if ssl:
        context = create_ssl_context(
            cafile=ssl.get("ssl_cafile"),
            certfile=ssl.get("ssl_certfile"),
            keyfile=ssl.get("ssl_keyfile"),
            password=ssl.get("ssl_password"),
        )
        context.check_hostname = ssl.get("ssl_check_hostname", True)
        config["ssl_context"] = context
    return config


class EventProducer:
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.catalog = TopicCatalog(settings)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kafka-admin")
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Lock | None = None

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **_aiokafka_settings(self.settings),
                    client_id="eventbus",
                    request_timeout_ms=int(self.settings.produce_timeout * 1000),
                    enable_idempotence=False,  # see the module docstring
                    **self.settings.producer,
                )
                try:
                    await asyncio.wait_for(producer.start(), self.settings.produce_timeout)
                except (TimeoutError, aiokafka_errors.KafkaError, OSError) as err:
                    await producer.stop()
                    raise KafkaUnavailableError(f"cannot connect a producer: {err!r}") from err
                self._producer = producer
        return self._producer

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def check_topic(self, topic: str) -> None:
        known = self.catalog.known(topic)
        if known is None:
            topics = await self._in_thread(self.catalog.refresh)
            known = topic in topics
        if not known:
            raise UnknownTopicError(topic)

    async def healthy(self) -> bool:
        """Kafka answered a topic listing in the last 2 s, or answers one now within a few
        seconds (a health check must answer, whatever Kafka does)."""
        if self.catalog.age < 2.0:
            return True
        try:
            await asyncio.wait_for(
                self._in_thread(self.catalog.refresh), min(self.settings.produce_timeout, 5.0)
            )
        except (KafkaUnavailableError, TimeoutError):
            return False
        return True

    async def produce_many(
        self, records: list[tuple[str, bytes, bytes | None]], deadline: float
    ) -> list[Any]:
        """Send records and wait until Kafka acknowledged all of them, gave up, or the loop's
        clock reached ``deadline``.

        Returns, per record, its RecordMetadata or the exception that stopped it
        (UnknownTopicError, KafkaUnavailableError). Records are handed to the producer one
        after another (that only waits for room in its buffer or a topic's metadata) within
        the one deadline, and their acknowledgements are awaited together. A record not
        acknowledged by the deadline may still reach Kafka later (eventbus-replay looks for
        it in Kafka before producing it again).
        """
        loop = asyncio.get_running_loop()

        def remaining() -> float:
            return max(0.0, deadline - loop.time())

        results: list[Any] = [None] * len(records)
        refused: dict[str, Exception] = {}
        for topic in {topic for topic, _value, _key in records}:
            try:
                await asyncio.wait_for(self.check_topic(topic), remaining())
            except UnknownTopicError as err:
                refused[topic] = err
            except (KafkaUnavailableError, TimeoutError) as err:
                refused[topic] = KafkaUnavailableError(f"cannot list Kafka's topics: {err!r}")
        producer: AIOKafkaProducer | None = None
        pending: dict[asyncio.Future[Any], int] = {}
        for index, (topic, value, key) in enumerate(records):
            if topic in refused:
                results[index] = refused[topic]
                continue
            try:
                producer = producer or await asyncio.wait_for(
                    asyncio.shield(self._started()), remaining()
                )
                future = await asyncio.wait_for(
                    producer.send(topic, value=value, key=key), remaining()
                )
            except KafkaUnavailableError as err:
                results[index] = err
                continue
            except (TimeoutError, aiokafka_errors.KafkaError, OSError) as err:
                results[index] = KafkaUnavailableError(repr(err))
                continue
            pending[future] = index
        if pending:
            done, not_done = await asyncio.wait(pending, timeout=remaining())
            for future in done:
                error = future.exception()
                results[pending[future]] = (
                    KafkaUnavailableError(f"Kafka did not acknowledge: {error!r}")
                    if error
                    else future.result()
                )
            for future in not_done:
                results[pending[future]] = KafkaUnavailableError(
                    "Kafka did not acknowledge within the request's deadline"
                )
        return results

    async def close(self, timeout: float = 10.0) -> None:
        """Flush what is in flight, then close."""
        if self._producer is not None:
            try:
                await asyncio.wait_for(self._producer.stop(), timeout)
            except TimeoutError:
                log.error("the producer did not flush within %ss", timeout)
        self.catalog.close()
        self._executor.shutdown(wait=False)

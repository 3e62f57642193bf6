"""Producing to Kafka with kafka-python, awaited from asyncio until Kafka acknowledges.

The producer's ``delivery_timeout_ms`` is the configured produce timeout and the request
waits a little longer, so when a request answers 503 the producer has given up on the
record: an event logged as failed is never delivered behind the log's back, and a replay
does not duplicate it. Idempotence (kafka-python's default) keeps retries from duplicating.

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

from kafka import KafkaAdminClient, KafkaProducer
from kafka import errors as kafka_errors

from eventbus.config import KafkaSettings

log = logging.getLogger(__name__)
CATALOG_MAX_AGE = 30.0  # seconds before the topic list is refreshed in the background
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
        if topic in self._topics and self.age < CATALOG_MAX_AGE * 10:
            return True
        if self._refreshed_at and self.age < CATALOG_MISS_REFRESH:
            return False
        return None

    def close(self) -> None:
        with self._lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None


class EventProducer:
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.catalog = TopicCatalog(settings)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kafka")
        self._producer: KafkaProducer | None = None
        self._create_lock = threading.Lock()
        # topics the producer has metadata for: send() on others may block, so use a thread
        self._warm_topics: set[str] = set()

    @property
    def wait_seconds(self) -> float:
        return self.settings.produce_timeout + 2.0

    def _create(self) -> KafkaProducer:
        with self._create_lock:
            if self._producer is None:
                timeout_ms = int(self.settings.produce_timeout * 1000)
                config = {
                    **_client_settings(self.settings),
                    "client_id": "eventbus",
                    "max_block_ms": timeout_ms,
                    "delivery_timeout_ms": timeout_ms,
                    "request_timeout_ms": max(1000, timeout_ms // 2),
                    **self.settings.producer,
                }
                try:
                    self._producer = KafkaProducer(**config)
                except kafka_errors.KafkaError as err:
                    raise KafkaUnavailableError(f"cannot connect a producer: {err}") from err
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
        if self.catalog.age < 2.0:
            return True
        try:
            await self._in_thread(self.catalog.refresh)
        except KafkaUnavailableError:
            return False
        return True

    async def produce(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        """Send one record and wait for Kafka's acknowledgement (RecordMetadata)."""
        await self.check_topic(topic)
        producer = self._producer or await self._in_thread(self._create)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def settle(result: Any = None, error: BaseException | None = None) -> None:
            if not done.done():
                if error is not None:
                    done.set_exception(error)
                else:
                    done.set_result(result)

        try:
            if topic in self._warm_topics:
                future = producer.send(topic, value=value, key=key)
            else:
                future = await self._in_thread(lambda: producer.send(topic, value=value, key=key))
                self._warm_topics.add(topic)
        except kafka_errors.KafkaError as err:
            raise KafkaUnavailableError(str(err)) from err
        future.add_callback(lambda md: loop.call_soon_threadsafe(settle, md, None))
        future.add_errback(lambda exc: loop.call_soon_threadsafe(settle, None, exc))
        try:
            return await asyncio.wait_for(done, self.wait_seconds)
        except (TimeoutError, kafka_errors.KafkaError) as err:
            raise KafkaUnavailableError(f"Kafka did not acknowledge: {type(err).__name__}") from err

    async def close(self, timeout: float = 10.0) -> None:
        """Flush what is in flight, then close."""
        if self._producer is not None:
            await self._in_thread(self._producer.close, timeout)
        self.catalog.close()
        self._executor.shutdown(wait=False)

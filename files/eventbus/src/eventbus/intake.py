"""One request's events, from the body's bytes to an outcome per event and a status code.

Status codes: 201 all accepted; 207 some accepted; 400 none valid (413 when every one was
too large); 503 when valid events could not be produced (Kafka unreachable, too slow for the
request's deadline, or the service stopping) - never 400 for an outage, never 500 for what a
client sent; with ``hasty`` 202 once validated. Every event not accepted goes to the
failed-events log; an event that could neither be produced nor logged makes the answer 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
import operator
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from eventbus import metrics
from eventbus.config import Config
from eventbus.failed_events import FailedEventsLog, event_error
from eventbus.producer import EventProducer, KafkaUnavailableError, UnknownTopicError
from eventbus.schemas import SchemaRepository
from eventbus.validation import Validator, ValidEvent, event_id

log = logging.getLogger("eventbus.intake")
ACCEPTED, INVALID, ERROR = "accepted", "invalid", "error"
STOPPING = "the service stopped before Kafka acknowledged the event; it was logged for replay"


@dataclass(slots=True)
class Outcome:
    index: int
    id: str | None
    status: str
    message: str = ""
    topic: str | None = None
    too_large: bool = False

    def public(self) -> dict[str, Any]:
        return {"status": self.status, "index": self.index, "id": self.id, "message": self.message}


@dataclass
class IntakeResult:
    """A request's answer: its status, the events not accepted (by index), and how many
    were (an accepted event needs no object of its own: a 100-event batch that all went in
    makes none)."""

    status: int
    failures: list[Outcome] = field(default_factory=list)
    accepted: int = 0

    @property
    def total(self) -> int:
        return self.accepted + len(self.failures)

    def body(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "total": self.total,
            "failures": [o.public() for o in self.failures],
        }


def serialised(event: Any) -> bytes | None:
    """An event of a batch as JSON text, or None when even the standard library cannot
    write it (then the whole body is logged for it)."""
    try:
        return orjson.dumps(event)
    except orjson.JSONEncodeError:
        try:
            return json.dumps(event, ensure_ascii=False).encode("utf-8", "surrogatepass")
        except (RecursionError, ValueError, UnicodeEncodeError):
            return None


# a ValidEvent's Kafka topic, and its record as the producer takes it (topic, value, key):
# ValidEvent is a tuple, and itemgetter reads it at C speed, without a Python loop
_topic_of = operator.itemgetter(2)
_record_of = operator.itemgetter(2, 4, 3)


def by_topic(valid: list[ValidEvent]) -> dict[str, int]:
    """How many of the events go to each topic."""
    return dict(Counter(map(_topic_of, valid)))


def error_kind(error: Exception) -> str:
    if isinstance(error, UnknownTopicError):
        return "unknown_topic"
    if isinstance(error, KafkaUnavailableError):
        return "deadline" if "deadline" in str(error) else "unavailable"
    return "unexpected"


def text_of(raw: bytes) -> str:
    """A body or an event as the failed-events log's rawEvent (text)."""
    return raw.decode("utf-8", "replace")


# A failure's message in the failed-events log: a validation error can quote the value it
# refused (a megabyte string), which the record's rawEvent already holds.
MAX_MESSAGE_CHARS = 2000
# A request's invalid events each get a record up to this many; the rest share one record
# (with the whole body, once): 10,000 tiny invalid events in a 30 KB body wrote 10,000 records
# of about 300 bytes each, a hundredfold the body.
MAX_INVALID_RECORDS = 100


def bounded(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS] + f"... ({len(message) - MAX_MESSAGE_CHARS} more characters)"


class Intake:
    def __init__(
        self,
        config: Config,
        schemas: SchemaRepository,
        producer: EventProducer,
        failed: FailedEventsLog,
    ) -> None:
        self.validator = Validator(config, schemas)
        self.producer = producer
        self.failed = failed
        # hasty=true: background produces, with the events each one still owes Kafka and
        # their bytes
        self.background: dict[asyncio.Task[Any], tuple[list[ValidEvent], int]] = {}
        self.hasty_in_flight = 0
        self.hasty_in_flight_bytes = 0
        # the bodies the worker reads and handles now, in bytes (http.post_events reserves)
        self.body_bytes_in_flight = 0

    @property
    def config(self) -> Config:
        return self.validator.config

    @property
    def schemas(self) -> SchemaRepository:
        return self.validator.schemas

    def reload(self, fresh: Config) -> None:
        """SIGHUP: the schemas and stream rules of ``fresh`` for the next requests (in-flight
        ones keep what they started with); the rest of the configuration needs a restart."""
        self.validator.reload(fresh)

    # -- one request -----------------------------------------------------------------------
    def _events(self, body: bytes, parsed: Any) -> Iterator[tuple[int, Any, bytes | None]]:
        """(index, event, its JSON text) of each event: a lone event's text is the body as
        received; a batch's events are written out again (None when they cannot be)."""
        if not isinstance(parsed, list):
            yield 0, parsed, body
            return
        for index, event in enumerate(parsed):
            yield index, event, serialised(event)

    async def handle(self, body: bytes, hasty: bool = False) -> IntakeResult:
        config = self.config
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            message = f"malformed JSON: {err}"
            self.failed.write([event_error(text_of(body), message, "parse")])
            return self._done(IntakeResult(400, [Outcome(0, None, INVALID, message)]))
        count = len(parsed) if isinstance(parsed, list) else 1
        if count == 0:
            return self._done(
                IntakeResult(400, [Outcome(0, None, INVALID, "the request holds no events")])
            )
        if count > config.max_events_per_request:
            message = f"more than {config.max_events_per_request} events in one request"
            self.failed.write([event_error(text_of(body), message, "validation")])
            return self._done(IntakeResult(413, [Outcome(0, None, INVALID, message)]))

        valid, invalid = self.validator.validate_all(self._events(body, parsed))
        refused: list[Outcome] = []  # the events not accepted
        failures: list[dict[str, Any]] = []
        body_logged_at: int | None = None  # the element whose record holds the whole body
        unrecorded: list[int] = []  # invalid events past MAX_INVALID_RECORDS
        for index, event, raw, err in invalid:
            refused.append(
                Outcome(index, event_id(event), INVALID, str(err), too_large=err.too_large)
            )
            if len(failures) >= MAX_INVALID_RECORDS:
                unrecorded.append(index)
                continue
            schema = event.get("$schema", "") if isinstance(event, dict) else ""
            message = bounded(str(err))
            if raw is not None:
                logged = text_of(raw)
            elif body_logged_at is None:
                # an element that cannot be written alone: the whole body, once per request
                # (it holds every element; logging it per element multiplied it)
                logged, body_logged_at = text_of(body), index
                message += f" (the record holds the whole request body; element {index})"
            else:
                logged = ""
                message += f" (element {index}; the body is in element {body_logged_at}'s record)"
            failures.append(
                event_error(
                    logged, message, "validation", schema if isinstance(schema, str) else ""
                )
            )
        if unrecorded:
            failures.append(self._invalid_rest(body, unrecorded, body_logged_at))

        size = sum(len(v.value) for v in valid) if hasty else 0
        if (
            hasty
            and valid
            and self.hasty_in_flight + len(valid) <= config.hasty_max_in_flight
            and self.hasty_in_flight_bytes + size <= config.hasty_max_in_flight_bytes
        ):
            self._produce_in_background(valid, size)
            self.failed.write(failures)
            # the refused ones are told (207 with their failures), as without hasty
            status = 207 if failures else 202
            return self._done(IntakeResult(status, refused, len(valid)), by_topic(valid))

        deadline = asyncio.get_running_loop().time() + config.request_timeout
        accepted, produce_refused, produce_failures = await self._produce_all(valid, deadline)
        refused.extend(produce_refused)
        failures.extend(produce_failures)
        if not self.failed.write(failures):
            for outcome in produce_refused:
                if outcome.status == ERROR:
                    outcome.message += "; the failed-events log could not be written either"
        if len(refused) > 1:
            refused.sort(key=lambda o: o.index)
        count = sum(accepted.values())
        return self._done(IntakeResult(self._status(count, refused), refused, count), accepted)

    @staticmethod
    def _done(result: IntakeResult, accepted: dict[str, int] | None = None) -> IntakeResult:
        """Count the request's events once: ``accepted`` by topic, the others by outcome."""
        counts: dict[tuple[str, str], int] = {}
        for topic, n in (accepted or {}).items():
            counts[(topic, ACCEPTED)] = n
        for outcome in result.failures:
            label = (outcome.topic or "-", outcome.status)
            counts[label] = counts.get(label, 0) + 1
        for (topic, status), n in counts.items():
            metrics.EVENTS.labels(topic, status).inc(n)
        return result

    # -- producing -------------------------------------------------------------------------
    def _produce_in_background(self, valid: list[ValidEvent], size: int) -> None:
        """hasty=true: the client has its 202; failures still go to the log."""
        self.hasty_in_flight += len(valid)
        self.hasty_in_flight_bytes += size
        metrics.HASTY_IN_FLIGHT.inc(len(valid))
        task = asyncio.ensure_future(self._produce_and_log(valid))
        self.background[task] = (valid, size)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        valid, size = self.background.pop(task, ([], 0))
        self.hasty_in_flight -= len(valid)
        self.hasty_in_flight_bytes -= size
        metrics.HASTY_IN_FLIGHT.dec(len(valid))

    async def _produce_and_log(self, valid: list[ValidEvent]) -> None:
        deadline = asyncio.get_running_loop().time() + self.config.request_timeout
        try:
            _accepted, refused, failures = await self._produce_all(valid, deadline)
        except asyncio.CancelledError:  # the service is stopping: whatever Kafka has or not
            self.failed.write([self._failure(v, STOPPING) for v in valid])
            raise
        except Exception:
            log.exception("hasty produce failed; logging its %d event(s) for replay", len(valid))
            self.failed.write([self._failure(v, "unexpected produce failure") for v in valid])
            return
        self._done(IntakeResult(202, refused))  # the accepted were counted with the 202
        self.failed.write(failures)

    async def stop_background(self, timeout: float) -> None:
        """On stop: wait for hasty produces; those still running are cancelled, and their
        events logged for replay (eventbus-replay skips what reached Kafka anyway)."""
        if not self.background:
            return
        _done, pending = await asyncio.wait(list(self.background), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            log.warning("stopped %d hasty produce(s) still waiting for Kafka", len(pending))

    @staticmethod
    def _invalid_rest(
        body: bytes, indexes: list[int], body_logged_at: int | None
    ) -> dict[str, Any]:
        """One record for the invalid events past MAX_INVALID_RECORDS: the whole body (unless
        another record of the request holds it) and which elements they are."""
        message = (
            f"{len(indexes)} more invalid events in this request (elements {indexes[0]} to "
            f"{indexes[-1]}), past the {MAX_INVALID_RECORDS} recorded one by one; "
        )
        if body_logged_at is None:
            return event_error(
                text_of(body), message + "the record holds the whole body", "validation"
            )
        return event_error(
            "", message + f"the body is in element {body_logged_at}'s record", "validation"
        )

    @staticmethod
    def _failure(item: ValidEvent, message: str) -> dict[str, Any]:
        return event_error(text_of(item.value), message, "produce", item.schema)

    async def _produce_all(
        self, valid: list[ValidEvent], deadline: float
    ) -> tuple[dict[str, int], list[Outcome], list[dict[str, Any]]]:
        """Produce the valid events: how many Kafka acknowledged, by topic; the outcomes of
        those it did not; their failed-events records."""
        if not valid:
            return {}, [], []
        started = time.perf_counter()
        results = await self.producer.produce_many(list(map(_record_of, valid)), deadline)
        metrics.PRODUCE_DURATION.observe(time.perf_counter() - started)
        if results.count(True) == len(results):  # the common case: every one acknowledged
            return by_topic(valid), [], []
        accepted: dict[str, int] = {}
        outcomes, failures = [], []
        for item, result in zip(valid, results, strict=True):
            if not isinstance(result, Exception):
                accepted[item.topic] = accepted.get(item.topic, 0) + 1
                continue
            metrics.PRODUCE_ERRORS.labels(error_kind(result)).inc()
            if isinstance(result, UnknownTopicError):
                message = f"topic {item.topic} does not exist in Kafka"
                outcomes.append(Outcome(item.index, item.id, INVALID, message, item.topic))
                failures.append(
                    event_error(text_of(item.value), message, "validation", item.schema)
                )
                continue
            if not isinstance(result, KafkaUnavailableError):
                log.error("unexpected produce failure for %s: %r", item.topic, result)
            message = "Kafka did not acknowledge the event; it was logged for replay"
            outcomes.append(Outcome(item.index, item.id, ERROR, message, item.topic))
            failures.append(self._failure(item, f"{message}: {result}"))
        return accepted, outcomes, failures

    @staticmethod
    def _status(accepted: int, refused: list[Outcome]) -> int:
        if not refused:
            return 201
        if accepted:
            return 207
        if any(o.status == ERROR for o in refused):
            return 503
        if all(o.too_large for o in refused):
            return 413
        return 400

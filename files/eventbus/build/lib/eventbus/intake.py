"""One request's events, from the body's bytes to an outcome per event and a status code.

Status codes: 201 all accepted; 207 some accepted; 400 none valid; 503 when valid events
could not be produced (Kafka unreachable or too slow) - never 400 for an outage; with
``hasty`` 202 once validated. Every event not accepted goes to the failed-events log.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from eventbus import metrics
from eventbus.config import Config, StreamRule
from eventbus.failed_events import FailedEventsLog, event_error
from eventbus.producer import EventProducer, KafkaUnavailableError, UnknownTopicError
from eventbus.schemas import SchemaInvalidError, SchemaNotFoundError, SchemaRepository

log = logging.getLogger("eventbus.intake")
ACCEPTED, INVALID, ERROR = "accepted", "invalid", "error"


@dataclass
class Outcome:
    index: int
    id: str | None
    status: str
    message: str = ""
    topic: str | None = None

    def public(self) -> dict[str, Any]:
        return {"status": self.status, "index": self.index, "id": self.id, "message": self.message}


@dataclass
class IntakeResult:
    status: int
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(1 for o in self.outcomes if o.status == ACCEPTED)

    def body(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "total": len(self.outcomes),
            "failures": [o.public() for o in self.outcomes if o.status != ACCEPTED],
        }


class InvalidEventError(Exception):
    """The event is invalid; the message is safe to show the client."""


@dataclass
class ValidEvent:
    index: int
    id: str | None
    topic: str
    key: bytes | None
    value: bytes
    schema: str


def _event_id(event: Any) -> str | None:
    if isinstance(event, dict) and isinstance(event.get("meta"), dict):
        value = event["meta"].get("id")
        return value if isinstance(value, str) else None
    return None


def _dotted(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class Intake:
    def __init__(
        self,
        config: Config,
        schemas: SchemaRepository,
        producer: EventProducer,
        failed: FailedEventsLog,
    ) -> None:
        self.config = config
        self.schemas = schemas
        self.producer = producer
        self.failed = failed
        self.background: set[asyncio.Task[Any]] = set()

    # -- validation ------------------------------------------------------------------------
    def _rule(self, topic: str) -> StreamRule:
        for rule in self.config.streams:
            if rule.matches(topic):
                return rule
        raise InvalidEventError(f"topic {topic} is not accepted by this service")

    def validate(self, index: int, event: Any, raw: bytes | None = None) -> ValidEvent:
        if not isinstance(event, dict):
            raise InvalidEventError("an event must be a JSON object")
        meta = event.get("meta")
        if not isinstance(meta, dict):
            raise InvalidEventError("the event has no meta object")
        topic = meta.get("topic", meta.get("stream"))
        if not isinstance(topic, str) or not topic:
            raise InvalidEventError("the event names no topic (meta.topic or meta.stream)")
        schema_uri = event.get("$schema", meta.get("schema_uri"))
        if not isinstance(schema_uri, str) or not schema_uri:
            raise InvalidEventError("the event names no schema ($schema)")
        rule = self._rule(topic)
        try:
            schema = self.schemas.get(schema_uri)
        except SchemaNotFoundError as err:
            raise InvalidEventError(str(err)) from err
        except SchemaInvalidError as err:
            log.error("schema problem: %s", err)
            raise InvalidEventError(f"schema {schema_uri} is not usable") from err
        if rule.schema_title is not None and schema.title != rule.schema_title:
            raise InvalidEventError(
                f"topic {topic} takes events of schema {rule.schema_title}, not {schema.title}"
            )
        try:
            schema.validate(event)
        except Exception as err:
            raise InvalidEventError(f"failed validating against {schema_uri}: {err}") from err
        key = None
        if rule.partition_key:
            value = _dotted(event, rule.partition_key)
            if value is not None:
                key = (value if isinstance(value, str) else orjson.dumps(value).decode()).encode()
        return ValidEvent(
            index=index,
            id=_event_id(event),
            topic=f"{self.config.datacenter}.{topic}",
            key=key,
            value=raw if raw is not None else orjson.dumps(event),
            schema=schema_uri,
        )

    # -- one request -----------------------------------------------------------------------
    async def handle(self, body: bytes, hasty: bool = False) -> IntakeResult:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raw = body.decode("utf-8", "replace")
            self.failed.write([event_error(raw, f"malformed JSON: {err}", "parse")])
            return IntakeResult(400, [Outcome(0, None, INVALID, f"malformed JSON: {err}")])
        events = parsed if isinstance(parsed, list) else [parsed]
        if not events:
            return IntakeResult(400, [Outcome(0, None, INVALID, "the request holds no events")])
        if len(events) > self.config.max_events_per_request:
            raw = body.decode("utf-8", "replace")
            message = f"more than {self.config.max_events_per_request} events in one request"
            self.failed.write([event_error(raw, message, "validation")])
            return IntakeResult(413, [Outcome(0, None, INVALID, message)])

        raw_single = body.decode("utf-8") if not isinstance(parsed, list) else None
        outcomes: list[Outcome] = []
        valid: list[ValidEvent] = []
        failures: list[dict[str, Any]] = []
        for index, event in enumerate(events):
            try:
                item = self.validate(index, event, body if raw_single is not None else None)
            except InvalidEventError as err:
                outcomes.append(Outcome(index, _event_id(event), INVALID, str(err)))
                raw = raw_single if raw_single is not None else orjson.dumps(event).decode()
                schema = event.get("$schema", "") if isinstance(event, dict) else ""
                failures.append(
                    event_error(
                        raw, str(err), "validation", schema if isinstance(schema, str) else ""
                    )
                )
                continue
            valid.append(item)

        if hasty and valid:
            task = asyncio.ensure_future(self._produce_and_log(valid, raw_single))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
            outcomes.extend(Outcome(v.index, v.id, ACCEPTED, topic=v.topic) for v in valid)
            self.failed.write(failures)
            return IntakeResult(202, sorted(outcomes, key=lambda o: o.index))

        produced, produce_failures = await self._produce_all(valid, raw_single)
        outcomes.extend(produced)
        failures.extend(produce_failures)
        self.failed.write(failures)
        outcomes.sort(key=lambda o: o.index)
        self._count(outcomes)
        return IntakeResult(self._status(outcomes), outcomes)

    @staticmethod
    def _count(outcomes: list[Outcome]) -> None:
        counts: dict[tuple[str, str], int] = {}
        for outcome in outcomes:
            label = (outcome.topic or "-", outcome.status)
            counts[label] = counts.get(label, 0) + 1
        for (topic, status), n in counts.items():
            metrics.EVENTS.labels(topic, status).inc(n)

    async def _produce_and_log(self, valid: list[ValidEvent], raw_single: str | None) -> None:
        """hasty=true: the client has its 202; failures still go to the log."""
        _outcomes, failures = await self._produce_all(valid, raw_single)
        self.failed.write(failures)

    async def _produce_all(
        self, valid: list[ValidEvent], raw_single: str | None
    ) -> tuple[list[Outcome], list[dict[str, Any]]]:
        results = await self.producer.produce_many([(v.topic, v.value, v.key) for v in valid])
        outcomes, failures = [], []
        for item, result in zip(valid, results, strict=True):
            if not isinstance(result, Exception):
                outcomes.append(Outcome(item.index, item.id, ACCEPTED, topic=item.topic))
                continue
            raw = raw_single if raw_single is not None else item.value.decode()
            if isinstance(result, UnknownTopicError):
                message = f"topic {item.topic} does not exist in Kafka"
                outcomes.append(Outcome(item.index, item.id, INVALID, message, item.topic))
                failures.append(event_error(raw, message, "validation", item.schema))
            else:
                if not isinstance(result, KafkaUnavailableError):
                    log.error("unexpected produce failure for %s", item.topic, exc_info=result)
                message = "Kafka did not acknowledge the event; it was logged for replay"
                outcomes.append(Outcome(item.index, item.id, ERROR, message, item.topic))
                failures.append(event_error(raw, f"{message}: {result}", "produce", item.schema))
        return outcomes, failures

    @staticmethod
    def _status(outcomes: list[Outcome]) -> int:
        accepted = sum(1 for o in outcomes if o.status == ACCEPTED)
        if accepted == len(outcomes):
            return 201
        if accepted:
            return 207
        if any(o.status == ERROR for o in outcomes):
            return 503
        return 400

"""Validating one event the way the service accepts it: its stream's rule (topic or
pattern, schema title, partition key), its JSON Schema, its depth and size. The service's
intake and eventbus-replay both validate with this, so replay never produces an event the
service would have refused.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

import jsonschema_rs
import orjson

from eventbus.config import Config, StreamRule
from eventbus.schemas import Schema, SchemaInvalidError, SchemaNotFoundError, SchemaRepository

log = logging.getLogger("eventbus.validation")
# stream rules remembered per topic, at most this many topics (a client may make topics up)
RULE_CACHE_SIZE = 10_000
# schemas found, remembered by the validator without the repository's lock (a client may name
# schemas that do not exist: those are not remembered here)
SCHEMA_MEMO_SIZE = 256
MAX_ERROR_CHARS = 500


class InvalidEventError(Exception):
    """The event is invalid; the message is safe to show the client."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


class ValidEvent(NamedTuple):
    """An event as Kafka gets it. A named tuple, made with ``tuple.__new__`` on the hot path:
    a dataclass's ``__init__`` cost 0.22 us per event, a tenth of the batch path's
    validation."""

    index: int
    id: str | None
    topic: str
    key: bytes | None
    value: bytes
    schema: str


_new_tuple = tuple.__new__


# an event past the checks before its schema's: (index, event, raw, schema, rule, Kafka topic,
# meta); a tuple, as it lives only while a request is validated
_Checked = tuple[int, dict[str, Any], bytes, Schema, StreamRule, str, dict[str, Any]]
# an event refused: (index, event, its JSON text or None, why)
Refused = tuple[int, Any, bytes | None, "InvalidEventError"]


def meta_id(meta: dict[str, Any]) -> str | None:
    """An event's id (meta.id) when it is a string."""
    value = meta.get("id")
    return value if isinstance(value, str) else None


def event_id(event: Any) -> str | None:
    if isinstance(event, dict) and isinstance(event.get("meta"), dict):
        return meta_id(event["meta"])
    return None


def _dotted(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def schema_error(error: jsonschema_rs.ValidationError) -> str:
    """``count: "x" is not of type "integer"``, at most MAX_ERROR_CHARS long (the message
    quotes the event's value, which a client may make as large as it likes)."""
    where = ".".join(str(part) for part in error.instance_path)
    text = f"{where}: {error.message}" if where else error.message
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "..."


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than ``limit`` levels (no recursion: a hostile
    event cannot exhaust the stack)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


class Validator:
    """The configuration's stream rules and schemas, applied to one event at a time."""

    def __init__(self, config: Config, schemas: SchemaRepository | None = None) -> None:
        self.config = config
        self.schemas = schemas or SchemaRepository(config.schema_repositories)
        # topic: the first rule that matches it, and the topic's name in Kafka
        self._rules: dict[str, tuple[StreamRule, str]] = {}
        self._schemas: dict[str, Schema] = {}  # uri: a schema the repository gave

    def reload(self, fresh: Config) -> None:
        """The schemas and stream rules of ``fresh``; the rest of the configuration stays."""
        self.schemas = SchemaRepository(fresh.schema_repositories)
        self.config = dataclasses.replace(
            self.config, streams=fresh.streams, schema_repositories=fresh.schema_repositories
        )
        self._rules = {}
        self._schemas = {}

    def _schema(self, uri: str) -> Schema:
        schema = self._schemas.get(uri)
        if schema is not None:
            return schema
        try:
            schema = self.schemas.get(uri)
        except SchemaNotFoundError as err:
            raise InvalidEventError(str(err)) from err
        except SchemaInvalidError as err:  # logged once, as a warning, by the repository
            raise InvalidEventError(f"schema {uri} is not usable") from err
        if len(self._schemas) < SCHEMA_MEMO_SIZE:
            self._schemas[uri] = schema
        return schema

    def _rule(self, topic: str) -> tuple[StreamRule, str]:
        found = self._rules.get(topic)
        if found is not None:
            return found
        for rule in self.config.streams:
            if rule.matches(topic):
                found = rule, f"{self.config.datacenter}.{topic}"
                if len(self._rules) < RULE_CACHE_SIZE:  # topics a client makes up stay out
                    self._rules[topic] = found
                return found
        shown = topic if len(topic) <= 200 else topic[:200] + "..."
        raise InvalidEventError(f"topic {shown} is not accepted by this service")

    def validate(self, index: int, event: Any, raw: bytes) -> ValidEvent:
        """The event, checked against its stream's rule and its schema, as Kafka gets it;
        InvalidEventError says why not. eventbus-replay uses this (the service validates a
        request's events together, with the same checks and messages)."""
        valid, refused = self.validate_all([(index, event, raw)])
        if refused:
            raise refused[0][3]
        return valid[0]

    def validate_all(
        self, items: Iterable[tuple[int, Any, bytes | None]]
    ) -> tuple[list[ValidEvent], list[Refused]]:
        """A request's events (index, event, its JSON text or None when it has none): the
        valid ones and the refused ones with why, each in the events' order.

        The events of one schema are validated in one jsonschema-rs call
        (``Schema.all_valid``); only when that says no are they validated one by one, for the
        messages. The per-event checks run in one loop with what they read bound once: at
        about a microsecond per event, method calls and attribute lookups were most of it."""
        checked, refused = self._checked(items)
        passed: set[int] = set()  # the indexes whose group was valid as a whole
        if len(checked) > 1:
            groups: dict[int, list[_Checked]] = {}
            for item in checked:
                groups.setdefault(id(item[3]), []).append(item)
            for group in groups.values():
                all_valid = group[0][3].all_valid
                if len(group) > 1 and all_valid is not None and all_valid([c[1] for c in group]):
                    passed.update(c[0] for c in group)
        valid: list[ValidEvent] = []
        keep, max_bytes = valid.append, self.config.max_event_bytes
        for index, event, raw, schema, rule, kafka_topic, meta in checked:
            try:
                if index not in passed:
                    _against_schema(schema, event)
                key = None
                if rule.partition_key:
                    value = _dotted(event, rule.partition_key)
                    if value is not None:
                        key = (
                            value if isinstance(value, str) else orjson.dumps(value).decode()
                        ).encode()
                size = len(raw) + (len(key) if key else 0)
                if size > max_bytes:
                    raise InvalidEventError(
                        f"the event is {size} bytes, more than the {max_bytes} Kafka takes",
                        too_large=True,
                    )
                keep(
                    _new_tuple(
                        ValidEvent, (index, meta_id(meta), kafka_topic, key, raw, schema.uri)
                    )
                )
            except InvalidEventError as err:
                refused.append((index, event, raw, err))
        if len(refused) > 1:
            refused.sort(key=lambda r: r[0])
        return valid, refused

    def _checked(
        self, items: Iterable[tuple[int, Any, bytes | None]]
    ) -> tuple[list[_Checked], list[Refused]]:
        """The checks before the schema's: shape, depth, meta, the stream rule, the schema
        found and allowed on the topic."""
        depth_limit = self.config.max_event_depth
        rules, schemas = self._rules, self._schemas
        checked: list[_Checked] = []
        refused: list[Refused] = []
        for index, event, raw in items:
            try:
                if raw is None:
                    raise InvalidEventError("the event cannot be written as JSON")
                if not isinstance(event, dict):
                    raise InvalidEventError("an event must be a JSON object")
                # an event with no more brackets than the limit cannot nest deeper (a C-speed
                # count spares the walk to nearly every event)
                if raw.count(b"{") + raw.count(b"[") > depth_limit and nested_deeper_than(
                    event, depth_limit
                ):
                    raise InvalidEventError(f"the event nests deeper than {depth_limit} levels")
                meta = event.get("meta")
                if not isinstance(meta, dict):
                    raise InvalidEventError("the event has no meta object")
                topic = meta["topic"] if "topic" in meta else meta.get("stream")
                if not isinstance(topic, str) or not topic:
                    raise InvalidEventError("the event names no topic (meta.topic or meta.stream)")
                uri = event["$schema"] if "$schema" in event else meta.get("schema_uri")
                if not isinstance(uri, str) or not uri:
                    raise InvalidEventError("the event names no schema ($schema)")
                rule, kafka_topic = rules.get(topic) or self._rule(topic)
                schema = schemas.get(uri) or self._schema(uri)
                if rule.schema_title is not None and schema.title != rule.schema_title:
                    raise InvalidEventError(
                        f"topic {topic} takes events of schema {rule.schema_title}, "
                        f"not {schema.title}"
                    )
                checked.append((index, event, raw, schema, rule, kafka_topic, meta))
            except InvalidEventError as err:
                refused.append((index, event, raw, err))
        return checked, refused


def _against_schema(schema: Schema, event: Any) -> None:
    try:
        schema.validate(event)
    except jsonschema_rs.ValidationError as err:
        raise InvalidEventError(
            f"failed validating against {schema.uri}: {schema_error(err)}"
        ) from err
    except Exception as err:  # e.g. a value Rust cannot take (an integer beyond 64 bits)
        raise InvalidEventError(f"failed validating against {schema.uri}: {err}") from err

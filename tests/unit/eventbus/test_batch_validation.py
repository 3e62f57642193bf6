"""A request's events validated together (issue 23, item 3): the events of one schema go to
jsonschema-rs in one call, and the verdicts and messages are exactly those of validating each
event alone, whatever the mix; a schema with references gets no array validator (wrapped as
an array's items, its references could resolve elsewhere), so its events are checked one by
one."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from eventbus.config import load
from eventbus.schemas import SchemaRepository, array_validator, holds_references
from eventbus.validation import InvalidEventError, Validator

from tests.service.conftest import TEST_SCHEMA, make_event, service_config

# references into its own definitions, draft 2019-09 (the repository picks the draft)
REFERRING_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2019-09/schema",
    "$id": "/referring/event/1.0.0",
    "title": "referring/event",
    "type": "object",
    "required": ["meta", "size"],
    "properties": {
        "meta": {"type": "object"},
        "size": {"$ref": "#/$defs/size"},
        "when": {"type": "string", "format": "date-time"},
    },
    "$defs": {"size": {"type": "integer", "minimum": 0}},
}


@pytest.fixture
def validator(tmp_path: Path) -> Validator:
    path = service_config(tmp_path, "127.0.0.1:9092", 8080)
    config = load(path)
    root = config.schema_repositories[0]
    (root / "referring" / "event").mkdir(parents=True)
    (root / "referring" / "event" / "1.0.0.json").write_text(json.dumps(REFERRING_SCHEMA))
    config.streams.append(type(config.streams[0])("referring.event", None, None, None))
    return Validator(config, SchemaRepository(config.schema_repositories))


def referring(size: Any, **fields: Any) -> dict[str, Any]:
    return {
        "$schema": "/referring/event/1.0.0",
        "meta": {"topic": "referring.event", "id": f"r{size}"},
        "size": size,
        **fields,
    }


def one_by_one(validator: Validator, items: list[tuple[int, Any, bytes | None]]) -> list[Any]:
    verdicts = []
    for index, event, raw in items:
        try:
            if raw is None:
                raise InvalidEventError("the event cannot be written as JSON")
            verdicts.append(validator.validate(index, event, raw))
        except InvalidEventError as err:
            verdicts.append((index, str(err), err.too_large))
    return verdicts


def together(validator: Validator, items: list[tuple[int, Any, bytes | None]]) -> list[Any]:
    valid, refused = validator.validate_all(items)
    verdicts: list[Any] = [*valid, *((i, str(err), err.too_large) for i, _e, _r, err in refused)]
    return sorted(verdicts, key=lambda v: v[0] if isinstance(v, tuple) else v.index)


def kinds_of_event(rng: random.Random) -> Any:
    """An event of one of many kinds: valid or not, by its schema, its rule or its shape."""
    return rng.choice(
        [
            lambda: make_event(count=rng.randint(0, 9)),
            lambda: make_event(count="not a number"),  # the schema refuses it
            lambda: make_event(test=rng.choice(["a", 7])),
            lambda: {"meta": {"topic": "test.event"}},  # no schema named
            lambda: make_event(topic="no.such.topic"),
            lambda: ["not", "an", "object"],
            lambda: referring(rng.randint(-2, 5)),  # negative: refused through its $ref
            lambda: referring(3, when=rng.choice(["2026-12-07T00:00:00Z", "yesterday"])),
            lambda: {**make_event(), "$schema": "/no/such/1.0.0"},
        ]
    )()


@pytest.mark.parametrize("seed", range(40))
def test_validating_together_says_what_validating_alone_says(
    validator: Validator, seed: int
) -> None:
    rng = random.Random(seed)
    events = [kinds_of_event(rng) for _i in range(rng.randint(1, 60))]
    items = [(i, e, json.dumps(e).encode()) for i, e in enumerate(events)]
    if rng.random() < 0.3:  # an element with no JSON text of its own
        index = rng.randrange(len(items))
        items[index] = (index, items[index][1], None)
    assert together(validator, items) == one_by_one(validator, items)


def test_a_group_with_one_bad_event_refuses_only_it_with_its_own_message(
    validator: Validator,
) -> None:
    events = [make_event(count=i) for i in range(50)]
    events[31]["count"] = "thirty-one"
    valid, refused = validator.validate_all(
        [(i, e, json.dumps(e).encode()) for i, e in enumerate(events)]
    )
    assert [v.index for v in valid] == [i for i in range(50) if i != 31]
    assert [(r[0], str(r[3])) for r in refused] == [
        (31, 'failed validating against /test/event/1.0.0: count: "thirty-one" is not of '
         'type "integer"'),
    ]  # fmt: skip


def test_only_schemas_without_references_get_an_array_validator(tmp_path: Path) -> None:
    assert not holds_references(TEST_SCHEMA)
    assert holds_references(REFERRING_SCHEMA)
    assert holds_references({"anyOf": [{"items": [{"$dynamicRef": "#node"}]}]})
    root = tmp_path / "repo"
    for name, document in (("plain", TEST_SCHEMA), ("referring", REFERRING_SCHEMA)):
        (root / name).mkdir(parents=True)
        (root / name / "1.0.0.yaml").write_text(yaml.safe_dump(document))
    repository = SchemaRepository([root])
    plain = repository.get("/plain/1.0.0")
    assert plain.all_valid is not None
    assert plain.all_valid([make_event(), make_event(count=1)])
    assert not plain.all_valid([make_event(), make_event(count="x")])
    assert repository.get("/referring/1.0.0").all_valid is None
    # formats are checked in the array as alone (draft 7: date-time)
    dated = {"type": "object", "properties": {"dt": {"type": "string", "format": "date-time"}}}
    checker = array_validator(dated, jsonschema_rs.Draft7Validator)
    assert checker is not None
    assert checker.is_valid([{"dt": "2026-12-07T00:00:00Z"}])
    assert not checker.is_valid([{"dt": "2026-12-07T00:00:00Z"}, {"dt": "yesterday"}])


def test_the_intake_reads_a_valid_events_fields_by_position() -> None:
    """The intake takes a ValidEvent's topic and Kafka record with itemgetter (no Python
    loop): a field moved in ValidEvent must move there too."""
    from eventbus.intake import _record_of, _topic_of, by_topic
    from eventbus.validation import ValidEvent

    event = ValidEvent(3, "id-3", "eqiad.test", b"key", b"{}", "/test/event/1.0.0")
    assert _topic_of(event) == event.topic
    assert _record_of(event) == (event.topic, event.value, event.key)
    other = event._replace(topic="eqiad.other")
    assert by_topic([event, other, event]) == {"eqiad.test": 2, "eqiad.other": 1}

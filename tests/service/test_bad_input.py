"""A corpus of bad input: each request gets a 4xx, and the service stays up and healthy."""

from __future__ import annotations

import json

import pytest

from tests.service.conftest import Service, make_event

DEEP = b"[" * 5000 + b"]" * 5000
CORPUS: dict[str, tuple[bytes, int]] = {
    "empty body": (b"", 400),
    "truncated": (b'{"meta": {"topic": "test.event"', 400),
    "not json": (b"hello", 400),
    "trailing garbage": (b'{"meta": {}} x', 400),
    "non-utf8": (b'{"meta": {"topic": "\xff\xfe"}}', 400),
    "lone surrogate": (b'{"x": "\\ud800"}', 400),
    "deep nesting": (DEEP, 400),
    "number": (b"42", 400),
    "string": (b'"event"', 400),
    "null": (b"null", 400),
    "empty array": (b"[]", 400),
    "array of numbers": (b"[1, 2, 3]", 400),
    "missing meta": (json.dumps({"$schema": "/test/event/1.0.0"}).encode(), 400),
    "meta not an object": (json.dumps({"$schema": "/test/event/1.0.0", "meta": "x"}).encode(), 400),
    "topic not a string": (json.dumps(make_event(topic=5)).encode(), 400),  # type: ignore[arg-type]
    "no schema": (json.dumps({"meta": {"topic": "test.event", "id": "a"}}).encode(), 400),
    "schema not a string": (json.dumps({**make_event(), "$schema": ["x"]}).encode(), 400),
    "unknown schema": (json.dumps({**make_event(), "$schema": "/nope/1.0.0"}).encode(), 400),
    "schema path escape": (
        json.dumps({**make_event(), "$schema": "/../../../etc/passwd"}).encode(),
        400,
    ),
    "unknown topic": (json.dumps(make_event(topic="who.knows")).encode(), 400),
    "wrong field type": (json.dumps(make_event(count=[1])).encode(), 400),
    "huge string": (json.dumps(make_event(test="x" * 100_000)).encode(), 413),
    "huge array": (b"[" + b",".join([b"{}"] * 20_000) + b"]", 413),
    "too many events": (b"[" + b",".join([b"1"] * 10_001) + b"]", 413),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_input_is_a_4xx(eventbus: Service, name: str) -> None:
    body, status = CORPUS[name]
    response = eventbus.request("POST", "/v1/events", body)
    assert response.status == status, response.body[:300]
    assert b"Traceback" not in response.body


def test_service_survived_the_corpus(eventbus: Service) -> None:
    for body, _status in CORPUS.values():
        eventbus.request("POST", "/v1/events", body)
    assert eventbus.process is not None
    assert eventbus.process.poll() is None
    assert eventbus.request("GET", "/healthz").status == 200
    assert eventbus.post(make_event()).status == 201
    assert "Traceback" not in eventbus.log()

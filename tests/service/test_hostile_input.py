"""Hostile and odd requests, by class: encodings and charsets, nesting, sizes at and around
every limit, schema URIs, topic names, HTTP framing. Each gets a 4xx with a clear message
(never a 5xx), each event not accepted has its failed-events line, the valid events of a
batch still reach Kafka, and the service logs no traceback and stays healthy."""

from __future__ import annotations

import gzip
import json
import re
import socket
import time
import zlib

import pytest

from tests.harness._net import LOOPBACK
from tests.harness.kafka import KafkaCluster
from tests.service.conftest import Response, Service, make_event, wait_for_ids

MAX_BODY = 65536  # service_config's max_body_bytes
MAX_EVENT = 60000  # and max_event_bytes


def deep(levels: int) -> dict:
    """An object nested ``levels`` levels deep (the event itself is level 1)."""
    value: dict = {}
    for _level in range(levels - 2):
        value = {"x": value}
    return make_event(nested=value)


def post_raw(service: Service, body: bytes, **headers: str) -> Response:
    return service.request("POST", "/v1/events", body, headers=headers)


def lines_mentioning(service: Service, text: str) -> list[dict]:
    return [r for r in service.failed_records() if text in json.dumps(r)]


# the service's own errors (its loggers are eventbus.*) and aiohttp's unhandled ones
SERVICE_ERRORS = re.compile(r" (ERROR|CRITICAL) \([^)]*\) (eventbus|aiohttp)[a-z_.]*:|Traceback")


def assert_clean(service: Service) -> None:
    assert service.process is not None
    assert service.process.poll() is None
    assert service.request("GET", "/healthz").status == 200
    errors = [line for line in service.log().splitlines() if SERVICE_ERRORS.search(line)]
    assert errors == []


# -- encodings and charsets -------------------------------------------------------------------
def test_a_gzip_body_that_is_not_gzip_is_a_400(eventbus: Service) -> None:
    response = post_raw(eventbus, b'{"not": "gzip"}', **{"Content-Encoding": "gzip"})
    assert response.status == 400, response.body
    assert b"could not be read" in response.body
    assert lines_mentioning(eventbus, "request body refused")
    assert_clean(eventbus)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_body_is_accepted(
    eventbus: Service, kafka_cluster: KafkaCluster, encoding: str
) -> None:
    event = make_event()
    raw = json.dumps(event).encode()
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    response = post_raw(eventbus, body, **{"Content-Encoding": encoding})
    assert response.status == 201, response.body
    wait_for_ids(kafka_cluster, "eqiad.test.event", {event["meta"]["id"]})


@pytest.mark.parametrize("encoding", ["br", "zstd"])
def test_an_unsupported_content_encoding_is_a_400(eventbus: Service, encoding: str) -> None:
    response = post_raw(eventbus, b"xx", **{"Content-Encoding": encoding})
    assert response.status == 400
    assert_clean(eventbus)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("utf-16", json.dumps(make_event()).encode("utf-16")),
        ("latin-1 bytes", b'{"meta": {"topic": "caf\xe9"}}'),
        ("utf-8 bom", b"\xef\xbb\xbf" + json.dumps(make_event()).encode()),
        ("nul byte", b'{"meta": {"topic": "test.event"}}\x00'),
    ],
)
def test_odd_charsets_are_a_400_and_logged(eventbus: Service, name: str, body: bytes) -> None:
    before = len(eventbus.failed_records())
    response = eventbus.request("POST", "/v1/events", body)
    assert response.status == 400, (name, response.body)
    assert len(eventbus.failed_records()) == before + 1
    assert eventbus.failed_records()[-1]["event"]["code"] == "parse"


def test_a_charset_parameter_is_fine(eventbus: Service) -> None:
    response = eventbus.request(
        "POST", "/v1/events", json.dumps(make_event()).encode(), "application/json; charset=utf-8"
    )
    assert response.status == 201


# -- nesting ---------------------------------------------------------------------------------
def test_a_batch_with_one_event_nested_300_deep_accepts_the_others(
    eventbus: Service, kafka_cluster: KafkaCluster
) -> None:
    good = [make_event(), make_event()]
    deep_event = deep(300)
    response = eventbus.post([good[0], deep_event, good[1]])
    assert response.status == 207, response.body[:300]
    failures = response.json()["failures"]
    assert [(f["index"], f["status"]) for f in failures] == [(1, "invalid")]
    assert "nests deeper than 64 levels" in failures[0]["message"]
    wait_for_ids(kafka_cluster, "eqiad.test.event", {e["meta"]["id"] for e in good})
    (line,) = lines_mentioning(eventbus, deep_event["meta"]["id"])
    assert line["event"]["code"] == "validation"
    assert_clean(eventbus)


@pytest.mark.parametrize(("levels", "status"), [(63, 201), (64, 201), (65, 400), (900, 400)])
def test_nesting_at_and_around_the_limit(eventbus: Service, levels: int, status: int) -> None:
    response = eventbus.post(deep(levels))
    assert response.status == status, response.body[:300]


def test_nesting_beyond_what_json_parsers_take_is_a_400(eventbus: Service) -> None:
    body = b'{"meta": {"topic": "test.event"}, "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    assert eventbus.request("POST", "/v1/events", body).status == 400
    assert_clean(eventbus)


# -- sizes at and around every limit ------------------------------------------------------------
def sized_event(total: int) -> bytes:
    """A valid event whose JSON text is exactly ``total`` bytes."""
    event = make_event(test="")
    base = len(json.dumps(event).encode())
    event["test"] = "x" * (total - base)
    body = json.dumps(event).encode()
    assert len(body) == total
    return body


@pytest.mark.parametrize(("size", "status"), [(MAX_EVENT, 201), (MAX_EVENT + 1, 413)])
def test_event_size_at_and_over_the_limit(eventbus: Service, size: int, status: int) -> None:
    response = eventbus.request("POST", "/v1/events", sized_event(size))
    assert response.status == status, response.body[:300]
    if status == 413:
        assert f"more than the {MAX_EVENT} Kafka takes" in response.json()["failures"][0]["message"]


def test_body_size_at_and_over_the_limit(eventbus: Service) -> None:
    events = [make_event(test="y" * 1000) for _event in range(55)]
    body = json.dumps(events).encode()
    body = body[:-1] + b" " * (MAX_BODY - len(body)) + b"]"  # exactly the limit
    assert len(body) == MAX_BODY
    assert eventbus.request("POST", "/v1/events", body).status == 201
    over = body[:-1] + b" ]"
    response = eventbus.request("POST", "/v1/events", over)
    assert response.status == 413
    assert b"larger than the limit" in response.body


def test_a_batch_with_one_too_large_event_accepts_the_others(eventbus: Service) -> None:
    big = json.loads(sized_event(MAX_EVENT + 100))
    response = eventbus.post([make_event(), big])
    assert response.status == 207, response.body[:300]
    (failure,) = response.json()["failures"]
    assert failure["index"] == 1
    assert "Kafka takes" in failure["message"]


# -- schema URIs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "uri",
    [
        "/test/" + "e" * 300 + "/1.0.0",
        "/" + "a/" * 3000 + "1.0.0",
        "/test/event/1.0.0\u0000",
        "http://[::1/test/event/1.0.0",
        "//" + "x" * 5000,
        "/test/%2e%2e/%2e%2e/etc/passwd",
        "",
    ],
)
def test_odd_schema_uris_are_a_400(eventbus: Service, uri: str) -> None:
    response = eventbus.post({**make_event(), "$schema": uri})
    assert response.status == 400, response.body[:300]
    assert_clean(eventbus)


def test_no_schema_lookup_reads_outside_the_repository(eventbus: Service) -> None:
    """The service's own configuration is YAML the service can read: a lookup path that starts
    with "//" replaced the repository root and served it (its SASL credentials with it)."""
    config = str(eventbus.config_path.with_suffix(""))  # found with the .yaml suffix added
    for path in (f"/v1/schemas/{config}", f"/v1/schemas//{config}", f"/v1/schemas///{config}"):
        response = eventbus.request("GET", path)
        assert response.status == 404, (path, response.body[:300])
        assert b"kafka" not in response.body
    for uri in (config, "/" + config, "file://" + config):
        response = eventbus.post({**make_event(), "$schema": uri})
        assert response.status == 400, (uri, response.body[:300])
    assert_clean(eventbus)  # no ERROR line: the runbook's log check would stop every repool


def test_a_long_schema_path_on_get_is_a_404(eventbus: Service) -> None:
    assert eventbus.request("GET", "/v1/schemas/" + "s" * 300).status == 404
    assert eventbus.request("GET", "/v1/schemas/" + "s/" * 2000).status == 404
    assert_clean(eventbus)


# -- topic names -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "topic",
    ["t" * 10_000, "test.event\u0000", "../test.event", "test event", "тест", "", " "],
)
def test_odd_topics_are_a_400(eventbus: Service, topic: str) -> None:
    response = eventbus.post(make_event(topic=topic))
    assert response.status == 400, response.body[:300]
    assert len(response.body) < 2000  # the message does not echo a huge topic back


# -- HTTP framing ------------------------------------------------------------------------------
def raw_exchange(service: Service, payload: bytes, timeout: float = 10) -> bytes:
    port = int(service.url.rsplit(":", 1)[1])
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


@pytest.mark.parametrize(
    "payload",
    [
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n{}{}{}",
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /v1/events HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Bad: \x00\x01\r\nContent-Length: 2\r\n\r\n{}",
    ],
    ids=[
        "bad-chunk",
        "two-lengths",
        "length-and-chunked",
        "negative-length",
        "version",
        "garbage",
        "control-header",
    ],
)
def test_bad_framing_is_a_4xx(eventbus: Service, payload: bytes) -> None:
    answer = raw_exchange(eventbus, payload)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    assert 400 <= status < 500, answer[:200]
    assert_clean(eventbus)


def test_a_client_gone_mid_body_is_one_log_line(eventbus: Service) -> None:
    port = int(eventbus.url.rsplit(":", 1)[1])
    with socket.create_connection((LOOPBACK, port)) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"meta": {"topic": '
        )
        time.sleep(0.5)
    time.sleep(1)
    assert_clean(eventbus)
    assert eventbus.post(make_event()).status == 201


# -- the failed-events log stays bounded (issue 22, item 4) -----------------------------------
def log_growth(service: Service, send: object) -> int:
    """Bytes the failed-events log grew by while ``send()`` ran."""
    before = service.failed_log.stat().st_size if service.failed_log.exists() else 0
    send()  # type: ignore[operator]
    return service.failed_log.stat().st_size - before


def unwritable(levels: int) -> str:
    """An element nested ``levels`` deep, as JSON text: it parses, but neither orjson nor the
    standard library can write it back (both stop short of 1000 levels)."""
    return "{" + '"a":{' * levels + "}" * levels + "}"


def test_elements_that_cannot_be_written_log_the_body_once(eventbus: Service) -> None:
    """Each such element logged the whole body (50 of them in a 100 KB body wrote 5 MB): now
    the body is in one record and the other elements refer to it."""
    body = ("[" + ",".join(unwritable(1000) for _element in range(9)) + "]").encode()
    assert len(body) < MAX_BODY
    growth = log_growth(eventbus, lambda: post_raw(eventbus, body))
    assert growth < len(body) * 1.5 + 9 * 1200, growth  # the body once (not 9 times)
    assert_clean(eventbus)


def test_many_tiny_invalid_events_log_a_bounded_number_of_records(eventbus: Service) -> None:
    """5,000 invalid events of 2 bytes (a 15 KB body) wrote 5,000 records of about 300 bytes:
    now the first 100 get a record each and the rest one record with the body. The client
    still gets every refusal, and the valid event goes in."""
    good = make_event()
    body = json.dumps([{}] * 5000 + [good]).encode()
    before = len(eventbus.failed_records())
    answers: list[Response] = []
    growth = log_growth(eventbus, lambda: answers.append(post_raw(eventbus, body)))
    (answer,) = answers
    assert answer.status == 207, answer.body[:300]
    assert len(answer.json()["failures"]) == 5000
    records = eventbus.failed_records()[before:]
    assert len(records) == 101
    assert records[-1]["event"]["message"].startswith(
        "4900 more invalid events in this request (elements 100 to 4999)"
    )
    assert records[-1]["event"]["rawEvent"] == body.decode()  # the whole body, once
    assert growth < 2 * len(body) + 101 * 1200, growth
    assert_clean(eventbus)


def test_a_refusal_quoting_a_huge_value_logs_it_once(eventbus: Service) -> None:
    event = make_event(count="9" * 50_000)  # count is an integer: the message quotes the value
    growth = log_growth(eventbus, lambda: eventbus.post(event))
    assert 50_000 < growth < 50_000 + 5_000, growth  # in rawEvent, not in the message too
    (line,) = lines_mentioning(eventbus, event["meta"]["id"])
    assert len(line["event"]["message"]) < 2_100


def test_a_wrong_content_type_keeps_its_events_in_the_log(eventbus: Service) -> None:
    event = make_event()
    body = json.dumps(event).encode()
    response = post_raw(eventbus, body, **{"Content-Type": "text/plain"})
    assert response.status == 415
    (line,) = lines_mentioning(eventbus, event["meta"]["id"])
    assert json.loads(line["event"]["rawEvent"]) == event  # replay can take it from there
    assert "content type 'text/plain' refused" in line["event"]["message"]


def test_a_body_over_the_limit_gets_a_bounded_line(eventbus: Service) -> None:
    marker = f"oversized-{time.time_ns()}"
    body = json.dumps([make_event(test=marker)] * 2 + ["x" * MAX_BODY]).encode()
    growth = log_growth(eventbus, lambda: post_raw(eventbus, body))
    assert eventbus.failed_records()[-1]["event"]["message"].startswith(
        f"request body refused: larger than the limit of {MAX_BODY} bytes"
    )
    assert growth < 2_000  # the body was not read: its size only
    assert_clean(eventbus)

"""POST /v1/events and the other routes, against the real service process and real Kafka."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter

from tests.harness._net import wait_until
from tests.harness.kafka import KafkaCluster
from tests.service.conftest import Service, consume_ids, make_event, wait_for_ids


def test_one_event_is_acknowledged_then_in_kafka(
    eventbus: Service, kafka_cluster: KafkaCluster
) -> None:
    event = make_event(test="hello")
    response = eventbus.post(event)
    assert response.status == 201
    assert response.body == b""
    # 201 is sent only after Kafka acknowledged: the event is there at once
    assert event["meta"]["id"] in consume_ids(kafka_cluster, "eqiad.test.event")


def test_an_array_of_events(eventbus: Service, kafka_cluster: KafkaCluster) -> None:
    events = [make_event(count=i) for i in range(5)]
    assert eventbus.post(events).status == 201
    ids = consume_ids(kafka_cluster, "eqiad.test.event")
    assert {e["meta"]["id"] for e in events} <= set(ids)


def test_partition_key_and_charset(eventbus: Service, kafka_cluster: KafkaCluster) -> None:
    event = {
        "meta": {"topic": "mediawiki.page_edit", "id": "pe-1"},
        "$schema": "/mediawiki/page/edit/1.0.0",
        "page_id": 42,
    }
    response = eventbus.request(
        "POST",
        "/v1/events",
        json.dumps(event).encode(),
        content_type="application/json; charset=utf-8",
    )
    assert response.status == 201
    assert "pe-1" in consume_ids(kafka_cluster, "eqiad.mediawiki.page_edit")


def test_mixed_batch_is_207_and_the_invalid_ones_are_logged(
    eventbus: Service, kafka_cluster: KafkaCluster
) -> None:
    good = [make_event(), make_event()]
    bad = make_event(count="not a number")
    response = eventbus.post([good[0], bad, good[1]])
    assert response.status == 207
    body = response.json()
    assert body["accepted"] == 2
    assert body["total"] == 3
    assert body["failures"] == [
        {
            "status": "invalid",
            "index": 1,
            "id": bad["meta"]["id"],
            "message": body["failures"][0]["message"],
        }
    ]
    assert 'count: "not a number" is not of type "integer"' in body["failures"][0]["message"]
    wait_for_ids(kafka_cluster, "eqiad.test.event", {good[0]["meta"]["id"], good[1]["meta"]["id"]})
    records = [r for r in eventbus.failed_records() if bad["meta"]["id"] in r["event"]["rawEvent"]]
    assert len(records) == 1
    record = records[0]
    assert record["schema"] == "EventError"
    assert record["event"]["code"] == "validation"
    assert json.loads(record["event"]["rawEvent"]) == bad
    assert record["event"]["schema"] == "/test/event/1.0.0"
    assert set(record) >= {"revision", "wiki", "uuid", "recvFrom", "timestamp"}
    assert "1 out of 3 events were accepted." not in eventbus.log()
    assert "2 out of 3 events were accepted." in eventbus.log()


def test_none_valid_is_400(eventbus: Service) -> None:
    response = eventbus.post([make_event(count="x"), {"meta": {"topic": "test.event"}}])
    assert response.status == 400
    statuses = Counter(f["status"] for f in response.json()["failures"])
    assert statuses == {"invalid": 2}


def test_malformed_json_is_400_and_logged_verbatim(eventbus: Service) -> None:
    body = b'{"meta": {"topic": "test.event", "id": "broken-1"'
    response = eventbus.request("POST", "/v1/events", body)
    assert response.status == 400
    assert "malformed JSON" in response.json()["failures"][0]["message"]
    records = [r for r in eventbus.failed_records() if r["event"]["rawEvent"] == body.decode()]
    assert [r["event"]["code"] for r in records] == ["parse"]


def test_wrong_content_type_is_415(eventbus: Service) -> None:
    response = eventbus.request("POST", "/v1/events", b"{}", content_type="text/plain")
    assert response.status == 415
    assert response.json()["message"] == "send events as application/json"


def test_oversized_body_is_413(eventbus: Service) -> None:
    response = eventbus.post(make_event(test="x" * 70000))
    assert response.status == 413
    assert "larger than the limit of 65536 bytes" in response.json()["message"]


def test_topics_not_accepted_or_not_in_kafka_are_400(eventbus: Service) -> None:
    unknown = eventbus.post(make_event(topic="no.such.stream"))
    assert unknown.status == 400
    assert "topic no.such.stream is not accepted" in unknown.json()["failures"][0]["message"]
    # accepted by the pattern mediawiki\.job\..*, but Kafka has no such topic
    missing = eventbus.post(make_event(topic="mediawiki.job.nothere"))
    assert missing.status == 400
    assert (
        "topic eqiad.mediawiki.job.nothere does not exist in Kafka"
        in missing.json()["failures"][0]["message"]
    )


def test_wrong_schema_for_the_topic_and_unknown_schema(eventbus: Service) -> None:
    wrong = make_event(topic="mediawiki.page_edit")
    assert (
        "takes events of schema mediawiki/page/edit"
        in eventbus.post(wrong).json()["failures"][0]["message"]
    )
    unknown = make_event()
    unknown["$schema"] = "/no/such/1.0.0"
    assert (
        "schema /no/such/1.0.0 not found" in eventbus.post(unknown).json()["failures"][0]["message"]
    )


def test_hasty_answers_202_and_still_produces(
    eventbus: Service, kafka_cluster: KafkaCluster
) -> None:
    event = make_event()
    assert eventbus.post(event, "?hasty=true").status == 202
    wait_for_ids(kafka_cluster, "eqiad.test.event", {event["meta"]["id"]})


def test_hasty_tells_which_events_it_refused(
    eventbus: Service, kafka_cluster: KafkaCluster
) -> None:
    """A hasty batch with invalid events: 207 naming each refused one (it was a bare 202,
    and the client never learnt), the valid ones still produced; all invalid: 400."""
    good, bad = make_event(), make_event(count="NaN")
    response = eventbus.post([good, bad], "?hasty=true")
    assert response.status == 207, response.body[:300]
    body = response.json()
    assert body["accepted"] == 1
    assert body["total"] == 2
    assert [f["index"] for f in body["failures"]] == [1]
    assert body["failures"][0]["status"] == "invalid"
    wait_for_ids(kafka_cluster, "eqiad.test.event", {good["meta"]["id"]})
    assert eventbus.post([bad], "?hasty=true").status == 400


def test_health_test_event_and_listings(eventbus: Service) -> None:
    assert eventbus.request("GET", "/healthz").status == 200
    assert eventbus.request("GET", "/v1/_test/events").status == 201
    topics = eventbus.request("GET", "/v1/topics").json()
    assert {
        "topic": "test.event",
        "pattern": None,
        "kafka_topic": "eqiad.test.event",
        "schema_title": "test/event",
    } in topics
    assert eventbus.request("GET", "/v1/schemas").json() == [
        "/mediawiki/page/edit/1.0.0",
        "/test/event/1.0.0",
    ]
    schema = eventbus.request("GET", "/v1/schemas/test/event/1.0.0")
    assert schema.json()["title"] == "test/event"
    assert eventbus.request("GET", "/v1/schemas/../../etc/passwd").status == 404


def test_access_log_line(eventbus: Service) -> None:
    """Written at the end of the loop's turn that answered (access_log.py), as logging would:
    time stamp, level, process, logger name, then the runbook's line."""
    marker = f"/healthz?probe={uuid.uuid4().hex}"
    eventbus.request("GET", marker)
    pattern = re.compile(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO \(\S+ \d+\) eventbus\.access: "
        + re.escape(f"200 GET {marker} (127.0.0.1) ")
        + r"\d+\.\d\dms$"
    )
    wait_until(
        lambda: any(pattern.match(line) for line in eventbus.log().splitlines()),
        10,
        "the request's access log line",
        on_timeout=eventbus.log,
    )

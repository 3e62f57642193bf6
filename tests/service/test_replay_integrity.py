"""eventbus-replay cannot lose an event nor put one in twice (issue 22, item 2): its exit code
tells "all done" (0), "some events failed, each in the replay-failed file" (1) and "aborted"
(3) apart; a topic Kafka lacks fails its events at once; rotated, compressed logs are read; an
event already in Kafka is found by its id, or by its bytes when it has none; the lookup waits
until the newest failure may have landed and reads every partition to its end or aborts; the
replay-failed file is never written through a symbolic link. Against the session's Kafka."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from pathlib import Path

import pytest
from eventbus.replay import KafkaLookup, ReplayAbortedError
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from tests.harness._net import free_port
from tests.harness.kafka import KafkaCluster
from tests.service.conftest import consume_ids, make_event, run_replay, service_config

TOPIC = "eqiad.test.event"


def error_line(event: dict, failed_at: float | None = None, code: str = "produce") -> str:
    record = {"schema": "EventError", "event": {"rawEvent": json.dumps(event), "code": code}}
    if failed_at is not None:
        record["timestamp"] = failed_at
    return json.dumps(record) + "\n"


@pytest.fixture
def config(kafka_cluster: KafkaCluster, eventbus_topics: list[str], tmp_path: Path) -> Path:
    """The service's configuration (its rules validate what is replayed): produce timeout 2 s."""
    kafka = {"bootstrap_servers": kafka_cluster.bootstrap_servers.split(","), "produce_timeout": 2}
    return service_config(tmp_path, kafka_cluster.bootstrap_servers, free_port(), kafka=kafka)


def test_an_unreachable_kafka_aborts_with_exit_3(config: Path, tmp_path: Path) -> None:
    event = make_event()
    result, took = run_replay(
        "--config", str(config), "--bootstrap-servers", f"127.0.0.1:{free_port()}",
        "--output-invalid", str(tmp_path / "again.log"), stdin=error_line(event, time.time() - 60),
    )  # fmt: skip
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "aborted" in result.stderr
    assert "Traceback" not in result.stderr
    assert took < 120


def test_a_topic_kafka_lacks_fails_its_events_at_once_and_the_rest_goes_in(
    config: Path, kafka_cluster: KafkaCluster, tmp_path: Path
) -> None:
    missing = make_event(topic=f"mediawiki.job.none{uuid.uuid4().hex[:6]}")  # a pattern rule
    present = make_event()
    again = tmp_path / "again.log"
    result, took = run_replay(
        "--config", str(config), "--bootstrap-servers", kafka_cluster.bootstrap_servers,
        "--output-invalid", str(again),
        stdin=error_line(missing, time.time() - 60) + error_line(present, time.time() - 60),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "read 2, produced 1, already present 0, invalid 0, failed 1" in result.stdout
    assert took < 60  # one metadata wait for the topic, not a minute per event
    (record,) = [json.loads(line) for line in again.read_text().splitlines()]
    assert json.loads(record["event"]["rawEvent"])["meta"]["id"] == missing["meta"]["id"]
    assert "Kafka has no topic" in record["event"]["message"]
    assert present["meta"]["id"] in consume_ids(kafka_cluster, TOPIC)


def test_a_rotated_compressed_log_is_replayed(
    config: Path, kafka_cluster: KafkaCluster, tmp_path: Path
) -> None:
    event = make_event()
    rotated = tmp_path / "failed_events.log.2.gz"
    with gzip.open(rotated, "wt") as out:
        out.write(error_line(event, time.time() - 60))
    result, _took = run_replay(
        "--config", str(config), "--bootstrap-servers", kafka_cluster.bootstrap_servers,
        "--input", str(rotated),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "read 1, produced 1" in result.stdout
    assert event["meta"]["id"] in consume_ids(kafka_cluster, TOPIC)


def test_an_event_without_an_id_that_reached_kafka_is_not_produced_again(
    kafka_cluster: KafkaCluster,
) -> None:
    # a topic of its own: the session's topics hold events with ids (other tests read them)
    topic = f"noid{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap_servers)
    admin.create_topics([NewTopic(f"eqiad.{topic}", num_partitions=1, replication_factor=3)])
    admin.close()
    event = {"$schema": "/test/event/1.0.0", "meta": {"topic": topic}, "test": "no id"}
    raw = json.dumps(event)
    producer = KafkaProducer(bootstrap_servers=kafka_cluster.bootstrap_servers, acks="all")
    producer.send(f"eqiad.{topic}", raw.encode()).get(timeout=30)  # delivered after its 503
    producer.close()
    result, _took = run_replay(
        "--no-validate", "--bootstrap-servers", kafka_cluster.bootstrap_servers,
        "--topic-format", "eqiad.{meta[topic]}", stdin=error_line(event, time.time() - 60),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "read 1, produced 0, already present 1" in result.stdout


def test_the_lookup_waits_until_the_newest_failure_may_have_landed(
    config: Path, kafka_cluster: KafkaCluster
) -> None:
    """The service's producer may deliver an event up to its produce timeout (2 s here) after
    the 503: replay waits that long and a margin (5 s) past the newest failure before it looks."""
    event = make_event()
    failed_at = time.time()
    result, _took = run_replay(
        "--config", str(config), "--bootstrap-servers", kafka_cluster.bootstrap_servers,
        stdin=error_line(event, failed_at),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "the newest failure is recent" in result.stderr
    assert time.time() - failed_at >= 2 + 5 - 0.5  # it did wait, whatever the machine's load


def test_a_lookup_that_cannot_read_to_the_end_aborts(kafka_cluster: KafkaCluster) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_cluster.bootstrap_servers, acks="all")
    producer.send(TOPIC, json.dumps(make_event()).encode()).get(timeout=30)
    producer.close()
    lookup = KafkaLookup(kafka_cluster.bootstrap_servers.split(","), deadline=0)
    try:
        with pytest.raises(
            ReplayAbortedError, match=r"could not read eqiad\.test\.event to its end"
        ):
            lookup.ids_since(TOPIC, None)
    finally:
        lookup.close()


def test_the_replay_failed_file_is_never_written_through_a_link(
    config: Path, kafka_cluster: KafkaCluster, tmp_path: Path
) -> None:
    target = tmp_path / "not-yours"
    target.write_text("")
    link = tmp_path / "again.log"
    link.symlink_to(target)
    invalid = make_event(count="not a number")
    result, _took = run_replay(
        "--config", str(config), "--bootstrap-servers", kafka_cluster.bootstrap_servers,
        "--output-invalid", str(link), stdin=error_line(invalid, time.time() - 60),
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "could not be written" in result.stderr
    assert target.read_text() == ""

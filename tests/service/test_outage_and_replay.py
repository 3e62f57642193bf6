"""Kafka goes away under the service: 503, events in the failed-events log; Kafka comes
back: eventbus-replay (with the runbook's command line) puts each event in Kafka once."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness._net import free_port
from tests.harness.kafka import KafkaCluster
from tests.service.conftest import (
    Service,
    cluster_with_topic,
    consume_ids,
    make_event,
    run_replay,
    service_config,
    start_service,
    stop_service,
)


@pytest.fixture(scope="module")
def lone_broker(
    kafka_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(
        bundle=kafka_bundle,
        workdir=tmp_path_factory.mktemp("kafka1"),
        size=1,
        min_insync_replicas=1,
    )
    with cluster_with_topic(cluster, "eqiad.test.event", 1):
        yield cluster


@pytest.fixture
def service(lone_broker: KafkaCluster, tmp_path: Path) -> Iterator[Service]:
    port = free_port()
    config = service_config(
        tmp_path,
        lone_broker.bootstrap_servers,
        port,
        kafka={"bootstrap_servers": [lone_broker.bootstrap_servers], "produce_timeout": 3},
    )
    svc = start_service(tmp_path, config, port)
    yield svc
    stop_service(svc)


def replay(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return run_replay(*args, stdin=stdin, timeout=120)[0]


def test_outage_gives_503_and_replay_restores_each_event_once(
    service: Service, lone_broker: KafkaCluster, tmp_path: Path
) -> None:
    warm = make_event()
    assert service.post(warm).status == 201

    lone_broker.stop_node(1)
    lost = [make_event(count=i) for i in range(3)]
    response = service.post(lost)
    assert response.status == 503  # an outage is never a 400
    assert [f["status"] for f in response.json()["failures"]] == ["error"] * 3
    assert service.request("GET", "/healthz").status == 503
    records = service.failed_records()
    assert [r["event"]["code"] for r in records] == ["produce"] * 3
    assert sorted(json.loads(r["event"]["rawEvent"])["meta"]["id"] for r in records) == sorted(
        e["meta"]["id"] for e in lost
    )

    lone_broker.start_node(1)
    assert service.request("GET", "/healthz").status == 200
    assert service.post(make_event()).status == 201  # the service recovered by itself

    log_text = service.failed_log.read_text()
    # the same log twice in one run: each event is produced once, the repeats are skipped
    dry = replay("--dry-run", "--config", str(service.config_path), "stdin://", stdin=log_text * 2)
    assert dry.returncode == 0, dry.stderr
    assert (
        "read 6, produced 3, already present 0, invalid 0, failed 0, skipped duplicates 3 (dry run)"
        in dry.stdout
    )

    invalid_out = tmp_path / "failed-replay-events.log"
    result = replay(
        "--config",
        str(service.config_path),
        "--output-invalid",
        f"file://{invalid_out}",
        "stdin://",
        f"kafka:///{lone_broker.bootstrap_servers}?async=False&topic=eqiad.{{meta[topic]}}",
        stdin=log_text,
    )
    assert result.returncode == 0, result.stderr
    assert "read 3, produced 3, already present 0, invalid 0, failed 0" in result.stdout
    assert not invalid_out.exists()

    ids = Counter(consume_ids(lone_broker, "eqiad.test.event"))
    for event in lost:
        assert ids[event["meta"]["id"]] == 1  # in Kafka exactly once
    assert ids[warm["meta"]["id"]] == 1


def test_replay_writes_what_fails_again_and_exits_non_zero(
    service: Service, tmp_path: Path
) -> None:
    bad = make_event(count="not a number")
    line = json.dumps(
        {"schema": "EventError", "event": {"rawEvent": json.dumps(bad), "code": "produce"}}
    )
    invalid_out = tmp_path / "again.log"
    result = replay(
        "--config",
        str(service.config_path),
        "--output-invalid",
        str(invalid_out),
        "--http",
        f"{service.url}/v1/events",
        stdin=line + "\n",
    )
    assert result.returncode == 1
    assert "read 1, produced 0, already present 0, invalid 1, failed 0" in result.stdout
    (record,) = [json.loads(x) for x in invalid_out.read_text().splitlines()]
    assert record["event"]["code"] == "replay"
    assert json.loads(record["event"]["rawEvent"]) == bad


def test_replay_through_the_service(service: Service, lone_broker: KafkaCluster) -> None:
    event = make_event()
    line = json.dumps(
        {"schema": "EventError", "event": {"rawEvent": json.dumps(event), "code": "produce"}}
    )
    result = replay("--no-validate", "--http", f"{service.url}/v1/events", stdin=line + "\n")
    assert result.returncode == 0, result.stderr
    assert "produced 1" in result.stdout
    assert event["meta"]["id"] in consume_ids(lone_broker, "eqiad.test.event")


def test_replay_usage_errors_exit_2() -> None:
    result = replay("--no-validate", stdin="")
    assert result.returncode == 2
    assert "give one output" in result.stderr

"""The eventbus service as a real process, against the session's real Kafka cluster."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from tests.harness._net import LOOPBACK, free_port, wait_until
from tests.harness.kafka import KafkaCluster

TOPICS = ["eqiad.test.event", "eqiad.mediawiki.page_edit"]
TEST_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "test/event",
    "type": "object",
    "required": ["$schema", "meta"],
    "properties": {
        "$schema": {"type": "string"},
        "meta": {
            "type": "object",
            "required": ["topic", "id"],
            "properties": {
                "topic": {"type": "string"},
                "id": {"type": "string"},
                "dt": {"type": "string"},
            },
        },
        "test": {"type": "string"},
        "count": {"type": "integer"},
    },
}
PAGE_EDIT_SCHEMA = {
    "title": "mediawiki/page/edit",
    "type": "object",
    "required": ["meta", "page_id"],
    "properties": {"page_id": {"type": "integer"}, "meta": {"type": "object"}},
}


def make_event(topic: str = "test.event", **fields: Any) -> dict[str, Any]:
    return {
        "$schema": "/test/event/1.0.0",
        "meta": {"topic": topic, "id": str(uuid.uuid4())},
        **fields,
    }


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Service:
    url: str
    config_path: Path
    failed_log: Path
    process: subprocess.Popen[bytes] | None
    log_path: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Response:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return Response(resp.status, resp.read())
        except urllib.error.HTTPError as err:
            return Response(err.code, err.read())

    def post(self, events: Any, query: str = "") -> Response:
        return self.request("POST", "/v1/events" + query, json.dumps(events).encode())

    def failed_records(self) -> list[dict[str, Any]]:
        if not self.failed_log.exists():
            return []
        return [json.loads(line) for line in self.failed_log.read_text().splitlines()]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def write_schemas(root: Path) -> Path:
    (root / "test" / "event").mkdir(parents=True)
    (root / "test" / "event" / "1.0.0.yaml").write_text(yaml.safe_dump(TEST_SCHEMA))
    (root / "mediawiki" / "page" / "edit").mkdir(parents=True)
    (root / "mediawiki" / "page" / "edit" / "1.0.0.json").write_text(json.dumps(PAGE_EDIT_SCHEMA))
    return root


def service_config(tmp: Path, bootstrap: str, port: int, **overrides: Any) -> Path:
    config = {
        "listen": {"address": LOOPBACK, "port": port},
        "num_processes": 1,
        "datacenter": "eqiad",
        "kafka": {"bootstrap_servers": bootstrap.split(","), "produce_timeout": 5},
        "schema_repositories": [str(write_schemas(tmp / "schemas"))],
        "streams": [
            {"topic": "test.event", "schema_title": "test/event"},
            {
                "topic": "mediawiki.page_edit",
                "schema_title": "mediawiki/page/edit",
                "partition_key": "page_id",
            },
            {"pattern": r"mediawiki\.job\..*"},
        ],
        "failed_events_log": str(tmp / "log" / "failed_events.log"),
        "max_body_bytes": 65536,
        "max_event_bytes": 60000,
        "shutdown_timeout": 10,
        "test_event": {
            "$schema": "/test/event/1.0.0",
            "meta": {"topic": "test.event"},
            "test": "ok",
        },
    }
    config.update(overrides)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_service(tmp: Path, config_path: Path, port: int, new_session: bool = False) -> Service:
    """The service on ``port``, answering; its output in ``tmp``/service.log. With
    ``new_session`` it leads a process group of its own (to be stopped as a whole)."""
    log_path = tmp / "service.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "eventbus.service", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    config = yaml.safe_load(config_path.read_text())
    service = Service(
        f"http://{LOOPBACK}:{port}",
        config_path,
        Path(config["failed_events_log"]),
        process,
        log_path,
    )

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"eventbus-service exited {process.returncode}:\n{service.log()}")
        return service.request("GET", "/v1/topics").status == 200

    wait_until(up, 30, "eventbus-service to answer", on_timeout=service.log)
    return service


def stop_service(service: Service, timeout: float = 30) -> int | None:
    if service.process is None:
        return None
    service.process.terminate()
    try:
        return service.process.wait(timeout)
    except subprocess.TimeoutExpired:
        service.process.kill()
        return service.process.wait(5)


@pytest.fixture(scope="session")
def eventbus_topics(kafka_cluster_session: KafkaCluster) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster_session.bootstrap_servers)
    try:
        for topic in TOPICS:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)])
    finally:
        admin.close()
    return TOPICS


@pytest.fixture(scope="session")
def eventbus_session(
    kafka_cluster_session: KafkaCluster,
    eventbus_topics: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("eventbus")
    port = free_port()
    service = start_service(
        tmp, service_config(tmp, kafka_cluster_session.bootstrap_servers, port), port
    )
    yield service
    stop_service(service)


@pytest.fixture
def eventbus(eventbus_session: Service, kafka_cluster: KafkaCluster) -> Service:
    """The session's service, with every Kafka broker running."""
    return eventbus_session


@contextlib.contextmanager
def own_service(tmp: Path, bootstrap: str, **overrides: Any) -> Iterator[Service]:
    """A service of its own (its own port and config, ``overrides`` on service_config's),
    stopped afterwards."""
    port = free_port()
    service = start_service(tmp, service_config(tmp, bootstrap, port, **overrides), port)
    try:
        yield service
    finally:
        stop_service(service)


@pytest.fixture
def two_workers(
    kafka_cluster: KafkaCluster, eventbus_topics: list[str], tmp_path: Path
) -> Iterator[Service]:
    """A service of its own with two worker processes (its own port and config), both
    listening: the service answers once its first worker does, the second may still start."""
    with own_service(tmp_path, kafka_cluster.bootstrap_servers, num_processes=2) as service:
        port = int(service.url.rsplit(":", 1)[1])
        wait_until(lambda: listening_sockets(port) == 2, 30, "both workers to listen")
        yield service


def listening_sockets(port: int) -> int:
    """How many sockets listen on ``port`` (one per worker: SO_REUSEPORT)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def run_replay(
    *args: str, stdin: str = "", timeout: float = 180
) -> tuple[subprocess.CompletedProcess[str], float]:
    """eventbus-replay with ``args`` (its input on stdin), and the seconds it took."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "eventbus.replay", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done, time.monotonic() - started


@contextlib.contextmanager
def cluster_with_topic(cluster: KafkaCluster, topic: str, replicas: int) -> Iterator[KafkaCluster]:
    """``cluster`` started with ``topic`` (one partition), stopped afterwards."""
    try:
        cluster.start()
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
        admin.create_topics([NewTopic(topic, 1, replicas)])
        admin.close()
        yield cluster
    finally:
        cluster.stop()


def consume_ids(cluster: KafkaCluster, topic: str, timeout_ms: int = 3000) -> list[str]:
    """meta.id of every event in ``topic``, oldest first."""
    consumer = KafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=timeout_ms,
    )
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        consumer.assign(partitions)
        return [json.loads(record.value)["meta"]["id"] for record in consumer]
    finally:
        consumer.close()


def wait_for_ids(
    cluster: KafkaCluster, topic: str, ids: set[str], timeout: float = 20
) -> list[str]:
    seen: list[str] = []

    def arrived() -> bool:
        seen[:] = consume_ids(cluster, topic, 1000)
        return ids <= set(seen)

    wait_until(arrived, timeout, f"{len(ids)} event(s) in {topic}")
    return seen


@pytest.fixture(scope="module")
def faults_cluster(
    kafka_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaCluster]:
    """A 3-node KRaft cluster of the requesting module's own (RF 3, min ISR 2, acks=all;
    followers leave the ISR after 5 s, a dead broker is fenced after 4 s), so that killing and
    pausing its brokers disturbs no other module: the fault tests' (each file its own, side by
    side in pytest-xdist workers)."""
    cluster = KafkaCluster(
        bundle=kafka_bundle,
        workdir=tmp_path_factory.mktemp("kafka-faults"),
        size=3,
        min_insync_replicas=2,
        extra_config={
            "replica.lag.time.max.ms": "5000",
            # a dead broker is noticed (its leaderships moved) within seconds
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "500",
        },
    )
    with cluster_with_topic(cluster, "eqiad.test.event", 3):
        yield cluster


@pytest.fixture
def healthy(faults_cluster: KafkaCluster) -> Iterator[KafkaCluster]:
    """The module's fault cluster with every node running (and none paused) before and after."""
    cluster = faults_cluster
    cluster.ensure_all_running()
    yield cluster
    for node_id, node in cluster.nodes.items():
        if node.running:
            cluster.resume_node(node_id)
    cluster.ensure_all_running()
